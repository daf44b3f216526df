import Foundation
import Testing
@testable import NetnetMedia

/// Open / read / write / finish in a loop must not grow memory: every FFmpeg object (format contexts,
/// codecs, filter graph, frames, packets) is owned by one Swift object and freed with it.
/// NETNET_LEAK_ITERATIONS / 5 iterations per window (30 by default).
@Suite("Video leaks", .enabled(if: VideoFixtures.available, VideoFixtures.skipMessage))
struct VideoLeakTests {
    let fx: VideoFixtures
    init() throws { fx = try VideoFixtures.get() }

    @Test("open/read/write/finish in a loop keeps VmRSS flat")
    func annotateLoop() throws {
        let n = max(1, LeakTests.iterations / 5)
        let output = fx.path("leak-\(UUID().uuidString.prefix(8))")
        let boxes = [DrawnBox(x1: 10, y1: 30, x2: 200, y2: 200, label: "person 0.91", classIndex: 0),
                     DrawnBox(x1: 100, y1: 5, x2: 310, y2: 100, label: "a much longer label than usual 0.42", classIndex: 5)]
        func once(_ i: Int) throws {
            let (frames, _) = try annotate(fx.path("short.mp4"), to: output + (i % 2 == 0 ? ".mkv" : ".mp4")) { _ in boxes }
            #expect(frames == 25)
            // Error paths free what they allocated too.
            #expect(throws: MediaError.self) { _ = try VideoSource(options: VideoSourceOptions(url: fx.path("text.mp4"))) }
            #expect(throws: MediaError.self) { _ = try VideoSource(options: VideoSourceOptions(url: "tcp://127.0.0.1:9")) }
            let source = try VideoSource(options: VideoSourceOptions(url: fx.path("short.mp4")))
            #expect(throws: MediaError.self) {
                var options = VideoWriterOptions(path: output + ".mp4")
                options.fontFile = "/no/such/font.ttf"
                _ = try VideoWriter(options: options, source: source)
            }
        }
        // Pass when the quietest of up to six windows stays under the bound (see residentGrowthPerWindow).
        let growths = try residentGrowthPerWindow(iterations: n, warmup: min(5, n), quietBelow: 6 * 1024, once)
        print("VmRSS growth per window of \(n) annotate loops: \(growths) KiB")
        if n >= 20, let quietest = growths.min() {
            #expect(quietest < 6 * 1024, "VmRSS grew at least \(quietest) KiB in every window of \(n) iterations")
        }
    }
}
