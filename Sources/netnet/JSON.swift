import NetnetEngine
import NetnetPipeline

/// One JSON object for the command line's `--json` output (`model info`, `detect`, `bench`): keys
/// in the order they are added (the documented order), written by `JSONText` in the frame lines'
/// style (`{"key": value, "key": value}`), nested objects and arrays included. A value: build it
/// and print it on one thread.
struct JSONObject {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var isEmpty = true

    /// Adds a string.
    mutating func add(_ key: String, _ value: String) {
        appendKey(key)
        JSONText.appendString(value, to: &bytes)
    }

    /// Adds an integer.
    mutating func add(_ key: String, _ value: Int) {
        appendKey(key)
        JSONText.appendInt(value, to: &bytes)
    }

    /// Adds `true` or `false`.
    mutating func add(_ key: String, _ value: Bool) {
        appendKey(key)
        if value { JSONText.appendRaw("true", to: &bytes) } else { JSONText.appendRaw("false", to: &bytes) }
    }

    /// Adds a number with at most `digits` decimals, trailing zeros trimmed (`JSONText.appendTrimmed`);
    /// non-finite becomes null.
    mutating func add(_ key: String, _ value: Double, digits: Int = 3) {
        appendKey(key)
        JSONText.appendTrimmed(value, maxDecimals: digits, to: &bytes)
    }

    /// Adds an array of strings.
    mutating func add(_ key: String, _ values: [String]) {
        appendKey(key)
        appendArray(values) { JSONText.appendString($0, to: &$1) }
    }

    /// Adds an array of numbers, each as `add(_:_:digits:)` writes one.
    mutating func add(_ key: String, _ values: [Double], digits: Int) {
        appendKey(key)
        appendArray(values) { JSONText.appendTrimmed($0, maxDecimals: digits, to: &$1) }
    }

    /// Adds a nested object.
    mutating func add(_ key: String, _ object: JSONObject) {
        appendKey(key)
        bytes.append(contentsOf: object.closedBytes)
    }

    /// Adds a `detections` array as the frame lines write it (`FrameRecord.appendDetectionObjects`).
    mutating func add(_ key: String, _ detections: [Detection]) {
        appendKey(key)
        bytes.append(UInt8(ascii: "["))
        FrameRecord.appendDetectionObjects(detections, to: &bytes)
        bytes.append(UInt8(ascii: "]"))
    }

    /// Adds `raw`, which must already be one JSON value (kept for `bench --json`'s nested maps until
    /// they are built with `add(_:_:)` of a `JSONObject`).
    mutating func add(_ key: String, raw: String) {
        appendKey(key)
        bytes.append(contentsOf: raw.utf8)
    }

    /// The object's text, braces included.
    var text: String { String(decoding: closedBytes, as: UTF8.self) }

    /// A JSON number with at most `digits` decimals, trailing zeros trimmed; non-finite becomes null.
    static func number(_ value: Double, digits: Int) -> String {
        var bytes: [UInt8] = []
        JSONText.appendTrimmed(value, maxDecimals: digits, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A JSON string literal, quotes included.
    static func quote(_ text: String) -> String {
        var bytes: [UInt8] = []
        JSONText.appendString(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private var closedBytes: [UInt8] { bytes + [UInt8(ascii: "}")] }

    private mutating func appendKey(_ key: String) {
        if !isEmpty { JSONText.appendRaw(", ", to: &bytes) }
        isEmpty = false
        JSONText.appendString(key, to: &bytes)
        JSONText.appendRaw(": ", to: &bytes)
    }

    private mutating func appendArray<Element>(_ values: [Element], _ append: (Element, inout [UInt8]) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (i, value) in values.enumerated() {
            if i > 0 { JSONText.appendRaw(", ", to: &bytes) }
            append(value, &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }
}
