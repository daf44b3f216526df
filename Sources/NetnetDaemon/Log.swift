import Foundation
import NetnetMedia

/// The daemon's log: one line per message on standard error, `netnet: LEVEL: message`. When
/// standard error is the journal's stream (`isJournal`) each line starts with the syslog priority
/// `<3>`…`<7>` instead, so the journal records the level. Lines below the level are not written. Every line goes through
/// `Redaction.redact` first, so no URL password or registered secret reaches the log. Any thread.
public final class DaemonLog: @unchecked Sendable {
    private let lock = NSLock()
    private var level: LogLevel
    private let journal: Bool
    private let write: @Sendable (String) -> Void

    /// A log at `level`; `write` receives each finished line with its newline (default: standard
    /// error, one `write(2)` per line). Any thread.
    public init(level: LogLevel, journal: Bool = DaemonLog.isJournal(),
                write: @escaping @Sendable (String) -> Void = DaemonLog.standardError) {
        self.level = level
        self.journal = journal
        self.write = write
    }

    /// Whether `descriptor` (standard error) is the journal's stream, as systemd says to decide it
    /// (systemd.exec(5), `$JOURNAL_STREAM`): the variable holds the device and inode numbers
    /// (`DEV:INODE`, decimal) of the stream systemd connected, and only when `fstat` of the
    /// descriptor gives the same two is it still that stream. A unit's child with standard error
    /// redirected elsewhere, or a shell started from it, inherits the variable and gets plain lines.
    /// Any thread.
    public static func isJournal(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 descriptor: Int32 = 2) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// Writes to file descriptor 2 in one call.
    public static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { raw in _ = Foundation.write(2, raw.baseAddress!, raw.count) }
    }

    /// Changes the level (a reload). Any thread.
    public func setLevel(_ newLevel: LogLevel) {
        lock.lock(); level = newLevel; lock.unlock()
    }

    /// The level now (the configuration's `log_level`, changed by a reload). Any thread.
    public var currentLevel: LogLevel {
        lock.lock(); defer { lock.unlock() }
        return level
    }

    /// Whether messages at `messageLevel` are written. Any thread.
    public func enabled(_ messageLevel: LogLevel) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return messageLevel <= level
    }

    /// Writes `message` at `messageLevel` if enabled. Any thread.
    public func log(_ messageLevel: LogLevel, _ message: @autoclosure () -> String) {
        guard enabled(messageLevel) else { return }
        let text = Redaction.redact(message().replacingOccurrences(of: "\n", with: " "))
        if journal {
            let priority = [LogLevel.error: 3, .warning: 4, .info: 6, .debug: 7][messageLevel]!
            write("<\(priority)>\(text)\n")
        } else {
            write("netnet: \(messageLevel.rawValue): \(text)\n")
        }
    }

    /// `log(.error, …)`. Any thread.
    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }
    /// `log(.warning, …)`. Any thread.
    public func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    /// `log(.info, …)`. Any thread.
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    /// `log(.debug, …)`. Any thread.
    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
}
