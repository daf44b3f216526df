import Foundation
import Testing
@testable import NetnetMedia

@Suite("ImageEncoder", .enabled(if: Fixtures.ffmpegAvailable, Fixtures.skipMessage))
struct ImageEncoderTests {
    let fx: Fixtures
    init() throws { fx = try Fixtures.get() }

    @Test("PNG round trip is lossless (odd size too)")
    func pngRoundTrip() throws {
        let original = try ImageDecoder.decodeFirstFrame(path: fx.path("odd.png"))
        let path = fx.path("roundtrip-odd.png")
        try ImageEncoder.write(original, to: path)
        let back = try ImageDecoder.decodeFirstFrame(path: path)
        #expect(back.width == 161 && back.height == 97)
        #expect(back.pixels == original.pixels)
    }

    @Test("JPEG round trip is close; extension is case-insensitive")
    func jpegRoundTrip() throws {
        let original = try ImageDecoder.decodeFirstFrame(path: fx.path("testsrc.png"))
        for name in ["roundtrip.jpg", "roundtrip.JPEG"] {
            let path = fx.path(name)
            try ImageEncoder.write(original, to: path)
            let back = try ImageDecoder.decodeFirstFrame(path: path)
            #expect(back.width == 320 && back.height == 240)
            var sum = 0
            for (a, b) in zip(back.pixels, original.pixels) { sum += abs(Int(a) - Int(b)) }
            let mean = Double(sum) / Double(original.pixels.count)
            #expect(mean < 6, "\(name): mean abs error \(mean)")
        }
        let solid = BGRImage(width: 33, height: 17, blue: 0xCC, green: 0x66, red: 0x33)
        try ImageEncoder.write(solid, to: fx.path("solid-written.jpg"))
        let back = try ImageDecoder.decodeFirstFrame(path: fx.path("solid-written.jpg"))
        let worst = zip(back.pixels, solid.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(worst <= 3, "solid JPEG round trip worst error \(worst)")
    }

    @Test("bad extension, missing folder and empty image throw MediaError")
    func errors() throws {
        let image = BGRImage(width: 4, height: 4, blue: 1, green: 2, red: 3)
        #expect(throws: MediaError.self) { try ImageEncoder.write(image, to: fx.path("x.gif")) }
        #expect(throws: MediaError.self) { try ImageEncoder.write(image, to: fx.path("noext")) }
        do {
            try ImageEncoder.write(image, to: fx.path("no/such/dir/x.png"))
            Issue.record("writing into a missing folder succeeded")
        } catch let error as MediaError {
            #expect(error.description.contains("no/such/dir/x.png"))
            #expect(error.description.contains("No such file"))
        }
        #expect(throws: MediaError.self) { try ImageEncoder.write(BGRImage(width: 0, height: 0, pixels: []), to: fx.path("e.png")) }
    }
}
