import Foundation
import Testing
@testable import NetnetMedia
import CFFmpeg

private let ffmpegMissing = Fixtures.skipMessage

/// Asserts every pixel of `image` is (b, g, r) within ±tolerance.
private func expectSolid(_ image: BGRImage, b: Int, g: Int, r: Int, tolerance: Int, _ label: String) {
    var worst = 0
    for i in stride(from: 0, to: image.pixels.count, by: 3) {
        worst = max(worst, abs(Int(image.pixels[i]) - b), abs(Int(image.pixels[i + 1]) - g), abs(Int(image.pixels[i + 2]) - r))
    }
    #expect(worst <= tolerance, "\(label): max channel error \(worst) > \(tolerance); first pixel \(image.pixel(x: 0, y: 0))")
}

@Suite("ImageDecoder", .enabled(if: Fixtures.ffmpegAvailable, ffmpegMissing))
struct ImageDecoderTests {
    let fx: Fixtures
    init() throws { fx = try Fixtures.get() }

    @Test("dimensions of decoded images and videos", arguments: [
        ("testsrc.png", 320, 240), ("testsrc.jpg", 320, 240), ("testsrc.bmp", 320, 240),
        ("odd.png", 161, 97), ("odd.jpg", 161, 97), ("gray.png", 320, 240), ("pal8.png", 161, 97),
        ("odd-gray.png", 161, 97), ("rgb48.png", 320, 240), ("rgba.png", 320, 240),
        ("video.mp4", 320, 240), ("solid-odd.jpg", 65, 49), ("solid-rgb48.png", 64, 48),
    ])
    func dimensions(name: String, width: Int, height: Int) throws {
        let image = try ImageDecoder.decodeFirstFrame(path: fx.path(name))
        #expect(image.width == width)
        #expect(image.height == height)
        #expect(image.pixels.count == width * height * 3)
    }

    @Test("solid colour 0x3366CC decodes to B=0xCC G=0x66 R=0x33", arguments: [
        ("solid.png", 2), ("solid-rgba.png", 2), ("solid-pal8.png", 2), ("solid-rgb48.png", 2),
        ("solid.jpg", 3), ("solid-odd.jpg", 3), ("solid.mp4", 3),
    ])
    func solidColour(name: String, tolerance: Int) throws {
        let image = try ImageDecoder.decodeFirstFrame(path: fx.path(name))
        expectSolid(image, b: 0xCC, g: 0x66, r: 0x33, tolerance: tolerance, name)
    }

    @Test("gray png decodes to equal B, G, R")
    func solidGray() throws {
        let image = try ImageDecoder.decodeFirstFrame(path: fx.path("solid-gray.png"))
        expectSolid(image, b: 0x80, g: 0x80, r: 0x80, tolerance: 0, "solid-gray.png")
        let testsrc = try ImageDecoder.decodeFirstFrame(path: fx.path("gray.png"))
        var equal = true
        for i in stride(from: 0, to: testsrc.pixels.count, by: 3) where testsrc.pixels[i] != testsrc.pixels[i + 1] || testsrc.pixels[i] != testsrc.pixels[i + 2] {
            equal = false
        }
        #expect(equal)
    }

    @Test("lossless formats match ffmpeg's own bgr24 output exactly",
          arguments: ["testsrc.png", "odd.png", "gray.png", "rgba.png", "pal8.png", "odd-gray.png", "testsrc.bmp"])
    func matchesFFmpegCLI(name: String) throws {
        let image = try ImageDecoder.decodeFirstFrame(path: fx.path(name))
        let reference = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fx.path(name + ".bgr"))))
        #expect(image.pixels == reference)
    }

    @Test("YUV → BGR matches a float BT.601 reference with bilinear chroma at the stream's chroma position",
          arguments: [("testsrc.jpg", true, false), ("testsrc422.jpg", true, false), ("testsrc444.jpg", true, false),
                      ("odd.jpg", true, false), ("solid-odd.jpg", true, false),
                      ("video.mp4", false, true)])   // H.264: limited range, chroma left-sited
    func yuvConversionAccuracy(name: String, fullRange: Bool, chromaLeft: Bool) throws {
        let path = fx.path(name)
        let (y, u, v, width, height, cw, ch) = try rawPlanes(path)
        let image = try ImageDecoder.decodeFirstFrame(path: path)
        try #require(image.width == width && image.height == height)
        func sample(_ plane: [UInt8], _ x: Int, _ yy: Int) -> Double {
            // luma coordinate p → chroma coordinate: centred siting (p + 0.5)/2 - 0.5, left siting p/2.
            func axis(_ p: Int, _ luma: Int, _ chroma: Int, left: Bool) -> (Int, Int, Double) {
                if luma == chroma { return (p, p, 0) }
                let pos = left ? Double(p) / 2 : (Double(p) + 0.5) / 2 - 0.5
                let p0 = Int(pos.rounded(.down)), f = pos - pos.rounded(.down)
                return (min(max(p0, 0), chroma - 1), min(max(p0 + 1, 0), chroma - 1), f)
            }
            let (x0, x1, fx) = axis(x, width, cw, left: chromaLeft), (y0, y1, fy) = axis(yy, height, ch, left: false)
            func at(_ a: Int, _ b: Int) -> Double { Double(plane[b * cw + a]) }
            return (at(x0, y0) * (1 - fx) + at(x1, y0) * fx) * (1 - fy) + (at(x0, y1) * (1 - fx) + at(x1, y1) * fx) * fy
        }
        var worst = 0, total = 0
        for yy in 0..<height {
            for x in 0..<width {
                var lum = Double(y[yy * width + x]), cb = sample(u, x, yy) - 128, cr = sample(v, x, yy) - 128
                if !fullRange { lum = (lum - 16) * 255 / 219; cb *= 255 / 224; cr *= 255 / 224 }
                let ref = [lum + 1.772 * cb, lum - 0.344136 * cb - 0.714136 * cr, lum + 1.402 * cr]   // B, G, R
                for c in 0..<3 {
                    let expected = Int(min(max(ref[c].rounded(), 0), 255))
                    let d = abs(Int(image.pixels[(yy * width + x) * 3 + c]) - expected)
                    worst = max(worst, d); total += d
                }
            }
        }
        let mean = Double(total) / Double(width * height * 3)
        print("\(name): BGR vs float reference: mean \(mean), worst \(worst)")
        #expect(worst <= 2 && mean < 0.5, "\(name): mean \(mean), worst \(worst)")
    }

    @Test("paths with %, spaces and non-ASCII are taken literally (no image2 sequence patterns)")
    func literalPaths() throws {
        let odd = fx.path("we%d 100% é*.png")
        try? FileManager.default.removeItem(atPath: odd)
        try FileManager.default.copyItem(atPath: fx.path("odd.png"), toPath: odd)
        let image = try ImageDecoder.decodeFirstFrame(path: odd)
        #expect(image.width == 161 && image.height == 97)
    }

    @Test("video first frame is the first frame (not a later one)")
    func videoFirstFrame() throws {
        let video = try ImageDecoder.decodeFirstFrame(path: fx.path("video.mp4"))
        let still = try ImageDecoder.decodeFirstFrame(path: fx.path("testsrc.png"))   // testsrc2 frame 0
        var sum = 0
        for (a, b) in zip(video.pixels, still.pixels) { sum += abs(Int(a) - Int(b)) }
        let mean = Double(sum) / Double(still.pixels.count)
        #expect(mean < 6, "video frame 0 vs testsrc2 frame 0: mean abs difference \(mean)")
    }

    @Test("decoding from many tasks at once")
    func concurrentDecodes() async throws {
        let names = ["testsrc.png", "testsrc.jpg", "odd.png", "video.mp4", "gray.png", "solid.jpg", "testsrc.bmp", "odd.jpg"]
        let fx = self.fx
        let sizes = try await withThrowingTaskGroup(of: Int.self) { group in
            for name in names { group.addTask { try ImageDecoder.decodeFirstFrame(path: fx.path(name)).width } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(sizes.count == names.count)
    }
}

/// Needs no ffmpeg CLI, only the shared data set (never copied into the package).
@Suite("Real photo")
struct RealPhotoTests {
    @Test("real COCO photo 000000000009.jpg is 640x480",
          .enabled(if: FileManager.default.fileExists(atPath: "/work/shared/data/coco128-train/images/000000000009.jpg"),
                   "/work/shared/data/coco128-train/images/000000000009.jpg not present"))
    func realPhoto() throws {
        let image = try ImageDecoder.decodeFirstFrame(path: "/work/shared/data/coco128-train/images/000000000009.jpg")
        #expect(image.width == 640)
        #expect(image.height == 480)
        let mean = Double(image.pixels.reduce(0) { $0 + Int($1) }) / Double(image.pixels.count)
        #expect(mean > 20 && mean < 235, "photo looks blank: mean \(mean)")
    }
}

@Suite("ImageDecoder errors", .enabled(if: Fixtures.ffmpegAvailable, ffmpegMissing))
struct ImageDecoderErrorTests {
    let fx: Fixtures
    init() throws { fx = try Fixtures.get() }

    private func decodeError(_ path: String) -> MediaError? {
        do {
            _ = try ImageDecoder.decodeFirstFrame(path: path)
            return nil
        } catch let error as MediaError {
            return error
        } catch {
            Issue.record("not a MediaError: \(error)")
            return nil
        }
    }

    @Test("missing file: message names the path and says No such file")
    func missingFile() throws {
        let path = fx.path("does-not-exist.jpg")
        let error = try #require(decodeError(path))
        #expect(error.description.contains(path))
        #expect(error.description.contains("No such file"))
        #expect(error.code < 0)
    }

    @Test("broken inputs throw MediaError naming the path", arguments: ["text.jpg", "empty.png", "truncated.png", "audio.wav"])
    func brokenInputs(name: String) throws {
        let path = fx.path(name)
        let error = try #require(decodeError(path), "\(name) decoded without error")
        #expect(error.description.hasPrefix(path + ": "), "\(error.description)")
        #expect(!error.description.contains("\n"))
        print("[\(name)] \(error.description) (code \(error.code))")
    }

    @Test("audio-only file: no video stream")
    func noVideoStream() throws {
        let error = try #require(decodeError(fx.path("audio.wav")))
        #expect(error.description.contains("no video stream"))
    }

    @Test("a directory is not an image")
    func directory() throws {
        #expect(decodeError(fx.dir) != nil)
    }
}

/// The decoder's own planes for an 8-bit planar YUV file (no conversion), via the internal demuxer/decoder classes.
private func rawPlanes(_ path: String) throws -> (y: [UInt8], u: [UInt8], v: [UInt8], width: Int, height: Int, chromaWidth: Int, chromaHeight: Int) {
    let input = try MediaInput(url: path)
    let decoder = try VideoDecoder(input: input)
    let packet = try Packet(), frame = try Frame()
    var got = false
    while !got, try input.read(into: packet) {
        guard packet.streamIndex == decoder.streamIndex else { continue }
        _ = try decoder.send(packet)
        got = try decoder.receive(into: frame) == .frame
    }
    if !got {
        _ = try decoder.send(nil)
        got = try decoder.receive(into: frame) == .frame
    }
    try #require(got)
    let desc = try #require(av_pix_fmt_desc_get(frame.pixelFormat))
    let width = Int(frame.width), height = Int(frame.height)
    let cw = -((-width) >> Int(desc.pointee.log2_chroma_w)), ch = -((-height) >> Int(desc.pointee.log2_chroma_h))
    func copy(_ index: Int, _ w: Int, _ h: Int) -> [UInt8] {
        let (data, linesize) = frame.plane(index)
        var out = [UInt8](repeating: 0, count: w * h)
        for row in 0..<h { for x in 0..<w { out[row * w + x] = data![row * linesize + x] } }
        return out
    }
    let planes = (copy(0, width, height), copy(1, cw, ch), copy(2, cw, ch))
    withExtendedLifetime(frame) {}
    return (planes.0, planes.1, planes.2, width, height, cw, ch)
}
