import Foundation
import NetnetEngine

/// Builds one JSON object with keys in the order they are added (the documented order).
struct JSONObject {
    private var parts: [String] = []

    mutating func add(_ key: String, _ value: String) { parts.append("\(JSONObject.quote(key)):\(JSONObject.quote(value))") }
    mutating func add(_ key: String, _ value: Int) { parts.append("\(JSONObject.quote(key)):\(value)") }
    mutating func add(_ key: String, _ value: Double, digits: Int = 3) { parts.append("\(JSONObject.quote(key)):\(JSONObject.number(value, digits: digits))") }
    mutating func add(_ key: String, raw: String) { parts.append("\(JSONObject.quote(key)):\(raw)") }
    mutating func add(_ key: String, _ value: [String]) { parts.append("\(JSONObject.quote(key)):[\(value.map(JSONObject.quote).joined(separator: ","))]") }

    var text: String { "{\(parts.joined(separator: ","))}" }

    /// A JSON number with at most `digits` decimals, trailing zeros trimmed; non-finite becomes null.
    static func number(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "null" }
        var text = String(format: "%.\(digits)f", value)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text == "-0" ? "0" : text
    }

    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 { result += String(format: "\\u%04x", scalar.value) } else { result.unicodeScalars.append(scalar) }
            }
        }
        return result + "\""
    }

    /// `[{"class","label","score","box"}…]` for detections.
    static func detections(_ detections: [Detection]) -> String {
        "[" + detections.map { d in
            var object = JSONObject()
            object.add("class", d.classIndex)
            object.add("label", d.label)
            object.add("score", Double(d.score), digits: 5)
            object.add("box", raw: "[" + d.box.map { number(Double($0), digits: 2) }.joined(separator: ",") + "]")
            return object.text
        }.joined(separator: ",") + "]"
    }
}
