import Foundation
import Testing
@testable import NetnetMedia
import CFFmpeg

/// Copies `input` to `output` through VideoSource → VideoWriter, drawing `boxes(frameIndex)` on every
/// frame (at most `limit` frames). Returns (frames written, audio packets written).
@discardableResult
func annotate(_ input: String, to output: String, limit: Int = .max, options adjust: (inout VideoWriterOptions) -> Void = { _ in },
              boxes: (Int) -> [DrawnBox]) throws -> (frames: Int, audio: Int) {
    let source = try VideoSource(options: VideoSourceOptions(url: input))
    var options = VideoWriterOptions(path: output)
    adjust(&options)
    let writer = try VideoWriter(options: options, source: source)
    let frame = VideoFrame()
    var audio = 0
    var audioError: (any Error)? = nil
    while writer.framesWritten < limit, try source.nextFrame(into: frame, audioSink: { packet in
        do { try writer.writeAudio(packet); audio += 1 } catch { audioError = error }
    }) {
        try writer.write(frame, boxes: boxes(frame.index))
    }
    if let audioError { throw audioError }
    try writer.finish()
    return (writer.framesWritten, audio)
}

/// Decoded BGR picture of frame `index` of `path`.
func decodedFrame(_ path: String, index: Int) throws -> BGRImage {
    let source = try VideoSource(options: VideoSourceOptions(url: path))
    let frame = VideoFrame()
    while try source.nextFrame(into: frame, audioSink: nil) {
        if frame.index == index {
            let converter = try FrameConverter(outputFormat: AV_PIX_FMT_BGR24, flags: ImageDecoder.conversionFlags)
            return try converter.bgrImage(from: frame.frame, subject: path)
        }
    }
    throw MediaError("\(path): no frame \(index)")
}

@Suite("VideoWriter", .enabled(if: VideoFixtures.available, VideoFixtures.skipMessage))
struct VideoWriterTests {
    let fx: VideoFixtures
    init() throws { fx = try VideoFixtures.get() }

    func outputPath(_ name: String) -> String { fx.path("w-\(UUID().uuidString.prefix(8))-\(name)") }

    static let boxes = [
        DrawnBox(x1: 40, y1: 60, x2: 200, y2: 180, label: "person 0.91", classIndex: 0),
        DrawnBox(x1: 150, y1: 20, x2: 300, y2: 120, label: "car 0.50", classIndex: 3),
    ]

    @Test("every frame written with boxes: frame count, duration, audio, box pixels", arguments: ["mp4", "mkv"])
    func writesEveryFrame(ext: String) throws {
        let input = fx.path("solid.\(ext)")
        let output = outputPath("out.\(ext)")
        let (frames, audio) = try annotate(input, to: output) { _ in Self.boxes }
        let expectedFrames = try VideoFixtures.probeFrameCount(input)
        let outFrames = try VideoFixtures.probeFrameCount(output)
        #expect(frames == expectedFrames)
        #expect(abs(outFrames - expectedFrames) <= 1, "\(output): \(outFrames) frames, input \(expectedFrames)")
        let inDuration = try VideoFixtures.probeDuration(input), outDuration = try VideoFixtures.probeDuration(output)
        #expect(abs(inDuration - outDuration) < 0.1, "duration \(outDuration) s, input \(inDuration) s")
        #expect(audio > 100)
        let inAudio = try #require(try VideoFixtures.probeAudio(input))
        let outAudio = try #require(try VideoFixtures.probeAudio(output), "no audio stream in \(output)")
        #expect(outAudio.codec == inAudio.codec && outAudio.sampleRate == inAudio.sampleRate)
        print("\(output): \(outFrames) frames, \(outDuration) s, audio \(outAudio)")

        // The boxes are really drawn: outline pixels have the class colour, the inside stays grey.
        let image = try decodedFrame(output, index: 10)
        if let dump = ProcessInfo.processInfo.environment["NETNET_DUMP_FRAME"] { try ImageEncoder.write(image, to: dump + "." + ext + ".png") }
        func near(_ x: Int, _ y: Int, _ colour: (red: UInt8, green: UInt8, blue: UInt8), _ tolerance: Int) -> Bool {
            let p = image.pixel(x: x, y: y)
            return abs(Int(p.r) - Int(colour.red)) <= tolerance && abs(Int(p.g) - Int(colour.green)) <= tolerance
                && abs(Int(p.b) - Int(colour.blue)) <= tolerance
        }
        let red = DrawnBox.colour(forClass: 0), green = DrawnBox.colour(forClass: 3), grey: (red: UInt8, green: UInt8, blue: UInt8) = (128, 128, 128)
        var leftEdgeHits = 0, rightEdgeHits = 0, bottomEdgeHits = 0
        for y in stride(from: 90, through: 170, by: 4) where near(40, y, red, 48) { leftEdgeHits += 1 }
        for y in stride(from: 40, through: 110, by: 4) where near(300, y, green, 48) { rightEdgeHits += 1 }
        for x in stride(from: 50, through: 140, by: 4) where near(x, 180, red, 48) { bottomEdgeHits += 1 }
        #expect(leftEdgeHits >= 19, "left edge of box 0: \(leftEdgeHits)/21 pixels have its colour; e.g. \(image.pixel(x: 40, y: 120))")
        #expect(rightEdgeHits >= 16, "right edge of box 3: \(rightEdgeHits)/18; e.g. \(image.pixel(x: 300, y: 80))")
        #expect(bottomEdgeHits >= 21, "bottom edge of box 0: \(bottomEdgeHits)/23; e.g. \(image.pixel(x: 100, y: 180))")
        #expect(near(100, 150, grey, 12), "inside box 0: \(image.pixel(x: 100, y: 150))")
        #expect(near(250, 200, grey, 12), "outside the boxes: \(image.pixel(x: 250, y: 200))")
        #expect(!near(44, 150, red, 48), "the outline is thicker than expected")
        // The label: white text on a dark background just above box 0 (y ≈ 46…58).
        var bright = 0, dark = 0
        for y in 44..<60 { for x in 42..<110 {
            let p = image.pixel(x: x, y: y)
            if p.g > 200 && p.r > 200 && p.b > 200 { bright += 1 }
            if p.g < 80 && p.r < 80 && p.b < 80 { dark += 1 }
        } }
        #expect(bright > 30 && dark > 100, "label above box 0: \(bright) white and \(dark) dark pixels")
    }

    @Test("a partial output plays: 20 frames, finish(), ffprobe counts 20 ± 1")
    func partial() throws {
        let output = outputPath("partial.mp4")
        let source = try VideoSource(options: VideoSourceOptions(url: fx.path("clip.mp4")))
        let writer = try VideoWriter(options: VideoWriterOptions(path: output), source: source)
        let frame = VideoFrame()
        while writer.framesWritten < 20, try source.nextFrame(into: frame, audioSink: { try? writer.writeAudio($0) }) {
            try writer.write(frame, boxes: [])
        }
        try writer.finish()
        try writer.finish()   // idempotent
        #expect(throws: MediaError.self) { try writer.write(frame, boxes: []) }
        let n = try VideoFixtures.probeFrameCount(output)
        #expect(abs(n - 20) <= 1, "\(n) frames")
        #expect(abs(try VideoFixtures.probeDuration(output) - 0.8) < 0.1)
    }

    @Test("steady state: the canvas is allocated once, labels and encoder give its buffers back")
    func canvasReused() throws {
        let source = try VideoSource(options: VideoSourceOptions(url: fx.path("clip.mp4")))
        let writer = try VideoWriter(options: VideoWriterOptions(path: outputPath("reuse.mkv")), source: source)
        let frame = VideoFrame()
        for i in 0..<40 {
            #expect(try source.nextFrame(into: frame, audioSink: nil))
            try writer.write(frame, boxes: i % 3 == 0 ? [] : Self.boxes)
        }
        try writer.finish()
        #expect(writer.canvasAllocations == 1)
    }

    @Test("an overlay's shapes are rasterised once while they stay equal; its texts may change every frame")
    func overlayRasterisedOnce() throws {
        let source = try VideoSource(options: VideoSourceOptions(url: fx.path("clip.mp4")))
        let writer = try VideoWriter(options: VideoWriterOptions(path: outputPath("overlay.mkv")), source: source)
        let frame = VideoFrame()
        let line = OverlayShape(points: [OverlayPoint(0, 20), OverlayPoint(60, 20)], closed: false, thickness: 4, colour: 0xFFFF00)
        for i in 0..<10 {
            #expect(try source.nextFrame(into: frame, audioSink: nil))
            let shapes = i < 6 ? [line] : [line, OverlayShape(points: [OverlayPoint(5, 5), OverlayPoint(30, 5), OverlayPoint(5, 30)],
                                                               closed: true, thickness: 2, fill: .hatch, colour: 0xC0C0C0)]
            try writer.write(frame, boxes: Self.boxes, overlay: OverlayDrawing(shapes: shapes, texts: [OverlayText(x: 2, y: 2, text: "in \(i)")]))
        }
        try writer.finish()
        #expect(writer.overlayRasterisations == 2)
        #expect(writer.canvasAllocations == 1)
    }

    @Test("a writer released without finish() still leaves a playable file")
    func releasedWithoutFinish() throws {
        let output = outputPath("dropped.mkv")
        do {
            let source = try VideoSource(options: VideoSourceOptions(url: fx.path("clip.mkv")))
            let writer = try VideoWriter(options: VideoWriterOptions(path: output), source: source)
            let frame = VideoFrame()
            for _ in 0..<10 {
                #expect(try source.nextFrame(into: frame, audioSink: nil))
                try writer.write(frame, boxes: Self.boxes)
            }
        }
        #expect(abs(try VideoFixtures.probeFrameCount(output) - 10) <= 1)
    }

    @Test("every container the extension names; AAC (raw or ADTS from TS) into each",
          arguments: [("clip.mov", "mov"), ("clip.avi", "avi"), ("clip.ts", "ts"),
                      ("clip.mp4", "avi"), ("clip.mp4", "ts"), ("clip.ts", "mp4"), ("clip.ts", "mkv"), ("clip.avi", "mkv")])
    func otherContainers(inputName: String, ext: String) throws {
        let input = fx.path(inputName)
        let output = outputPath("out.\(ext)")
        try annotate(input, to: output) { _ in Self.boxes }
        let expected = try VideoFixtures.probeFrameCount(input)
        #expect(abs(try VideoFixtures.probeFrameCount(output) - expected) <= 1)
        #expect(abs(try VideoFixtures.probeDuration(output) - VideoFixtures.probeDuration(input)) < 0.15)
        let inAudio = try #require(try VideoFixtures.probeAudio(input))
        let outAudio = try #require(try VideoFixtures.probeAudio(output), "no audio stream in \(output)")
        #expect(outAudio.codec == inAudio.codec && outAudio.sampleRate == inAudio.sampleRate)
    }

    @Test("odd-sized 4:2:2 source: converted to even-sized 4:2:0, every frame kept")
    func oddSize422() throws {
        let output = outputPath("odd.mp4")
        try annotate(fx.path("odd422.mkv"), to: output) { _ in
            [DrawnBox(x1: -10, y1: -10, x2: 400, y2: 400, label: "everything 1.00", classIndex: 7),
             DrawnBox(x1: 150, y1: 90, x2: 170, y2: 110, label: "corner 0.10", classIndex: -3),
             DrawnBox(x1: .nan, y1: 0, x2: 10, y2: 10, label: "nan", classIndex: 1)]
        }
        #expect(try VideoFixtures.probeFrameCount(output) == 25)
        let image = try decodedFrame(output, index: 3)
        #expect(image.width == 160 && image.height == 96)
    }

    @Test("the source's display rotation is kept (mp4/mov; FFmpeg 5.1's Matroska muxer cannot store it)", arguments: ["mp4", "mov"])
    func rotation(ext: String) throws {
        let output = outputPath("rotated.\(ext)")
        try annotate(fx.path("rotated.mp4"), to: output) { _ in Self.boxes }
        func rotation(_ path: String) throws -> String {
            try run(VideoFixtures.ffprobePath!, ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream_side_data=rotation",
                                                 "-of", "csv=p=0", path]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let original = try rotation(fx.path("rotated.mp4"))
        #expect(!original.isEmpty)
        #expect(try rotation(output) == original)
    }

    @Test("frames without pts get index / rate")
    func framesWithoutPts() throws {
        let output = outputPath("nopts.mkv")
        let source = try VideoSource(options: VideoSourceOptions(url: fx.path("clip.mp4")))
        var options = VideoWriterOptions(path: output)
        options.copyAudio = false
        let writer = try VideoWriter(options: options, source: source)
        let frame = VideoFrame()
        for _ in 0..<25 {
            #expect(try source.nextFrame(into: frame, audioSink: nil))
            frame.pts = nil
            try writer.write(frame, boxes: [])
        }
        try writer.finish()
        #expect(try VideoFixtures.probeFrameCount(output) == 25)
        #expect(abs(try VideoFixtures.probeDuration(output) - 1.0) < 0.1)
        #expect(try VideoFixtures.probeAudio(output) == nil)
    }

    @Test("repeated or backwards pts never reach the muxer as non-monotonic timestamps",
          arguments: [("clip.mp4", "mp4"), ("clip.ts", "mkv"), ("clip.ts", "avi")])
    func nonMonotonicPts(input: String, ext: String) throws {
        let output = outputPath("backwards.\(ext)")
        let source = try VideoSource(options: VideoSourceOptions(url: fx.path(input)))
        let writer = try VideoWriter(options: VideoWriterOptions(path: output), source: source)
        let frame = VideoFrame()
        var previous: Int64? = nil
        for i in 0..<20 {
            #expect(try source.nextFrame(into: frame, audioSink: nil))
            if i % 5 == 4 { frame.pts = 0 }   // jumps back to the start
            if i % 5 == 2, let previous { frame.pts = previous + 1 }   // 1 tick (1/90000 s for ts) after the previous frame
            previous = frame.pts
            try writer.write(frame, boxes: [])
        }
        try writer.finish()
        #expect(try VideoFixtures.probeFrameCount(output) == 20)
    }

    @Test("PCM audio into mp4 fails in init with a clear message; into mkv it is copied")
    func unsupportedAudio() throws {
        let source = try VideoSource(options: VideoSourceOptions(url: fx.path("pcm.mkv")))
        let output = outputPath("pcm.mp4")
        do {
            _ = try VideoWriter(options: VideoWriterOptions(path: output), source: source)
            Issue.record("pcm_s16le into mp4 was accepted")
        } catch let error as MediaError {
            print("[pcm → mp4] \(error.description)")
            #expect(error.description.hasPrefix(output + ": "))
            #expect(error.description.contains("pcm_s16le"))
        }
        let mkv = outputPath("pcm.mkv")
        try annotate(fx.path("pcm.mkv"), to: mkv) { _ in [] }
        #expect(try VideoFixtures.probeAudio(mkv)?.codec == "pcm_s16le")
    }

    @Test("bad output paths and options throw MediaError naming the path")
    func badOutputs() throws {
        let source = try VideoSource(options: VideoSourceOptions(url: fx.path("clip.mp4")))
        for (path, adjust) in [
            (fx.path("x.unknownext"), { (_: inout VideoWriterOptions) in }),
            (fx.path("no/such/dir/x.mp4"), { (_: inout VideoWriterOptions) in }),
            (fx.path("x.mp4"), { (o: inout VideoWriterOptions) in o.codec = "nosuchcodec" }),
            (fx.path("y.mp4"), { (o: inout VideoWriterOptions) in o.fontFile = "/no/such/font.ttf" }),
            (fx.path("z.mp4"), { (o: inout VideoWriterOptions) in o.encoderParams = "me=dia:subme" }),
            (fx.path("v.mp4"), { (o: inout VideoWriterOptions) in o.codec = "mpeg4"; o.encoderParams = "me=dia" }),
        ] as [(String, (inout VideoWriterOptions) -> Void)] {
            var options = VideoWriterOptions(path: path)
            adjust(&options)
            do {
                _ = try VideoWriter(options: options, source: source)
                Issue.record("\(path) accepted")
            } catch let error as MediaError {
                print("[\(path)] \(error.description)")
                #expect(error.description.hasPrefix(path + ": "))
            }
        }
    }

    /// x264 writes the settings it ran with into the stream (an SEI text, "… me=dia subme=1 …"),
    /// so the output itself says whether the parameters reached the encoder.
    @Test("encoder parameters reach x264: the automatic ones at veryfast, none with \"\", the user's otherwise")
    func encoderParams() throws {
        for (params, preset, expected) in [
            (nil, "veryfast", ["me=dia", "subme=1"]),        // automatic: superfast's motion search
            ("", "veryfast", ["me=hex", "subme=2"]),         // veryfast's own
            (nil, "faster", ["me=hex", "subme=4"]),          // automatic is only for veryfast
            ("subme=3:ref=2", "veryfast", ["subme=3", "ref=2"]),
        ] as [(String?, String, [String])] {
            let output = outputPath("params.mp4")
            try annotate(fx.path("clip.mp4"), to: output, limit: 5, options: { options in
                options.encoderParams = params; options.preset = preset
            }) { _ in [] }
            let stream = String(decoding: try Data(contentsOf: URL(fileURLWithPath: output)), as: UTF8.self)
            let settings = try #require(stream.range(of: "options: ").map { stream[$0.upperBound...].prefix(1500).prefix { $0 != "\0" } },
                                        "\(output): no x264 settings text")
            let words = Set(settings.split(separator: " ").map(String.init))
            for word in expected { #expect(words.contains(word), "\(params ?? "nil") at \(preset): no \(word) in \(settings)") }
        }
        #expect(VideoWriterOptions.encoderParamsProblem("me=dia:subme=1", codec: "libx264") == nil)
        #expect(VideoWriterOptions.encoderParamsProblem("", codec: "mpeg4") == nil)
        for bad in ["me", "=dia", "me=", "me=dia:", ":me=dia", "me=dia::subme=1"] {
            #expect(VideoWriterOptions.encoderParamsProblem(bad, codec: "libx264") != nil, "\(bad) accepted")
        }
        // x264's own parser judges names and values: FFmpeg would only warn and drop the pair.
        #expect(VideoWriterOptions.encoderParamsProblem("me=dia:nosuchparam=1", codec: "libx264") == "x264 has no parameter 'nosuchparam'")
        #expect(VideoWriterOptions.encoderParamsProblem("subme=abc", codec: "libx264") == "x264 does not take 'abc' for subme")
        #expect(VideoWriterOptions.encoderParamsProblem("me=spiral", codec: "libx264") == "x264 does not take 'spiral' for me")
        #expect(VideoWriterOptions.encoderParamsProblem("no-mbtree=1:rc-lookahead=20:psy-rd=1.0,0.15", codec: "libx264") == nil)
        // libx265's parser likewise (FFmpeg here is built with it).
        #expect(VideoWriterOptions.encoderParamsProblem("rc-lookahead=10:bframes=2", codec: "libx265") == nil)
        #expect(VideoWriterOptions.encoderParamsProblem("bframes=2:nosuchparam=1", codec: "libx265") == "x265 has no parameter 'nosuchparam'")
        #expect(VideoWriterOptions.encoderParamsProblem("me=spiral", codec: "libx265") == "x265 does not take 'spiral' for me")
    }

    @Test("labels: long, non-ASCII and with % or \\ are drawn literally; truncation keeps UTF-8 valid")
    func labelTexts() throws {
        #expect(LabelRenderer.truncatedUTF8(String(repeating: "é", count: 40), maxBytes: 63).utf8.count == 62)
        #expect(LabelRenderer.truncatedUTF8("person 0.91", maxBytes: 63) == "person 0.91")
        let output = outputPath("labels.mkv")
        try annotate(fx.path("clip.mkv"), to: output, limit: 5) { i in
            [DrawnBox(x1: 10, y1: 0, x2: 100, y2: 50, label: "100% \\n %{pts} été 0.99", classIndex: i),
             DrawnBox(x1: 250, y1: 200, x2: 330, y2: 250, label: String(repeating: "long", count: 30), classIndex: 19)]
        }
        #expect(try VideoFixtures.probeFrameCount(output) == 5)
    }
}
