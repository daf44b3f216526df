import Foundation
import Testing
@testable import NetnetMedia

/// Repeated decode/prepare/encode must not grow memory. The RSS bound is loose on purpose (other
/// suites run in parallel); a leaked 640x480 frame or context per iteration would blow far past it.
/// NETNET_LEAK_ITERATIONS overrides the iteration count (e.g. a short run under valgrind).
@Suite("Leaks", .enabled(if: Fixtures.ffmpegAvailable, Fixtures.skipMessage))
struct LeakTests {
    let fx: Fixtures
    init() throws { fx = try Fixtures.get() }

    static var iterations: Int {
        Int(ProcessInfo.processInfo.environment["NETNET_LEAK_ITERATIONS"] ?? "") ?? 150
    }

    @Test("decode + prepare in a loop keeps VmRSS flat")
    func decodeLoop() throws {
        let n = Self.iterations
        let preparer = InputPreparer(inputSize: 300, normalisation: InputPreparerTests.imagenetRGB)
        var input = [Float](repeating: 0, count: 3 * 300 * 300)
        let files = ["testsrc.jpg", "testsrc.png", "odd.png", "gray.png", "solid-pal8.png", "video.mp4"]
        func once(_ i: Int) throws {
            let image = try ImageDecoder.decodeFirstFrame(path: fx.path(files[i % files.count]))
            try input.withUnsafeMutableBufferPointer { try preparer.prepare(image, into: $0.baseAddress!) }
            #expect(throws: MediaError.self) { _ = try ImageDecoder.decodeFirstFrame(path: fx.path("truncated.png")) }
            #expect(throws: MediaError.self) { _ = try ImageDecoder.decodeFirstFrame(path: fx.path("missing.png")) }
        }
        // Pass when the quietest of up to six windows stays under the bound (see residentGrowthPerWindow).
        let growths = try residentGrowthPerWindow(iterations: n, warmup: min(20, n), quietBelow: 8 * 1024, once)
        print("VmRSS growth per window of \(n) iterations: \(growths) KiB")
        if n >= 100, let quietest = growths.min() {
            #expect(quietest < 8 * 1024, "VmRSS grew at least \(quietest) KiB in every window of \(n) iterations")
        }
    }

    @Test("encode in a loop")
    func encodeLoop() throws {
        let image = try ImageDecoder.decodeFirstFrame(path: fx.path("testsrc.png"))
        for i in 0..<max(1, Self.iterations / 10) {
            try ImageEncoder.write(image, to: fx.path(i % 2 == 0 ? "loop.png" : "loop.jpg"))
        }
    }
}
