import Foundation
import Testing
@testable import NetnetMedia

@Suite("snapshot encoder")
struct SnapshotEncoderTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/ffmpeg"), "needs /usr/bin/ffmpeg"))
    func jpegOfADecodedFrameWithABox() throws {
        let dir = NSTemporaryDirectory() + "netnet-snapshot-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clip = dir + "/grey.mp4"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        p.arguments = ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:size=160x120:rate=5", "-t", "1",
                       "-c:v", "libx264", "-pix_fmt", "yuv420p", clip]
        try p.run(); p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let source = try VideoSource(options: VideoSourceOptions(url: clip))
        let frame = VideoFrame()
        #expect(try source.nextFrame(into: frame, audioSink: nil))
        // A second reference survives the first frame being reused.
        let kept = VideoFrame()
        try kept.reference(frame)
        #expect(try source.nextFrame(into: frame, audioSink: nil))
        #expect(kept.width == 160 && kept.height == 120 && !kept.isEmpty)

        let encoder = SnapshotEncoder()
        let box = DrawnBox(x1: 40, y1: 30, x2: 120, y2: 90, label: "person", classIndex: 0)
        let bytes = try encoder.jpeg(kept, boxes: [box])
        #expect(bytes.starts(with: [0xFF, 0xD8]) && bytes.suffix(2) == [0xFF, 0xD9])
        let path = dir + "/snap.jpg"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let image = try ImageDecoder.decodeFirstFrame(path: path)
        #expect(image.width == 160 && image.height == 120)
        // The outline has the class colour; the inside stays grey.
        let (r, g, b) = BoxPainterColour.expected(classIndex: 0)
        let edge = image.pixel(x: 80, y: 30), inside = image.pixel(x: 80, y: 60)
        #expect(abs(Int(edge.r) - Int(r)) < 40 && abs(Int(edge.g) - Int(g)) < 40 && abs(Int(edge.b) - Int(b)) < 40, "\(edge)")
        #expect(abs(Int(inside.r) - Int(inside.g)) < 8 && abs(Int(inside.g) - Int(inside.b)) < 8, "\(inside)")
        // Reused for a second picture; an empty frame is an error.
        #expect(try encoder.jpeg(kept, boxes: []).count > 100)
        #expect(throws: MediaError.self) { try encoder.jpeg(VideoFrame(), boxes: []) }
    }
}

enum BoxPainterColour {
    static func expected(classIndex: Int) -> (UInt8, UInt8, UInt8) {
        let c = DrawnBox.colour(forClass: classIndex)
        return (c.red, c.green, c.blue)
    }
}
