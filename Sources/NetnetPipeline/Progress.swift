import Foundation
import NetnetScene

/// A one-line progress display for long jobs on a terminal:
/// `frames 120/795 (15%)  24.3 fps  ETA 0:28`, rewritten in place with `\r` at most 4 times a
/// second. With an unknown total it shows `frames 120  24.3 fps`. Disabled (prints nothing) when
/// quiet or when its output (standard error by default) is not a terminal, so logs and pipes stay
/// clean. The rate is the average since the reporter was created.
///
/// One thread at a time (normally the writer thread; it may be created elsewhere and handed over).
public final class ProgressReporter: @unchecked Sendable {
    /// Whether anything is printed at all (not quiet and the output is a terminal).
    public let isEnabled: Bool
    /// Total frames expected, or nil when unknown (live streams, containers without a count).
    public let total: Int?
    private let fd: Int32
    private let minimumIntervalNanoseconds: UInt64
    private let clock: @Sendable () -> UInt64
    private let start: UInt64
    private var lastDraw: UInt64?
    private var lastLength = 0

    /// A reporter for `total` frames (nil = unknown) writing to `fileDescriptor` (standard error by
    /// default). `isTerminal` overrides the `isatty` check (tests); `clock` gives monotonic
    /// nanoseconds (tests inject one). Any thread.
    public init(total: Int?, quiet: Bool = false, fileDescriptor: Int32 = STDERR_FILENO, isTerminal: Bool? = nil,
                minimumInterval: Double = 0.25,
                clock: @escaping @Sendable () -> UInt64 = { WallClock.monotonicNanoseconds() }) {
        self.total = total.flatMap { $0 > 0 ? $0 : nil }
        self.fd = fileDescriptor
        self.isEnabled = !quiet && (isTerminal ?? (isatty(fileDescriptor) == 1))
        self.minimumIntervalNanoseconds = UInt64(max(0, minimumInterval) * 1e9)
        self.clock = clock
        self.start = clock()
    }

    /// Reports that `frames` frames are done; redraws the line if at least the minimum interval
    /// (0.25 s) has passed since the last draw. Returns whether it drew. Cheap when it does not
    /// draw (one clock read). Reporter's thread.
    @discardableResult
    public func update(frames: Int) -> Bool {
        guard isEnabled else { return false }
        let now = clock()
        if let lastDraw, now &- lastDraw < minimumIntervalNanoseconds { return false }
        lastDraw = now
        let elapsed = Double(now &- start) / 1e9
        let text = Self.line(frames: frames, total: total, elapsedSeconds: elapsed)
        let padding = max(0, lastLength - text.utf8.count)
        lastLength = text.utf8.count
        emit("\r" + text + String(repeating: " ", count: padding))
        return true
    }

    /// Clears the progress line (so the summary line starts at column 0). Safe to call when
    /// nothing was drawn, and more than once. Reporter's thread.
    public func finish() {
        guard isEnabled, lastLength > 0 else { return }
        emit("\r" + String(repeating: " ", count: lastLength) + "\r")
        lastLength = 0
        lastDraw = nil
    }

    /// The progress text for `frames` done out of `total` after `elapsedSeconds`:
    /// `frames 120/795 (15%)  24.3 fps  ETA 0:28`; without a total `frames 120  24.3 fps`. The
    /// percentage is rounded down (100% only when done); the ETA is omitted until a rate is known.
    /// Pure; any thread.
    public static func line(frames: Int, total: Int?, elapsedSeconds: Double) -> String {
        let fps = rate(count: frames, seconds: elapsedSeconds)
        guard let total, total > 0 else {
            return "frames \(frames)  \(formatRate(fps)) fps"
        }
        let percent = frames >= total ? 100 : max(0, frames) * 100 / total
        var text = "frames \(frames)/\(total) (\(percent)%)  \(formatRate(fps)) fps"
        if fps > 0 {
            text += "  ETA " + formatDuration(seconds: Double(max(0, total - frames)) / fps)
        }
        return text
    }

    /// `count / seconds`, or 0 when `seconds` is not positive or either is not finite. Pure; any thread.
    public static func rate(count: Int, seconds: Double) -> Double {
        guard seconds > 0, seconds.isFinite, count > 0 else { return 0 }
        return Double(count) / seconds
    }

    /// A rate with one decimal: `24.3`; non-finite or negative rates read `0.0`. Pure; any thread.
    public static func formatRate(_ value: Double) -> String {
        guard value.isFinite, value > 0 else { return "0.0" }
        guard value < 1e12 else { return String(format: "%.1f", value) }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// A duration rounded up to whole seconds: `0:28`, `12:05`, `1:02:03`; `--:--` if not finite
    /// or over 99 hours. Pure; any thread.
    public static func formatDuration(seconds: Double) -> String {
        guard seconds.isFinite, seconds < 99 * 3600 else { return "--:--" }
        let total = max(0, Int(seconds.rounded(.up)))
        let h = total / 3600, m = total / 60 % 60, s = total % 60
        let ss = s < 10 ? "0\(s)" : "\(s)"
        if h > 0 {
            let mm = m < 10 ? "0\(m)" : "\(m)"
            return "\(h):\(mm):\(ss)"
        }
        return "\(m):\(ss)"
    }

    private func emit(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            var done = 0
            while done < utf8.count {
                let n = Foundation.write(fd, utf8.baseAddress! + done, utf8.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return  // progress is best effort
                }
                done += n
            }
        }
    }
}

/// The end-of-run line:
/// `netnet: 795 frames, 1234 detections, 28.1 fps, 0 dropped, 0 decode errors`. The nouns stay
/// plural whatever the counts, so scripts can parse the line with one pattern. Value type; any thread.
public struct Summary: Sendable, Equatable {
    /// Frames written (one JSON line each).
    public var frames: Int
    /// Detections over all written frames.
    public var detections: Int
    /// Wall-clock seconds of the run (monotonic clock).
    public var seconds: Double
    /// Frames dropped by the `latest` policy (the ring's `droppedCount`).
    public var dropped: Int
    /// Packets or frames the decoder rejected and skipped.
    public var decodeErrors: Int

    /// A summary of the given counts.
    public init(frames: Int, detections: Int, seconds: Double, dropped: Int, decodeErrors: Int) {
        self.frames = frames
        self.detections = detections
        self.seconds = seconds
        self.dropped = dropped
        self.decodeErrors = decodeErrors
    }

    /// Frames per second over the run; 0 when no time has passed.
    public var framesPerSecond: Double { ProgressReporter.rate(count: frames, seconds: seconds) }

    /// The summary line, without a newline.
    public var line: String {
        "netnet: \(frames) frames, \(detections) detections, \(ProgressReporter.formatRate(framesPerSecond)) fps, "
            + "\(dropped) dropped, \(decodeErrors) decode errors"
    }
}

/// The scene's counts after the summary line, one line per line and zone:
/// `netnet: line door: 3 in, 1 out (person 3 in, 1 out)` and
/// `netnet: zone bay: 5 entered, 0 inside (person 5 entered)`; labels sorted, only those seen.
/// Pure; any thread.
public enum CountsSummary {
    /// The lines, each ending in a newline (empty for a scene without lines or zones).
    public static func lines(_ counts: SceneCounts) -> String {
        var text = ""
        // `first` and `second` are the rule's two figures by label, each with the word after it.
        func describe(_ kind: String, _ name: String, _ first: (String, [String: Int]), _ second: (String, [String: Int])) {
            func total(_ labels: [String: Int]) -> Int { labels.values.reduce(0, +) }
            text += "netnet: \(kind) \(name): \(total(first.1)) \(first.0), \(total(second.1)) \(second.0)"
            let labels = Set(first.1.keys).union(second.1.keys).sorted()
            if !labels.isEmpty {
                text += " (" + labels.map { "\($0) \(first.1[$0] ?? 0) \(first.0), \(second.1[$0] ?? 0) \(second.0)" }.joined(separator: "; ") + ")"
            }
            text += "\n"
        }
        for line in counts.lines { describe("line", line.name, ("in", line.inward), ("out", line.outward)) }
        for zone in counts.zones { describe("zone", zone.name, ("entered", zone.entered), ("inside", zone.objects)) }
        return text
    }
}
