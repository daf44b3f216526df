import Foundation
import Testing
@testable import NetnetMedia

/// `maxFramePixels`: a frame above the limit is an error naming its size and the limit, raised
/// before its picture is allocated (the declared size at open, the decoder's get_buffer2 after).
@Suite("Frame size limit", .enabled(if: VideoFixtures.available, VideoFixtures.skipMessage))
struct FrameLimitTests {
    let fx: VideoFixtures
    init() throws { fx = try VideoFixtures.get() }

    @Test("a video whose stream declares a size above the limit is refused at open")
    func declaredSize() throws {
        var options = VideoSourceOptions(url: fx.path("clip.mp4"))
        options.maxFramePixels = 320 * 240 - 1
        do {
            _ = try VideoSource(options: options)
            Issue.record("opened a 320x240 video with a limit of \(options.maxFramePixels) pixels")
        } catch let error as MediaError {
            #expect(error.description == "\(fx.path("clip.mp4")): the video is 320x240 (76800 pixels), over the limit of 76799 pixels per frame",
                    "\(error)")
        }
        options.maxFramePixels = 320 * 240
        let source = try VideoSource(options: options)
        let frame = VideoFrame()
        #expect(try source.nextFrame(into: frame, audioSink: nil))
        #expect(source.decodeErrors == 0)
    }

    @Test("an image whose size only decoding tells (PNG) is refused by the decoder: VideoSource and ImageDecoder")
    func decodedSize() throws {
        let png = NSTemporaryDirectory() + "netnet-limit-\(UUID().uuidString).png"
        defer { unlink(png) }
        _ = try run(Fixtures.ffmpegPath!, ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=400x300", "-frames:v", "1", png])
        var options = VideoSourceOptions(url: png)
        options.maxFramePixels = 100_000
        let source = try VideoSource(options: options)
        let frame = VideoFrame()
        do {
            _ = try source.nextFrame(into: frame, audioSink: nil)
            Issue.record("decoded a 400x300 frame with a limit of 100000 pixels")
        } catch let error as MediaError {
            #expect(error.description.hasPrefix(png + ": frame 0: a 400x300 frame (120000 pixels) is over the limit of 100000 pixels"), "\(error)")
        }
        #expect(try !source.nextFrame(into: frame, audioSink: nil), "the input ends after the refusal")
        do {
            _ = try ImageDecoder.decodeFirstFrame(path: png, maxPixels: 100_000)
            Issue.record("ImageDecoder decoded a 400x300 frame with a limit of 100000 pixels")
        } catch let error as MediaError {
            #expect(error.description == "\(png): a 400x300 frame (120000 pixels) is over the limit of 100000 pixels per frame", "\(error)")
        }
        let image = try ImageDecoder.decodeFirstFrame(path: png, maxPixels: 120_000)
        #expect(image.width == 400 && image.height == 300)
    }
}
