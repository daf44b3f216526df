/// Text from a file (a model's description, its class names) made safe to print on a terminal:
/// control characters — C0 and C1 controls, DEL, and the bidirectional overrides that reorder what
/// follows — are written as `\u{1B}` escapes, so a file cannot move the cursor, recolour or clear
/// the screen, or hide text. Pure; any thread.
enum TerminalText {
    /// `text` with every control character escaped; other characters unchanged.
    static func escaped(_ text: String) -> String {
        var result = ""
        result.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if isControl(scalar) {
                result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true                  // C0, DEL, C1 (CSI 0x9B included)
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true   // bidi marks, embeddings, overrides, isolates
        case 0x2028, 0x2029: return true                            // line and paragraph separators
        default: return false
        }
    }
}
