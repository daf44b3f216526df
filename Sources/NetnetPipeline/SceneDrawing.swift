import NetnetMedia
import NetnetScene

/// A scene as it is drawn over a frame (docs/scenes.md, "Drawing"): each line a thick yellow
/// segment with an arrow at its midpoint pointing to its `in` side, each zone a cyan outline over
/// a light tint, each mask hatched grey over the darkened picture; every rule's name, and with
/// counts a line's crossings ("door in 3 out 1") and a zone's occupants ("bay 2 inside").
///
/// The geometry is made once, in `init`; `overlay(counts:)` makes new texts only when the counts
/// changed, so a frame whose counts did not change costs no allocation. NetnetMedia draws the
/// result without knowing what a scene is, as it draws boxes without knowing the network.
/// A value; one thread at a time (the writer's, or a snapshot's).
public struct SceneDrawing: Sendable {
    /// Line colour (yellow: no box colour is this bright a yellow).
    public static let lineColour: UInt32 = 0xFFFF00
    /// Zone colour (cyan).
    public static let zoneColour: UInt32 = 0x00FFFF
    /// Mask colour (light grey hatching).
    public static let maskColour: UInt32 = 0xC0C0C0

    /// The shapes: masks, then zones, then lines (lines on top), each line's arrow after it.
    public let shapes: [OverlayShape]
    private let scene: Scene
    /// Where each text goes: lines, then zones, then masks, in the scene's order.
    private let anchors: [OverlayPoint]
    /// Per line: its text goes left of its anchor (the `out` side is to the left), so it must end there.
    private let leftward: [Bool]
    private let fontSize: Float
    private var lastCounts: SceneCounts?
    private var texts: [OverlayText]

    /// The drawing of `scene` over a `width` × `height` frame (sizes scale with the height, like the
    /// box outlines and labels). Pure.
    public init(scene: Scene, width: Int, height: Int) {
        self.scene = scene
        let box = Float(VideoWriterOptions.defaultBoxThickness(height: height))
        let font = Float(VideoWriterOptions.defaultFontSize(height: height))
        let lineWidth = 2 * box, arrow = max(12, Float(height) / 24)
        var shapes: [OverlayShape] = []
        var anchors: [OverlayPoint] = []
        var leftward: [Bool] = []
        func point(_ p: ScenePoint) -> OverlayPoint { OverlayPoint(Float(p.x), Float(p.y)) }
        func centre(_ polygon: ScenePolygon) -> OverlayPoint {
            let n = Float(polygon.points.count)
            let x = polygon.points.reduce(Float(0)) { $0 + Float($1.x) } / n, y = polygon.points.reduce(Float(0)) { $0 + Float($1.y) } / n
            return OverlayPoint(x - 2 * font, y - font / 2)   // roughly centred text
        }
        for mask in scene.masks {
            shapes.append(OverlayShape(points: mask.polygon.points.map(point), closed: true, thickness: box, fill: .hatch,
                                       colour: Self.maskColour))
        }
        for zone in scene.zones {
            shapes.append(OverlayShape(points: zone.polygon.points.map(point), closed: true, thickness: box, fill: .tint(quarters: 1),
                                       colour: Self.zoneColour))
        }
        for line in scene.lines {
            let a = point(line.a), b = point(line.b)
            shapes.append(OverlayShape(points: [a, b], closed: false, thickness: lineWidth, colour: Self.lineColour))
            let head = Self.arrow(a, b, length: arrow)
            shapes.append(OverlayShape(points: head, closed: true, thickness: 0, fill: .solid, colour: Self.lineColour))
            // The text on the `out` side, where the arrow is not.
            let (nx, ny) = Self.inward(a, b)
            let mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2
            let gap = lineWidth + font
            anchors.append(OverlayPoint(mx - nx * gap, my - ny * gap - font / 2))
            leftward.append(nx > 0.5)
        }
        anchors += scene.zones.map { centre($0.polygon) }
        anchors += scene.masks.map { centre($0.polygon) }
        self.shapes = shapes
        self.anchors = anchors
        self.leftward = leftward
        self.fontSize = font
        texts = []
        texts = makeTexts(nil)
    }

    /// The unit normal of a–b pointing to its `in` side: where cross(b − a, p − a) > 0 (in image
    /// coordinates, y down: to the right of the direction a → b as seen on screen; for a = 0,300 and
    /// b = 768,300, down). (0, 0) for a = b. Pure.
    public static func inward(_ a: OverlayPoint, _ b: OverlayPoint) -> (x: Float, y: Float) {
        let dx = b.x - a.x, dy = b.y - a.y
        let length = (dx * dx + dy * dy).squareRoot()
        guard length > 0 else { return (0, 0) }
        // cross((dx, dy), (-dy, dx)) = dx² + dy² > 0.
        return (-dy / length, dx / length)
    }

    /// The arrow head at the midpoint of a–b: a triangle `length` long, its base on the line, its
    /// tip on the `in` side. Pure.
    static func arrow(_ a: OverlayPoint, _ b: OverlayPoint, length: Float) -> [OverlayPoint] {
        let (nx, ny) = inward(a, b)
        let mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2
        let ux = ny, uy = -nx   // along the line (a → b)
        let half = length * 0.45
        return [OverlayPoint(mx - ux * half, my - uy * half), OverlayPoint(mx + ux * half, my + uy * half),
                OverlayPoint(mx + nx * length, my + ny * length)]
    }

    /// The overlay with `counts` (nil: the names only). Reuses the last texts when the counts did not
    /// change. The drawing's owner thread.
    public mutating func overlay(counts: SceneCounts?) -> OverlayDrawing {
        if counts != lastCounts {
            lastCounts = counts
            texts = makeTexts(counts)
        }
        return OverlayDrawing(shapes: shapes, texts: texts)
    }

    private func makeTexts(_ counts: SceneCounts?) -> [OverlayText] {
        var result: [OverlayText] = []
        var k = 0
        func add(_ text: String) {
            // Ends at the anchor when it goes leftwards: about 0.6 em a character in DejaVu Sans.
            let shift = k < leftward.count && leftward[k] ? 0.6 * fontSize * Float(text.count) : 0
            result.append(OverlayText(x: anchors[k].x - shift, y: anchors[k].y, text: text))
            k += 1
        }
        for line in scene.lines {
            guard let count = counts?.lines.first(where: { $0.name == line.name }) else { add(line.name); continue }
            add("\(line.name) in \(count.inward.values.reduce(0, +)) out \(count.outward.values.reduce(0, +))")
        }
        for zone in scene.zones {
            guard let count = counts?.zones.first(where: { $0.name == zone.name }) else { add(zone.name); continue }
            add("\(zone.name) \(count.objects.values.reduce(0, +)) inside")
        }
        for mask in scene.masks { add("\(mask.name) (mask)") }
        return result
    }
}
