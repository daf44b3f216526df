import CFFmpeg
import Testing
@testable import NetnetMedia

/// The outline painter against the pixels it must (and must not) touch.
@Suite struct BoxPainterTests {
    /// A black 64×48 YUV 4:2:0 picture with one box painted on it.
    static func painted(_ box: DrawnBox) throws -> Frame {
        let frame = try Frame()
        try frame.allocate(width: 64, height: 48, format: AV_PIX_FMT_YUV420P, subject: "test")
        for plane in 0..<3 {
            let (data, stride) = frame.plane(plane)
            let rows = plane == 0 ? 48 : 24
            data!.update(repeating: 0, count: stride * rows)
        }
        BoxPainter(thickness: 2, colorSpace: AVCOL_SPC_BT709, fullRange: false).paint([box], on: frame)
        return frame
    }

    static func isSet(_ frame: Frame, plane: Int, x: Int, y: Int) -> Bool {
        let (data, stride) = frame.plane(plane)
        return data![y * stride + x] != 0
    }

    @Test("a solid outline covers its whole edge; a dashed one alternates 8 px dashes and gaps, chroma with it")
    func dashedOutline() throws {
        let solid = try Self.painted(DrawnBox(x1: 4, y1: 4, x2: 59, y2: 43, label: "", classIndex: 0))
        #expect((4...59).allSatisfy { Self.isSet(solid, plane: 0, x: $0, y: 4) })
        #expect((4...43).allSatisfy { Self.isSet(solid, plane: 0, x: 4, y: $0) })
        #expect(!Self.isSet(solid, plane: 0, x: 30, y: 20), "inside stays untouched")

        let dashed = try Self.painted(DrawnBox(x1: 4, y1: 4, x2: 59, y2: 43, label: "", classIndex: 0, dashed: true))
        for x in 4...59 {
            let on = (x - 4) / BoxPainter.dash % 2 == 0
            #expect(Self.isSet(dashed, plane: 0, x: x, y: 4) == on, "top edge at x = \(x)")
            #expect(Self.isSet(dashed, plane: 0, x: x, y: 43) == on, "bottom edge at x = \(x)")
            #expect(Self.isSet(dashed, plane: 1, x: x / 2, y: 2) == on, "chroma top edge at x = \(x)")
        }
        for y in 6...41 {
            let on = (y - 4) / BoxPainter.dash % 2 == 0
            #expect(Self.isSet(dashed, plane: 0, x: 4, y: y) == on, "left edge at y = \(y)")
            #expect(Self.isSet(dashed, plane: 0, x: 59, y: y) == on, "right edge at y = \(y)")
        }
        #expect(!Self.isSet(dashed, plane: 0, x: 30, y: 20))
    }
}
