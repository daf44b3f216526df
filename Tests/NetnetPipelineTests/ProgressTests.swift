import Foundation
import Testing
@testable import NetnetPipeline

@Suite struct ProgressFormattingTests {
    @Test func durations() {
        #expect(ProgressReporter.formatDuration(seconds: 0) == "0:00")
        #expect(ProgressReporter.formatDuration(seconds: 27.2) == "0:28")
        #expect(ProgressReporter.formatDuration(seconds: 59.5) == "1:00")
        #expect(ProgressReporter.formatDuration(seconds: 725) == "12:05")
        #expect(ProgressReporter.formatDuration(seconds: 3723) == "1:02:03")
        #expect(ProgressReporter.formatDuration(seconds: 36000) == "10:00:00")
        #expect(ProgressReporter.formatDuration(seconds: -5) == "0:00")
        #expect(ProgressReporter.formatDuration(seconds: .infinity) == "--:--")
        #expect(ProgressReporter.formatDuration(seconds: .nan) == "--:--")
        #expect(ProgressReporter.formatDuration(seconds: 1e12) == "--:--")
    }

    @Test func rates() {
        #expect(ProgressReporter.rate(count: 243, seconds: 10) == 24.3)
        #expect(ProgressReporter.rate(count: 10, seconds: 0) == 0)
        #expect(ProgressReporter.rate(count: 10, seconds: -1) == 0)
        #expect(ProgressReporter.rate(count: 10, seconds: .nan) == 0)
        #expect(ProgressReporter.formatRate(24.34) == "24.3")
        #expect(ProgressReporter.formatRate(24.35) == "24.4")
        #expect(ProgressReporter.formatRate(0.04) == "0.0")
        #expect(ProgressReporter.formatRate(1000) == "1000.0")
        #expect(ProgressReporter.formatRate(.nan) == "0.0")
        #expect(ProgressReporter.formatRate(-3) == "0.0")
    }

    @Test func lines() {
        // 120 of 795 frames in 120/24.3 s: 24.3 fps, 675 left → 27.8 s → 0:28.
        #expect(ProgressReporter.line(frames: 120, total: 795, elapsedSeconds: 120 / 24.3)
                == "frames 120/795 (15%)  24.3 fps  ETA 0:28")
        #expect(ProgressReporter.line(frames: 120, total: nil, elapsedSeconds: 120 / 24.3) == "frames 120  24.3 fps")
        #expect(ProgressReporter.line(frames: 0, total: 795, elapsedSeconds: 0) == "frames 0/795 (0%)  0.0 fps")
        #expect(ProgressReporter.line(frames: 794, total: 795, elapsedSeconds: 10) == "frames 794/795 (99%)  79.4 fps  ETA 0:01")
        #expect(ProgressReporter.line(frames: 795, total: 795, elapsedSeconds: 10) == "frames 795/795 (100%)  79.5 fps  ETA 0:00")
    }

    @Test func summaryLine() {
        let summary = Summary(frames: 795, detections: 1234, seconds: 795 / 28.1, dropped: 0, decodeErrors: 0)
        #expect(summary.line == "netnet: 795 frames, 1234 detections, 28.1 fps, 0 dropped, 0 decode errors")
        #expect(Summary(frames: 1, detections: 0, seconds: 0, dropped: 2, decodeErrors: 1).line
                == "netnet: 1 frames, 0 detections, 0.0 fps, 2 dropped, 1 decode errors")
    }
}

/// The reporter against a pipe, with an injected clock.
@Suite struct ProgressReporterTests {
    final class FakeClock: @unchecked Sendable {
        private let lock = NSLock()
        private var value: UInt64 = 1_000_000_000
        func now() -> UInt64 { lock.lock(); defer { lock.unlock() }; return value }
        func advance(seconds: Double) { lock.lock(); value += UInt64(seconds * 1e9); lock.unlock() }
    }

    /// Everything written to the pipe's write end so far (the write end is closed first).
    private func drain(_ fds: [Int32]) -> String {
        close(fds[1])
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &chunk, chunk.count)
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        close(fds[0])
        return String(decoding: data, as: UTF8.self)
    }

    @Test func rewritesAtMostFourTimesASecondAndClears() {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let clock = FakeClock()
        let reporter = ProgressReporter(total: 100, fileDescriptor: fds[1], isTerminal: true, clock: { clock.now() })
        #expect(reporter.isEnabled)
        var draws = 0
        for frame in 1...100 {
            clock.advance(seconds: 0.05)  // 20 fps, 5 s in all
            if reporter.update(frames: frame) { draws += 1 }
        }
        #expect(draws == 20, "5 s at most 4 draws a second")  // at 0.05, 0.30, 0.55, …
        reporter.finish()
        reporter.finish()  // harmless twice
        let text = drain(fds)
        #expect(text.hasPrefix("\rframes 1/100 (1%)  20.0 fps  ETA 0:05"))
        #expect(text.contains("\rframes 96/100 (96%)  20.0 fps  ETA 0:01"))
        #expect(!text.contains("\n"))
        // finish() blanks the last line and returns to column 0.
        let last = "frames 96/100 (96%)  20.0 fps  ETA 0:01"
        #expect(text.hasSuffix("\r" + String(repeating: " ", count: last.utf8.count) + "\r"))
    }

    @Test func shorterLinesArePaddedOverTheOldOne() {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let clock = FakeClock()
        let reporter = ProgressReporter(total: nil, fileDescriptor: fds[1], isTerminal: true, clock: { clock.now() })
        clock.advance(seconds: 1)
        reporter.update(frames: 1000)  // "frames 1000  1000.0 fps"
        clock.advance(seconds: 1000)
        reporter.update(frames: 1001)  // "frames 1001  1.0 fps": 3 characters shorter
        let text = drain(fds)
        #expect(text == "\rframes 1000  1000.0 fps\rframes 1001  1.0 fps   ")
    }

    @Test func silentWhenQuietOrNotATerminal() {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let quiet = ProgressReporter(total: 10, quiet: true, fileDescriptor: fds[1], isTerminal: true)
        let piped = ProgressReporter(total: 10, fileDescriptor: fds[1])  // isatty(pipe) is false
        #expect(!quiet.isEnabled && !piped.isEnabled)
        for frame in 0..<10 {
            #expect(!quiet.update(frames: frame))
            #expect(!piped.update(frames: frame))
        }
        quiet.finish()
        piped.finish()
        #expect(drain(fds).isEmpty)
    }
}
