import CFFmpeg
import Foundation

extension FFmpegLog {
    /// How serious an FFmpeg message is, FFmpeg's eight levels folded onto netnet's four (and so
    /// onto syslog priorities): AV_LOG_PANIC, AV_LOG_FATAL and AV_LOG_ERROR are `error`,
    /// AV_LOG_WARNING is `warning`, AV_LOG_INFO is `info`, AV_LOG_VERBOSE, AV_LOG_DEBUG and
    /// AV_LOG_TRACE are `debug`. The raw values are the words netnet's logs print. Value type.
    public enum Severity: String, Sendable, CaseIterable {
        case error, warning, info, debug

        /// The severity of FFmpeg level `level` (flags removed). Pure.
        public init(ffmpegLevel level: Int32) {
            switch level {
            case ...AV_LOG_ERROR: self = .error
            case ...AV_LOG_WARNING: self = .warning
            case ...AV_LOG_INFO: self = .info
            default: self = .debug
            }
        }
    }

    /// One line FFmpeg logged, already redacted (`Redaction.redact`: no URL password or registered
    /// secret). Value type.
    public struct Message: Sendable, Equatable {
        /// How serious it is.
        public var severity: Severity
        /// The stream whose thread logged it (`setThreadStream`), or nil: another thread, such
        /// as one of FFmpeg's own decoder threads.
        public var stream: String?
        /// FFmpeg's text, with its `[h264 @ 0x…] ` prefix, without the newline.
        public var text: String

        /// A message. Pure.
        public init(severity: Severity, stream: String?, text: String) {
            self.severity = severity
            self.stream = stream
            self.text = text
        }

        /// `stream ID: TEXT`, or `TEXT` when no stream is known. Pure.
        public var line: String { stream.map { "stream \($0): \(text)" } ?? text }
    }

    private static let streamKey = "netnet.ffmpeg-log.stream"

    /// Names the calling thread's FFmpeg messages after stream `id` (`stream ID: …`); nil stops.
    /// For a thread that serves one stream, such as the daemon's `netnet-reader-ID` threads (the
    /// thread's own name cannot say it: on Linux, Foundation reads back the kernel's copy, which
    /// is cut at 15 bytes and set only once the thread runs). Kept in the thread's dictionary, so
    /// it ends with the thread. The calling thread only.
    public static func setThreadStream(_ id: String?) {
        Thread.current.threadDictionary[streamKey] = id
    }

    /// Sends every FFmpeg message that passes the level (`setLevel`) to `handler` instead of
    /// FFmpeg's default, which prints it raw to standard error. Process-wide; call once at start-up
    /// (a later call replaces the handler). `handler` runs on whichever thread FFmpeg logs from,
    /// several at once, so it must be thread-safe and must not block long. Any thread.
    public static func route(_ handler: @escaping @Sendable (Message) -> Void) {
        LogRoute.shared.set(handler)
        netnet_install_log_callback()
    }

    /// Gives FFmpeg's messages back to FFmpeg's default callback (standard error). Any thread.
    public static func routeToStandardError() {
        netnet_install_default_log_callback()
        LogRoute.shared.set(nil)
    }

    /// Builds the message for one finished line from FFmpeg and hands it to the handler (called by
    /// the C callback through `netnet_ffmpeg_log_line`). Any thread.
    static func deliver(level: Int32, line: UnsafePointer<CChar>) {
        guard let handler = LogRoute.shared.handler else {
            // Not routed (the callback was installed and then the route removed): as FFmpeg would.
            FileHandle.standardError.write(Data((String(cString: line) + "\n").utf8))
            return
        }
        let stream = Thread.current.threadDictionary[streamKey] as? String
        handler(Message(severity: Severity(ffmpegLevel: level), stream: stream,
                        text: Redaction.redact(String(cString: line))))
    }
}

/// The FFmpeg log line sink the shim's av_log callback calls (declared in shim.h). Any thread.
@_cdecl("netnet_ffmpeg_log_line")
func netnetFFmpegLogLine(_ level: Int32, _ line: UnsafePointer<CChar>?) {
    guard let line else { return }
    FFmpegLog.deliver(level: level, line: line)
}

/// The handler FFmpeg's messages go to; read on every message, from any thread, under a lock held
/// only to copy the closure out.
private final class LogRoute: @unchecked Sendable {
    static let shared = LogRoute()
    private let lock = NSLock()
    private var current: (@Sendable (FFmpegLog.Message) -> Void)?

    func set(_ handler: (@Sendable (FFmpegLog.Message) -> Void)?) {
        lock.lock(); current = handler; lock.unlock()
    }

    var handler: (@Sendable (FFmpegLog.Message) -> Void)? {
        lock.lock(); defer { lock.unlock() }
        return current
    }
}

/// What FFmpeg this process runs on. Any thread.
public enum FFmpegInfo {
    /// FFmpeg's version string (`av_version_info()`, e.g. `5.1.6-0+deb12u1`). Any thread.
    public static var version: String { String(cString: av_version_info()) }
}
