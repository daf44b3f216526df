import Foundation

/// Appenders for the JSON text the writers produce: strings, integers and fixed-decimal numbers,
/// straight into a byte buffer (no `JSONEncoder`, no intermediate strings). Non-finite numbers
/// become `null`: the output never holds NaN or infinity. Stateless; any thread.
public enum JSONText {
    /// Appends `value` as a JSON string literal (quotes included): `"` and `\` escaped, control
    /// characters as `\n`, `\t`, … or `\u00XX`; everything else as its UTF-8 bytes.
    public static func appendString(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
                case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
                case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
                case 0x08: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "f"))
                case 0x00 ..< 0x20, 0x7F:
                    bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                              hex[Int(byte >> 4)], hex[Int(byte & 15)]])
                default: bytes.append(byte)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends `value` in decimal.
    public static func appendInt(_ value: Int, to bytes: inout [UInt8]) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            appendMagnitude(value.magnitude, to: &bytes)
        } else {
            appendMagnitude(UInt(value), to: &bytes)
        }
    }

    /// Appends `value` rounded to `decimals` (0…9) places, half away from zero, with exactly that many
    /// digits after the point (`0.91234`, `-3.50`); `null` if `value` is NaN or infinite. Never
    /// writes `-0.00`.
    public static func appendFixed(_ value: Double, decimals: Int, to bytes: inout [UInt8]) {
        precondition(decimals >= 0 && decimals <= 9, "appendFixed: decimals \(decimals) outside 0...9")
        guard value.isFinite else {
            appendNull(to: &bytes)
            return
        }
        let scale = powersOfTen[decimals]
        let scaled = (value * Double(scale)).rounded(.toNearestOrAwayFromZero)
        guard scaled.magnitude < 9.0e15 else {
            // Beyond exact integers in a Double: let the C library format it.
            bytes.append(contentsOf: Array(String(format: "%.\(decimals)f", value).utf8))
            return
        }
        let integer = Int64(scaled)
        if integer < 0 { bytes.append(UInt8(ascii: "-")) }
        let magnitude = UInt(integer.magnitude)
        appendMagnitude(magnitude / UInt(scale), to: &bytes)
        if decimals > 0 {
            bytes.append(UInt8(ascii: "."))
            var fraction = magnitude % UInt(scale)
            for _ in 0..<decimals { bytes.append(UInt8(ascii: "0")) }
            var i = bytes.count - 1
            while fraction > 0 {
                bytes[i] = UInt8(truncatingIfNeeded: 48 + fraction % 10)
                fraction /= 10
                i -= 1
            }
        }
    }

    /// Appends `null`.
    public static func appendNull(to bytes: inout [UInt8]) {
        bytes.append(contentsOf: [UInt8(ascii: "n"), UInt8(ascii: "u"), UInt8(ascii: "l"), UInt8(ascii: "l")])
    }

    /// Appends ASCII text as is (keys, punctuation). The text must need no escaping.
    public static func appendRaw(_ text: StaticString, to bytes: inout [UInt8]) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private static let powersOfTen: [Int64] = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000,
                                               100_000_000, 1_000_000_000]

    private static func appendMagnitude(_ value: UInt, to bytes: inout [UInt8]) {
        if value < 10 {
            bytes.append(UInt8(truncatingIfNeeded: 48 + value))
            return
        }
        let start = bytes.count
        var v = value
        while v > 0 {
            bytes.append(UInt8(truncatingIfNeeded: 48 + v % 10))
            v /= 10
        }
        bytes[start...].reverse()
    }
}
