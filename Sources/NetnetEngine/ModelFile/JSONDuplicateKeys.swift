/// Finds a key that occurs twice in one object of a JSON text. `JSONSerialization` and
/// `JSONDecoder` keep the last of two equal keys without a word; a model file must not mean
/// something other than what its first reading says, so the readers refuse such text.
///
/// Keys are compared after unescaping (`"a"` and `"\u0061"` are the same key). The scanner
/// expects text that a JSON parser has already accepted; on other text it still ends and returns
/// what it found. Pure; any thread.
enum JSONDuplicateKeys {
    /// A repeated key and the key of the object holding it (nil: the top-level object).
    struct Duplicate: Equatable, Sendable {
        /// The key found twice.
        let key: String
        /// The key under which the object holding it sits, nil at the top level.
        let object: String?
    }

    private struct Container {
        let isObject: Bool
        let name: String?
        var keys: Set<String> = []
        var expectingKey: Bool
        var lastKey: String?
    }

    /// The first key found twice in one object, in text order; nil when every object's keys differ.
    static func first(in bytes: [UInt8]) -> Duplicate? {
        var stack: [Container] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                let (text, next) = string(in: bytes, from: index + 1)
                index = next
                if var top = stack.last, top.isObject, top.expectingKey {
                    if top.keys.contains(text) { return Duplicate(key: text, object: top.name) }
                    top.keys.insert(text)
                    top.expectingKey = false
                    top.lastKey = text
                    stack[stack.count - 1] = top
                }
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let parent = stack.last
                let name = parent.map { $0.isObject ? $0.lastKey : $0.name } ?? nil
                stack.append(Container(isObject: byte == UInt8(ascii: "{"), name: name, expectingKey: byte == UInt8(ascii: "{")))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
            case UInt8(ascii: ","):
                if let top = stack.last, top.isObject { stack[stack.count - 1].expectingKey = true }
            default:
                break
            }
            index += 1
        }
        return nil
    }

    /// Decodes the string whose first byte after the opening quote is at `start`; returns it and
    /// the index after the closing quote.
    private static func string(in bytes: [UInt8], from start: Int) -> (String, Int) {
        var utf8: [UInt8] = []
        var index = start
        var pendingHigh: UInt32?
        func append(_ scalar: UInt32) {
            if let value = Unicode.Scalar(scalar) { utf8.append(contentsOf: Array(String(Character(value)).utf8)) }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { index += 1; break }
            if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                let escaped = bytes[index + 1]
                index += 2
                switch escaped {
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "u"):
                    guard index + 4 <= bytes.count,
                          let code = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16) else { continue }
                    index += 4
                    if (0xD800..<0xDC00).contains(code) { pendingHigh = code; continue }
                    if (0xDC00..<0xE000).contains(code), let high = pendingHigh {
                        append(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
                    } else {
                        append(code)
                    }
                default: utf8.append(escaped)   // \" \\ \/
                }
                pendingHigh = nil
                continue
            }
            utf8.append(byte)
            index += 1
        }
        return (String(decoding: utf8, as: UTF8.self), index)
    }
}
