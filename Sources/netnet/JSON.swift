import Foundation
import NetnetEngine
import NetnetPipeline

/// Builds one JSON object with keys in the order they are added (the documented order), in the
/// same style as the frame records (`"key": value, …`).
struct JSONObject {
    private var parts: [String] = []

    mutating func add(_ key: String, _ value: String) { parts.append("\(JSONObject.quote(key)): \(JSONObject.quote(value))") }
    mutating func add(_ key: String, _ value: Int) { parts.append("\(JSONObject.quote(key)): \(value)") }
    mutating func add(_ key: String, _ value: Double, digits: Int = 3) { parts.append("\(JSONObject.quote(key)): \(JSONObject.number(value, digits: digits))") }
    mutating func add(_ key: String, raw: String) { parts.append("\(JSONObject.quote(key)): \(raw)") }
    mutating func add(_ key: String, _ value: [String]) { parts.append("\(JSONObject.quote(key)): [\(value.map(JSONObject.quote).joined(separator: ", "))]") }

    var text: String { "{\(parts.joined(separator: ", "))}" }

    /// A JSON number with `digits` decimals, trailing zeros trimmed; non-finite becomes null.
    static func number(_ value: Double, digits: Int) -> String {
        var bytes: [UInt8] = []
        JSONText.appendFixed(value, decimals: digits, to: &bytes)
        var text = String(decoding: bytes, as: UTF8.self)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text == "-0" ? "0" : text
    }

    /// A JSON string literal, quotes included.
    static func quote(_ text: String) -> String {
        var bytes: [UInt8] = []
        JSONText.appendString(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `[{"class","label","score","box"}…]` for detections, as in the frame records.
    static func detections(_ detections: [Detection]) -> String {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        FrameRecord.appendDetectionObjects(detections, to: &bytes)
        bytes.append(UInt8(ascii: "]"))
        return String(decoding: bytes, as: UTF8.self)
    }
}
