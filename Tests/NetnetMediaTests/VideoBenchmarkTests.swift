import Foundation
import Testing
@testable import NetnetMedia
import CFFmpeg

/// Per-frame costs of the video path at 768×576 and 1920×1080 (10 s, 25 fps testsrc2, H.264 + AAC):
/// decode, prepare(frame:) at 300×300, drawing (canvas copy + outlines + labels), and
/// draw + encode (libx264 veryfast, crf 23) + mux. Prints a table; asserts nothing about speed.
/// Opt-in (it takes a while): NETNET_MEDIA_BENCH=1 swift test --filter VideoBenchmark
@Suite("Video benchmark", .serialized, .enabled(if: VideoFixtures.available && ProcessInfo.processInfo.environment["NETNET_MEDIA_BENCH"] != nil,
                                   "set NETNET_MEDIA_BENCH=1 to run the video benchmark"))
struct VideoBenchmarkTests {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Five boxes spread over the picture, with labels.
    static func boxes(width: Int, height: Int, frame: Int) -> [DrawnBox] {
        (0..<5).map { i in
            let w = Float(width), h = Float(height)
            let x = w * (0.05 + 0.17 * Float(i)) + Float(frame % 7)
            return DrawnBox(x1: x, y1: h * 0.3, x2: x + w * 0.15, y2: h * 0.85, label: "person 0.\(90 - i)", classIndex: i)
        }
    }

    @Test("decode, prepare, draw, draw+encode per frame", arguments: [(768, 576), (1920, 1080)])
    func perFrameCosts(width: Int, height: Int) throws {
        let fx = try VideoFixtures.get()
        let input = fx.path("bench-\(width)x\(height).mp4")
        if !FileManager.default.fileExists(atPath: input) {
            try run(Fixtures.ffmpegPath!, ["-nostdin", "-loglevel", "error", "-y",
                                           "-f", "lavfi", "-i", "testsrc2=size=\(width)x\(height):rate=25:duration=10",
                                           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10",
                                           "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", input])
        }

        // 1. Decode only (automatic decoder threads).
        var decoded = 0
        let decodeTime = try Self.seconds {
            let source = try VideoSource(options: VideoSourceOptions(url: input))
            let frame = VideoFrame()
            while try source.nextFrame(into: frame, audioSink: nil) { decoded += 1 }
        }

        // Keep a few decoded frames for the stages below.
        let source = try VideoSource(options: VideoSourceOptions(url: input))
        let frames = (0..<10).map { _ in VideoFrame() }
        for f in frames { #expect(try source.nextFrame(into: f, audioSink: nil)) }

        // 2. prepare(frame:) at 300×300.
        let preparer = InputPreparer(inputSize: 300, normalisation: InputPreparerTests.caffeBGR)
        var input300 = [Float](repeating: 0, count: 3 * 300 * 300)
        let prepareRuns = 100
        let prepareTime = try input300.withUnsafeMutableBufferPointer { buffer in
            try preparer.prepare(frame: frames[0], into: buffer.baseAddress!)   // first call allocates
            return try Self.seconds { for i in 0..<prepareRuns { try preparer.prepare(frame: frames[i % 10], into: buffer.baseAddress!) } }
        }

        // 3. Drawing alone: copy into the canvas, outlines, labels (the writer's steps before the encoder).
        let canvas = try Frame()
        try canvas.allocate(width: Int32(width), height: Int32(height), format: AV_PIX_FMT_YUV420P, subject: "bench")
        let painter = BoxPainter(thickness: max(2, 2 * Int((Double(height) / 540).rounded())), colorSpace: AVCOL_SPC_UNSPECIFIED, fullRange: false)
        let labels = try LabelRenderer(width: Int32(width), height: Int32(height), format: AV_PIX_FMT_YUV420P,
                                       timeBase: AVRational(num: 1, den: 12800), sampleAspectRatio: AVRational(num: 1, den: 1),
                                       fontFile: VideoWriterOptions(path: "x.mp4").fontFile,
                                       fontSize: max(10, Int((Double(height) * 0.028).rounded())), subject: "bench")
        let drawRuns = 200
        var copyTime = 0.0, outlineTime = 0.0, labelTime = 0.0
        for i in 0..<drawRuns {
            let boxes = Self.boxes(width: width, height: height, frame: i)
            copyTime += Self.seconds { netnet_frame_copy_pixels(canvas.pointer, frames[i % 10].frame.pointer, AV_PIX_FMT_YUV420P, Int32(width), Int32(height)) }
            outlineTime += Self.seconds { painter.paint(boxes, on: canvas) }
            var anchors: [(x: Int32, y: Int32, text: String)] = []
            for box in boxes {
                if let rect = BoxPainter.rectangle(box, width: width, height: height) {
                    let a = labels.anchor(for: rect, thickness: painter.thickness)
                    anchors.append((a.x, a.y, box.label))
                }
            }
            labelTime += try Self.seconds { try labels.render(anchors, on: canvas) }
        }

        // 4. Draw + encode + mux every frame (decode excluded from the timing), then finish.
        let output = fx.path("bench-\(width)x\(height)-out.mp4")
        let writeSource = try VideoSource(options: VideoSourceOptions(url: input))
        let writer = try VideoWriter(options: VideoWriterOptions(path: output), source: writeSource)
        let frame = VideoFrame()
        var writeTime = 0.0, written = 0, audioTime = 0.0
        while try writeSource.nextFrame(into: frame, audioSink: { packet in
            audioTime += (try? Self.seconds { try writer.writeAudio(packet) }) ?? 0
        }) {
            let boxes = Self.boxes(width: width, height: height, frame: written)
            writeTime += try Self.seconds { try writer.write(frame, boxes: boxes) }
            written += 1
        }
        writeTime += try Self.seconds { try writer.finish() }
        #expect(abs(try VideoFixtures.probeFrameCount(output) - decoded) <= 1)
        if let dump = ProcessInfo.processInfo.environment["NETNET_DUMP_FRAME"] {
            try ImageEncoder.write(try decodedFrame(output, index: 5), to: "\(dump).\(width)x\(height).png")
        }

        // Baseline: encode + mux with no boxes at all.
        let plainOutput = fx.path("bench-\(width)x\(height)-plain.mp4")
        let plainSource = try VideoSource(options: VideoSourceOptions(url: input))
        let plainWriter = try VideoWriter(options: VideoWriterOptions(path: plainOutput), source: plainSource)
        var plainTime = 0.0
        while try plainSource.nextFrame(into: frame, audioSink: { try? plainWriter.writeAudio($0) }) {
            plainTime += try Self.seconds { try plainWriter.write(frame, boxes: []) }
        }
        plainTime += try Self.seconds { try plainWriter.finish() }

        func ms(_ t: Double, _ n: Int) -> String { String(format: "%.2f ms", 1000 * t / Double(n)) }
        print("""
        [bench \(width)x\(height), \(ProcessInfo.processInfo.activeProcessorCount) cores] per frame:
          decode (h264, auto threads):          \(ms(decodeTime, decoded))   (\(decoded) frames)
          prepare(frame:) → 300x300 floats:     \(ms(prepareTime, prepareRuns))
          draw: canvas copy                     \(ms(copyTime, drawRuns))
          draw: 5 outlines                      \(ms(outlineTime, drawRuns))
          draw: 5 labels (drawtext)             \(ms(labelTime, drawRuns))
          write (copy+draw+x264 veryfast+mux):  \(ms(writeTime, written))
          write without boxes (copy+x264+mux):  \(ms(plainTime, written))
          audio copy per video frame:           \(ms(audioTime, written))
        """)
    }
}
