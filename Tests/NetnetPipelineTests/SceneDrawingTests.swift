import CFFmpeg
import Testing
@testable import NetnetMedia
import NetnetScene
@testable import NetnetPipeline

/// A scene drawn on a picture: the pixels each shape must (and must not) change.
@Suite struct SceneDrawingTests {
    static let width = 320, height = 240

    /// A `width`×`height` YUV 4:2:0 picture of one grey (luma `grey`, neutral chroma) with the
    /// scene's shapes painted as the annotated video paints them (limited range, BT.601).
    static func painted(_ scene: Scene, grey: UInt8 = 16) throws -> Frame {
        let frame = try Frame()
        try frame.allocate(width: Int32(width), height: Int32(height), format: AV_PIX_FMT_YUV420P, subject: "test")
        for plane in 0..<3 {
            let (data, stride) = frame.plane(plane)
            data!.update(repeating: plane == 0 ? grey : 128, count: stride * (plane == 0 ? height : height / 2))
        }
        let drawing = SceneDrawing(scene: scene, width: width, height: height)
        OverlayRaster(drawing.shapes, width: width, height: height, colorSpace: AVCOL_SPC_BT470BG, fullRange: false).paint(on: frame)
        return frame
    }

    static func luma(_ frame: Frame, _ x: Int, _ y: Int) -> UInt8 {
        let (data, stride) = frame.plane(0)
        return data![y * stride + x]
    }

    static func lineScene(_ a: ScenePoint, _ b: ScenePoint) -> Scene {
        var scene = Scene(file: "test.scene")
        scene.lines = [SceneLine(name: "door", a: a, b: b)]
        return scene
    }

    @Test("a line is drawn along its whole segment, its arrow on the `in` side; flipped points flip the arrow")
    func lineAndArrow() throws {
        let yellow = BoxPainter.yuv(SceneDrawing.lineColour, colorSpace: AVCOL_SPC_BT470BG, fullRange: false)
        // The doc's example: for 0,300 → 768,300 (y down) the `in` side is below.
        #expect(SceneDrawing.inward(OverlayPoint(0, 300), OverlayPoint(768, 300)) == (0, 1))
        let down = try Self.painted(Self.lineScene(ScenePoint(0, 120), ScenePoint(320, 120)))
        for x in stride(from: 0, to: Self.width, by: 7) {
            #expect(Self.luma(down, x, 120) == yellow.0, "on the segment at x = \(x)")
            #expect(Self.luma(down, x, 119) == yellow.0, "on the segment (2 px each side) at x = \(x)")
        }
        #expect(Self.luma(down, 40, 100) == 16 && Self.luma(down, 40, 140) == 16, "away from the line: untouched")
        // The arrow (12 px long at 240 lines) points down from the midpoint, not up.
        #expect(Self.luma(down, 160, 128) == yellow.0, "arrow below the line")
        #expect(Self.luma(down, 160, 112) == 16, "nothing above the line")
        let (u, _) = down.plane(1)
        #expect(u![(128 / 2) * down.plane(1).linesize + 160 / 2] == yellow.1, "the arrow's chroma")

        let up = try Self.painted(Self.lineScene(ScenePoint(320, 120), ScenePoint(0, 120)))
        #expect(Self.luma(up, 160, 112) == yellow.0, "flipped: arrow above")
        #expect(Self.luma(up, 160, 128) == 16, "flipped: nothing below")

        // A diagonal line: its pixels too, and the arrow to the side where cross(b − a, p − a) > 0.
        let line = SceneLine(name: "door", a: ScenePoint(20, 20), b: ScenePoint(300, 220))
        let diagonal = try Self.painted(Self.lineScene(line.a, line.b))
        for t in stride(from: 0.05, through: 0.95, by: 0.1) {
            let x = Int(20 + 280 * t), y = Int(20 + 200 * t)
            #expect(Self.luma(diagonal, x, y) == yellow.0, "on the diagonal at \(x),\(y)")
        }
        let (nx, ny) = SceneDrawing.inward(OverlayPoint(20, 20), OverlayPoint(300, 220))
        let tip = (x: 160 + Double(nx) * 9, y: 120 + Double(ny) * 9), other = (x: 160 - Double(nx) * 9, y: 120 - Double(ny) * 9)
        #expect(line.side(of: ScenePoint(tip.x, tip.y)) == 1)
        #expect(Self.luma(diagonal, Int(tip.x), Int(tip.y)) == yellow.0, "arrow on the in side")
        #expect(Self.luma(diagonal, Int(other.x), Int(other.y)) == 16, "nothing on the out side")
    }

    @Test("a mask is hatched over the darkened picture and outlined; a zone is outlined over a light tint")
    func maskAndZone() throws {
        var scene = Scene(file: "test.scene")
        scene.masks = [SceneMask(name: "tree", polygon: ScenePolygon([ScenePoint(20, 20), ScenePoint(120, 20), ScenePoint(120, 100), ScenePoint(20, 100)]))]
        scene.zones = [SceneZone(name: "bay", polygon: ScenePolygon([ScenePoint(180, 120), ScenePoint(300, 120), ScenePoint(300, 220), ScenePoint(180, 220)]))]
        let frame = try Self.painted(scene, grey: 128)
        let hatch = BoxPainter.yuv(SceneDrawing.maskColour, colorSpace: AVCOL_SPC_BT470BG, fullRange: false).0
        let black = BoxPainter.yuv(0, colorSpace: AVCOL_SPC_BT470BG, fullRange: false).0
        let darkened = UInt8((128 * 2 + Int(black) * 2 + 2) >> 2)
        var stripes = 0, dark = 0
        for y in 30..<90 {
            for x in 30..<110 {
                let v = Self.luma(frame, x, y)
                if v == hatch { stripes += 1 } else if v == darkened { dark += 1 }
                #expect(v == hatch || v == darkened, "inside the mask at \(x),\(y): \(v)")
            }
        }
        // 3 of every 12 diagonals are stripes.
        #expect(abs(Double(stripes) / Double(stripes + dark) - 0.25) < 0.02, "\(stripes) stripe pixels, \(dark) dark ones")
        #expect(Self.luma(frame, 20, 60) == hatch && Self.luma(frame, 70, 20) == hatch, "the mask's outline")
        #expect(Self.luma(frame, 150, 60) == 128 && Self.luma(frame, 10, 10) == 128, "outside: untouched")

        let cyan = BoxPainter.yuv(SceneDrawing.zoneColour, colorSpace: AVCOL_SPC_BT470BG, fullRange: false).0
        #expect(Self.luma(frame, 180, 170) == cyan && Self.luma(frame, 240, 220) == cyan, "the zone's outline")
        #expect(Self.luma(frame, 240, 170) == UInt8((128 * 3 + Int(cyan) + 2) >> 2), "a quarter of cyan inside the zone")
    }

    @Test("texts: the names alone, or with the counts; the same counts give the same texts")
    func texts() {
        var scene = Scene(file: "test.scene")
        scene.lines = [SceneLine(name: "door", a: ScenePoint(0, 120), b: ScenePoint(320, 120))]
        scene.zones = [SceneZone(name: "bay", polygon: ScenePolygon([ScenePoint(0, 0), ScenePoint(50, 0), ScenePoint(50, 50)]))]
        scene.masks = [SceneMask(name: "tree", polygon: ScenePolygon([ScenePoint(0, 0), ScenePoint(9, 0), ScenePoint(9, 9)]))]
        var drawing = SceneDrawing(scene: scene, width: 320, height: 240)
        #expect(drawing.overlay(counts: nil).texts.map(\.text) == ["door", "bay", "tree (mask)"])
        var counts = SceneCounts(scene: scene)
        #expect(drawing.overlay(counts: counts).texts.map(\.text) == ["door in 0 out 0", "bay 0 inside", "tree (mask)"])
        counts.lines[0].inward = ["person": 2, "car": 1]
        counts.lines[0].outward = ["person": 1]
        counts.zones[0].objects = ["person": 2]
        let overlay = drawing.overlay(counts: counts)
        #expect(overlay.texts.map(\.text) == ["door in 3 out 1", "bay 2 inside", "tree (mask)"])
        #expect(drawing.overlay(counts: counts) == overlay)
        // The line's text sits on its `out` side (above a line whose `in` side is below).
        #expect(overlay.texts[0].y + Float(VideoWriterOptions.defaultFontSize(height: 240)) < 120)
    }
}
