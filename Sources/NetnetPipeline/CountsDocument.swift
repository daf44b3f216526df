import Foundation
import NetnetEngine
import NetnetScene

/// The `netnet.counts/1` document (docs/scenes.md, "Counts"; docs/schemas/netnet.counts.schema.json):
/// one stream's scene counts as written by `annotate --counts`, served at
/// `/api/streams/{id}/counts` and kept in `serve`'s state directory. Pure functions; any thread.
public enum CountsDocument {
    /// The `schema` value.
    public static let schema = "netnet.counts/1"

    /// The document, pretty enough to read (one line per rule), ending in a newline:
    /// `{"schema", "stream", "scene", "time", "frames", "lines": {NAME: {"in": {LABEL: n}, "out": {…}}},
    /// "zones": {NAME: {"entered": {LABEL: n}, "objects": {LABEL: n}}}}`; labels sorted. `scene` is
    /// the scene file (null without one), `time` the moment of writing, `frames` the frames
    /// recorded so far in this run (null where not known).
    public static func render(stream: String, scene: String?, counts: SceneCounts, frames: Int?,
                              timeNanoseconds: Int64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + 128 * (counts.lines.count + counts.zones.count))
        JSONText.appendRaw("{\"schema\": ", to: &bytes)
        JSONText.appendString(schema, to: &bytes)
        JSONText.appendRaw(", \"stream\": ", to: &bytes)
        JSONText.appendString(stream, to: &bytes)
        JSONText.appendRaw(", \"scene\": ", to: &bytes)
        if let scene { JSONText.appendString(scene, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        JSONText.appendRaw(", \"time\": \"", to: &bytes)
        WallClock.appendISO8601(nanoseconds: timeNanoseconds, to: &bytes)
        JSONText.appendRaw("\", \"frames\": ", to: &bytes)
        if let frames { JSONText.appendInt(frames, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        JSONText.appendRaw(",\n \"lines\": {", to: &bytes)
        appendRules(counts.lines.map { ($0.name, ("in", $0.inward), ("out", $0.outward)) }, to: &bytes)
        JSONText.appendRaw(",\n \"zones\": {", to: &bytes)
        appendRules(counts.zones.map { ($0.name, ("entered", $0.entered), ("objects", $0.objects)) }, to: &bytes)
        JSONText.appendRaw("}\n", to: &bytes)
        return bytes
    }

    /// One rule per line, `NAME: {"KEY": {…}, "KEY": {…}}`, and the closing brace of their object.
    private static func appendRules(_ rules: [(name: String, first: (String, [String: Int]), second: (String, [String: Int]))],
                                    to bytes: inout [UInt8]) {
        for (i, rule) in rules.enumerated() {
            JSONText.appendRaw(i == 0 ? "\n  " : ",\n  ", to: &bytes)
            JSONText.appendString(rule.name, to: &bytes)
            JSONText.appendRaw(": {", to: &bytes)
            JSONText.appendString(rule.first.0, to: &bytes)
            JSONText.appendRaw(": ", to: &bytes)
            appendLabels(rule.first.1, to: &bytes)
            JSONText.appendRaw(", ", to: &bytes)
            JSONText.appendString(rule.second.0, to: &bytes)
            JSONText.appendRaw(": ", to: &bytes)
            appendLabels(rule.second.1, to: &bytes)
            JSONText.appendRaw("}", to: &bytes)
        }
        JSONText.appendRaw(rules.isEmpty ? "}" : "\n }", to: &bytes)
    }

    private static func appendLabels(_ labels: [String: Int], to bytes: inout [UInt8]) {
        JSONText.appendRaw("{", to: &bytes)
        for (i, label) in labels.keys.sorted().enumerated() {
            if i > 0 { JSONText.appendRaw(", ", to: &bytes) }
            JSONText.appendString(label, to: &bytes)
            JSONText.appendRaw(": ", to: &bytes)
            JSONText.appendInt(labels[label]!, to: &bytes)
        }
        JSONText.appendRaw("}", to: &bytes)
    }

    /// What a `netnet.counts/1` document holds: its stream and counts, lines and zones sorted by
    /// name (`SceneCounts.carried(to:)` puts them in a scene's order). Throws a one-line reason
    /// when `bytes` is not such a document (empty, torn, not JSON, wrong schema, a count that is
    /// not a non-negative integer).
    public static func parse(_ bytes: [UInt8]) throws(CountsDocumentProblem) -> (stream: String, counts: SceneCounts) {
        if bytes.isEmpty { throw CountsDocumentProblem(reason: "empty file") }
        guard (try? JSONSerialization.jsonObject(with: Data(bytes))) != nil else {
            throw CountsDocumentProblem(reason: "not JSON (torn or overwritten?)")
        }
        let stored: Stored
        do {
            stored = try JSONDecoder().decode(Stored.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw CountsDocumentProblem(reason: Self.describe(error))
        } catch {
            throw CountsDocumentProblem(reason: "not a counts document")
        }
        guard stored.schema == schema else { throw CountsDocumentProblem(reason: "schema is not \"\(schema)\"") }
        // Read as numbers, so that a fraction is named like any other bad count.
        func checked(_ labels: [String: Double], _ place: String) throws(CountsDocumentProblem) -> [String: Int] {
            var counts: [String: Int] = [:]
            for (label, value) in labels {
                guard let count = Int(exactly: value) else { throw CountsDocumentProblem(reason: "\(place).\(label) is not a whole number") }
                guard count >= 0 else { throw CountsDocumentProblem(reason: "\(place).\(label) is negative") }
                counts[label] = count
            }
            return counts
        }
        var lines: [SceneCounts.LineCount] = []
        for name in stored.lines.keys.sorted() {
            var count = SceneCounts.LineCount(name: name)
            count.inward = try checked(stored.lines[name]!.inward, "lines.\(name).in")
            count.outward = try checked(stored.lines[name]!.outward, "lines.\(name).out")
            lines.append(count)
        }
        var zones: [SceneCounts.ZoneCount] = []
        for name in stored.zones.keys.sorted() {
            var count = SceneCounts.ZoneCount(name: name)
            count.entered = try checked(stored.zones[name]!.entered, "zones.\(name).entered")
            count.objects = try checked(stored.zones[name]!.objects, "zones.\(name).objects")
            zones.append(count)
        }
        return (stored.stream, SceneCounts(lines: lines, zones: zones))
    }

    private struct Stored: Decodable {
        var schema: String
        var stream: String
        var lines: [String: StoredLine]
        var zones: [String: StoredZone]
    }

    private struct StoredLine: Decodable {
        var inward: [String: Double]
        var outward: [String: Double]
        enum CodingKeys: String, CodingKey {
            case inward = "in"
            case outward = "out"
        }
    }

    private struct StoredZone: Decodable {
        var entered: [String: Double]
        var objects: [String: Double]
    }

    /// A decoding failure as one line naming the key.
    private static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String { keys.isEmpty ? "the document" : keys.map(\.stringValue).joined(separator: ".") }
        switch error {
        case let .keyNotFound(key, context): return "no \"\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))\""
        case let .typeMismatch(_, context) where context.codingPath.isEmpty: return "not a JSON object"
        case let .typeMismatch(_, context): return "\(path(context.codingPath)) is not of the right type"
        case let .valueNotFound(_, context): return "\(path(context.codingPath)) is null"
        case let .dataCorrupted(context) where context.codingPath.isEmpty: return "a value is not of the right type"
        case let .dataCorrupted(context): return "\(path(context.codingPath)) is not of the right type"
        @unknown default: return "not a counts document"
        }
    }
}

/// Why bytes are not a `netnet.counts/1` document: one line. Value type.
public struct CountsDocumentProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public var reason: String
    /// A problem. Pure.
    public init(reason: String) { self.reason = reason }
    /// The reason.
    public var description: String { reason }
}
