/// Reads scene files (docs/scenes.md): the serve configuration's INI dialect and strictness.
/// `[line NAME]` (`points` = 2 points, `labels`, `min_frames`), `[zone NAME]` (`points` = 3 or
/// more, `labels`, `loiter`, `min_frames`), `[mask NAME]` (`points` = 3 or more). Comments start
/// with `#` or `;`, at the start of a line or after a blank. Every problem is one `SceneError`
/// naming the file and line. Pure.
public enum SceneParser {
    /// Keys each kind of section accepts.
    static let keys: [String: [String]] = [
        "line": ["points", "labels", "min_frames"],
        "zone": ["points", "labels", "loiter", "min_frames"],
        "mask": ["points"],
    ]

    /// The scene in `text`, read from `file` (the name used in messages). Throws the first problem.
    public static func parse(_ text: String, file: String) throws(SceneError) -> Scene {
        func fail(_ line: Int, _ message: String) -> SceneError { SceneError(file: file, line: line, message: message) }
        if text.utf8.contains(0) { throw SceneError(file: file, line: nil, message: "contains a NUL byte: not a scene file") }
        var scene = Scene(file: file)
        struct Section { var kind: String; var name: String; var line: Int; var values: [String: (String, Int)] = [:] }
        var sections: [Section] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = stripComment(String(raw)).trimmingBlanks()
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]") else { throw fail(number, "section header without ']': \(line)") }
                let words = line.dropFirst().dropLast().split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                guard let kind = words.first, keys[kind] != nil else {
                    throw fail(number, "unknown section \(line) (a scene has [line NAME], [zone NAME] and [mask NAME])")
                }
                guard words.count == 2 else { throw fail(number, "[\(kind)] needs a name: [\(kind) NAME]") }
                let name = words[1]
                guard isName(name) else { throw fail(number, "\(kind) name '\(name)' must be 1 to 64 of A-Z a-z 0-9 _ . -") }
                if let first = sections.first(where: { $0.name == name }) {
                    throw fail(number, "duplicate name '\(name)' (first defined on line \(first.line))")
                }
                sections.append(Section(kind: kind, name: name, line: number))
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { throw fail(number, "expected 'key = value', got '\(line)'") }
            let key = String(line[..<equals]).trimmingBlanks(), value = String(line[line.index(after: equals)...]).trimmingBlanks()
            guard var section = sections.popLast() else { throw fail(number, "'\(key)' outside a section") }
            guard keys[section.kind]!.contains(key) else {
                throw fail(number, "unknown key '\(key)' in [\(section.kind) \(section.name)] (known: \(keys[section.kind]!.joined(separator: ", ")))")
            }
            guard section.values[key] == nil else { throw fail(number, "'\(key)' is set twice in [\(section.kind) \(section.name)]") }
            section.values[key] = (value, number)
            sections.append(section)
        }
        for section in sections {
            guard let (text, pointsLine) = section.values["points"] else {
                throw fail(section.line, "[\(section.kind) \(section.name)] has no points")
            }
            let points = try parsePoints(text, line: pointsLine, file: file)
            let labels: Set<String> = section.values["labels"].map { value in
                Set(value.0.split(separator: ",").map { String($0).trimmingBlanks() }.filter { !$0.isEmpty })
            } ?? []
            var minFrames = 2
            if let (value, line) = section.values["min_frames"] {
                guard let n = Int(value), (1...1000).contains(n) else { throw fail(line, "min_frames = \(value) must be a whole number in 1-1000") }
                minFrames = n
            }
            switch section.kind {
            case "line":
                guard points.count == 2 else { throw fail(pointsLine, "a line has 2 points, got \(points.count)") }
                guard points[0] != points[1] else { throw fail(pointsLine, "a line's 2 points must differ") }
                var line = SceneLine(name: section.name, a: points[0], b: points[1])
                line.labels = labels
                line.minFrames = minFrames
                line.line = section.line
                scene.lines.append(line)
            case "zone":
                guard points.count >= 3 else { throw fail(pointsLine, "a zone has 3 or more points, got \(points.count)") }
                var zone = SceneZone(name: section.name, polygon: ScenePolygon(points))
                zone.labels = labels
                zone.minFrames = minFrames
                zone.line = section.line
                if let (value, line) = section.values["loiter"] {
                    guard isDecimal(value), let seconds = Double(value), seconds > 0, seconds <= 86_400 else {
                        throw fail(line, "loiter = \(value) must be seconds in (0, 86400]")
                    }
                    zone.loiter = seconds
                }
                scene.zones.append(zone)
            default:
                guard points.count >= 3 else { throw fail(pointsLine, "a mask has 3 or more points, got \(points.count)") }
                var mask = SceneMask(name: section.name, polygon: ScenePolygon(points))
                mask.line = section.line
                scene.masks.append(mask)
            }
        }
        return scene
    }

    /// `x,y x,y …`: non-negative decimal pixel coordinates.
    static func parsePoints(_ text: String, line: Int, file: String) throws(SceneError) -> [ScenePoint] {
        var points: [ScenePoint] = []
        for word in text.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            let parts = word.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, parts.allSatisfy(isDecimal), let x = Double(parts[0]), let y = Double(parts[1]), x >= 0, y >= 0 else {
                throw SceneError(file: file, line: line, message: "bad point '\(word)': write x,y in pixels (non-negative numbers), points separated by blanks")
            }
            points.append(ScenePoint(x, y))
        }
        return points
    }

    /// Decimal digits with at most one point (no sign, exponent, hexadecimal, nan or inf).
    static func isDecimal(_ text: String) -> Bool {
        !text.isEmpty && text.filter { $0 == "." }.count <= 1 && text.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") }
            && text != "."
    }

    static func isName(_ name: String) -> Bool {
        (1...64).contains(name.count) && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-") }
    }

    static func stripComment(_ line: String) -> String {
        var previous: Character = " "
        var offset = 0
        for character in line {
            if (character == "#" || character == ";") && (previous == " " || previous == "\t") { return String(line.prefix(offset)) }
            previous = character
            offset += 1
        }
        return line
    }

    /// A coordinate as written in messages: `80` or `80.5`.
    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}

extension String {
    func trimmingBlanks() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s.removeLast() }
        return String(s)
    }
}
