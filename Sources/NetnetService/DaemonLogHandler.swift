import Foundation
import Logging
import NetnetDaemon

/// A swift-log `LogHandler` that writes through a `DaemonLog`, so Hummingbird's and
/// swift-service-lifecycle's messages reach the same standard error, in the same format (journal
/// priorities included) and redacted like netnet's own: `LABEL: MESSAGE key=value …`.
///
/// Levels: trace and debug are `debug`, info and notice `info`, warning `warning`, error and
/// critical `error`. Unless a `Logger` sets one itself, the level follows the `DaemonLog`'s, read
/// at each message, so a reload's `log_level` applies here too; trace messages are never built.
/// At the default `info` level this lets through only what those libraries log once per run
/// (Hummingbird's "Server started and listening on …", "Shutting down") and their errors: their
/// per-connection and per-request messages are trace and debug. Value type; any thread.
public struct DaemonLogHandler: LogHandler {
    /// The logger's label (`netnet-http`, `netnet-services`), written before each message.
    public let label: String
    private let log: DaemonLog
    private var explicitLevel: Logger.Level?

    /// Metadata added to every message of this logger.
    public var metadata: Logger.Metadata = [:]

    /// A handler for `label` writing to `log`. Any thread.
    public init(label: String, log: DaemonLog) {
        self.label = label
        self.log = log
    }

    /// The `DaemonLog`'s level as a swift-log level, unless set on this handler. Any thread.
    public var logLevel: Logger.Level {
        get { explicitLevel ?? Self.loggerLevel(log.currentLevel) }
        set { explicitLevel = newValue }
    }

    /// One metadata entry, or nil. Any thread.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes the message with the handler's and the event's metadata (the event's win), keys in
    /// order, and the event's error as `error=…`. Any thread.
    public func log(event: LogEvent) {
        var merged = event.metadata.map { metadata.merging($0) { _, call in call } } ?? metadata
        if let error = event.error { merged["error"] = "\(error)" }
        log.log(Self.daemonLevel(event.level), Self.line(label: label, message: "\(event.message)", metadata: merged))
    }

    /// netnet's level for a swift-log level. Pure.
    public static func daemonLevel(_ level: Logger.Level) -> LogLevel {
        switch level {
        case .trace, .debug: return .debug
        case .info, .notice: return .info
        case .warning: return .warning
        case .error, .critical: return .error
        }
    }

    /// The most verbose swift-log level a `DaemonLog` at `level` writes. Pure.
    public static func loggerLevel(_ level: LogLevel) -> Logger.Level {
        switch level {
        case .debug: return .debug
        case .info: return .info
        case .warning: return .warning
        case .error: return .error
        }
    }

    /// `LABEL: MESSAGE key=value key=value`, keys sorted. Pure.
    public static func line(label: String, message: String, metadata: Logger.Metadata) -> String {
        var text = "\(label): \(message)"
        for key in metadata.keys.sorted() { text += " \(key)=\(metadata[key]!)" }
        return text
    }

    /// Makes every `Logger` created from now on without an explicit handler write to `log`
    /// (`LoggingSystem.bootstrap`, which swift-log allows once per process; a later call only
    /// changes the `DaemonLog` the loggers made afterwards use). Any thread.
    public static func bootstrap(_ log: DaemonLog) {
        Bootstrap.shared.install(log)
    }
}

/// `LoggingSystem.bootstrap` once; the `DaemonLog` behind it may be replaced (one per `Daemon.run`).
private final class Bootstrap: @unchecked Sendable {
    static let shared = Bootstrap()
    private let lock = NSLock()
    private var log: DaemonLog?
    private var done = false

    func install(_ newLog: DaemonLog) {
        let first: Bool = lock.withLock {
            log = newLog
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap { [self] label in
            if let log = lock.withLock({ log }) { return DaemonLogHandler(label: label, log: log) }
            return StreamLogHandler.standardError(label: label)
        }
    }
}
