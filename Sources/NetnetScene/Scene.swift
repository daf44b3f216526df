/// A point in a frame's pixels (x right, y down). Value type.
public struct ScenePoint: Sendable, Equatable {
    /// Pixels from the left edge.
    public var x: Double
    /// Pixels from the top edge.
    public var y: Double
    /// A point. Pure.
    public init(_ x: Double, _ y: Double) { self.x = x; self.y = y }
}

/// A tripwire: the segment from `a` to `b`. Crossing it from the side where
/// cross(b − a, p − a) < 0 to the side where it is > 0 is `in` (docs/scenes.md). Value type.
public struct SceneLine: Sendable, Equatable {
    /// The `[line NAME]` name.
    public var name: String
    /// The segment's ends, in the order written.
    public var a: ScenePoint, b: ScenePoint
    /// Labels it counts; empty: all.
    public var labels: Set<String> = []
    /// Frames a track must stay on the new side before the crossing counts.
    public var minFrames = 2
    /// The section's line in the scene file (for messages).
    public var line = 0

    /// A line. Pure.
    public init(name: String, a: ScenePoint, b: ScenePoint) { self.name = name; self.a = a; self.b = b }

    /// Which side of the line's infinite extension `p` lies on: −1, +1, or 0 on it. Pure.
    public func side(of p: ScenePoint) -> Int {
        let value = (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x)
        return value > 0 ? 1 : value < 0 ? -1 : 0
    }

    /// Whether the path from `p` to `q` meets the segment (touching counts). Pure.
    public func isCrossed(from p: ScenePoint, to q: ScenePoint) -> Bool {
        func orientation(_ o: ScenePoint, _ u: ScenePoint, _ v: ScenePoint) -> Double {
            (u.x - o.x) * (v.y - o.y) - (u.y - o.y) * (v.x - o.x)
        }
        let d1 = orientation(a, b, p), d2 = orientation(a, b, q)
        let d3 = orientation(p, q, a), d4 = orientation(p, q, b)
        if ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0)) { return true }
        func within(_ o: ScenePoint, _ u: ScenePoint, _ v: ScenePoint) -> Bool {
            min(o.x, u.x) <= v.x && v.x <= max(o.x, u.x) && min(o.y, u.y) <= v.y && v.y <= max(o.y, u.y)
        }
        return (d1 == 0 && within(a, b, p)) || (d2 == 0 && within(a, b, q)) || (d3 == 0 && within(p, q, a)) || (d4 == 0 && within(p, q, b))
    }
}

/// A closed polygon (3 or more points), the shape of zones and masks. Value type.
public struct ScenePolygon: Sendable, Equatable {
    /// The corners in order.
    public var points: [ScenePoint]
    /// A polygon. Pure.
    public init(_ points: [ScenePoint]) { self.points = points }

    /// Whether `p` lies inside (even-odd rule; a point on an edge may fall either way). Pure.
    public func contains(_ p: ScenePoint) -> Bool {
        var inside = false
        var j = points.count - 1
        for i in points.indices {
            let u = points[i], v = points[j]
            if (u.y > p.y) != (v.y > p.y) && p.x < (v.x - u.x) * (p.y - u.y) / (v.y - u.y) + u.x { inside.toggle() }
            j = i
        }
        return inside
    }
}

/// An area whose occupants are followed: `enter`, `leave` (with the dwell) and, after `loiter`
/// seconds inside, one `loiter` event per visit. Value type.
public struct SceneZone: Sendable, Equatable {
    /// The `[zone NAME]` name.
    public var name: String
    /// Its outline.
    public var polygon: ScenePolygon
    /// Labels it follows; empty: all.
    public var labels: Set<String> = []
    /// Seconds inside before a `loiter` event; nil: none.
    public var loiter: Double?
    /// Frames an object must be inside (or outside) before it has entered (or left).
    public var minFrames = 2
    /// The section's line in the scene file.
    public var line = 0
    /// A zone. Pure.
    public init(name: String, polygon: ScenePolygon) { self.name = name; self.polygon = polygon }
}

/// An area whose detections are dropped before tracking (a tree that sways, a poster). Value type.
public struct SceneMask: Sendable, Equatable {
    /// The `[mask NAME]` name.
    public var name: String
    /// Its outline.
    public var polygon: ScenePolygon
    /// The section's line in the scene file.
    public var line = 0
    /// A mask. Pure.
    public init(name: String, polygon: ScenePolygon) { self.name = name; self.polygon = polygon }
}

/// What a scene file describes (docs/scenes.md): lines, zones and masks in the source frame's
/// pixels. Value type; any thread.
public struct Scene: Sendable, Equatable {
    /// The file it was read from (for messages).
    public var file: String
    /// The tripwires, in file order.
    public var lines: [SceneLine] = []
    /// The zones, in file order.
    public var zones: [SceneZone] = []
    /// The masks, in file order.
    public var masks: [SceneMask] = []

    /// An empty scene. Pure.
    public init(file: String) { self.file = file }

    /// An object's position in the rules: its box's bottom-centre. Pure.
    public static func anchor(x1: Float, y1: Float, x2: Float, y2: Float) -> ScenePoint {
        ScenePoint(Double(x1 + x2) / 2, Double(max(y1, y2)))
    }

    /// Whether `p` lies in a mask (its detection is dropped). Pure.
    public func isMasked(_ p: ScenePoint) -> Bool { masks.contains { $0.polygon.contains(p) } }

    /// Throws a `SceneError` naming the file and line of the first point outside a
    /// `width` × `height` frame (0…width, 0…height). Pure.
    public func check(width: Int, height: Int) throws(SceneError) {
        func outside(_ p: ScenePoint) -> Bool { p.x < 0 || p.y < 0 || p.x > Double(width) || p.y > Double(height) }
        let shapes: [(String, [ScenePoint], Int)] = lines.map { ("line \($0.name)", [$0.a, $0.b], $0.line) }
            + zones.map { ("zone \($0.name)", $0.polygon.points, $0.line) }
            + masks.map { ("mask \($0.name)", $0.polygon.points, $0.line) }
        for (name, points, line) in shapes {
            if let p = points.first(where: outside) {
                throw SceneError(file: file, line: line,
                                 message: "[\(name)]: point \(SceneParser.format(p.x)),\(SceneParser.format(p.y)) is outside the \(width)×\(height) frame")
            }
        }
    }
}

/// A scene file that cannot be used: `file:line: message`. Value type.
public struct SceneError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file.
    public var file: String
    /// Its line, when one is to blame.
    public var line: Int?
    /// What is wrong, one line.
    public var message: String
    /// An error about `file` (at `line`, if one is to blame). Pure.
    public init(file: String, line: Int?, message: String) { self.file = file; self.line = line; self.message = message }
    /// `file:line: message`.
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}
