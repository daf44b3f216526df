import Foundation

/// The one JSON writer: appenders for strings, integers and fixed-decimal numbers, straight into a
/// byte buffer (no `JSONEncoder`, no intermediate strings). The JSON netnet writes goes through
/// it: the `netnet.frame/1` and `netnet.status/1` lines, `/api/streams`, the `--json` objects of
/// the command line and the safetensors header. (The model metadata's values, JSON inside that
/// header's strings, stay `Codable` in `ModelDescription`: their floats need the shortest text
/// that reads back exactly, not fixed decimals.) It lives in the engine, the lowest module that
/// writes JSON, so that all of them can reach it. Non-finite numbers become `null`: the output
/// never holds NaN or infinity. Stateless; any thread.
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

    /// Appends `value` as `appendFixed` does with `maxDecimals` (0…9), then drops the trailing zeros
    /// after the point and a bare point (`0.125`, `3`, `-2.5`): for figures such as a width or a
    /// mean whose reader needs no fixed column of digits. `null` if `value` is NaN or infinite.
    public static func appendTrimmed(_ value: Double, maxDecimals: Int, to bytes: inout [UInt8]) {
        let start = bytes.count
        appendFixed(value, decimals: maxDecimals, to: &bytes)
        guard maxDecimals > 0, value.isFinite, bytes[start...].contains(UInt8(ascii: ".")) else { return }
        while bytes.last == UInt8(ascii: "0") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
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
