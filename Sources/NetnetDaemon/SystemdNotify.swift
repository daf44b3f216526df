#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation

/// The systemd notification protocol (sd_notify(3)) without libsystemd: datagrams such as
/// `READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1` sent to the unix datagram socket named by
/// `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`). Without
/// `NOTIFY_SOCKET` every call does nothing. Owns one socket descriptor. Any thread.
public final class SystemdNotifier: @unchecked Sendable {
    /// The socket address as given, or nil when not under systemd.
    public let socketPath: String?
    /// The watchdog interval systemd asked for (`$WATCHDOG_USEC`, honoured only when
    /// `$WATCHDOG_PID` is unset or ours), or nil.
    public let watchdogInterval: Double?
    private let fd: Int32
    private let lock = NSLock()

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment` and opens the
    /// socket. Any thread.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        if let usec = environment["WATCHDOG_USEC"].flatMap({ UInt64($0) }), usec > 0,
           environment["WATCHDOG_PID"].flatMap({ Int32($0) }).map({ $0 == getpid() }) ?? true {
            watchdogInterval = Double(usec) / 1e6
        } else {
            watchdogInterval = nil
        }
        if let path, path.hasPrefix("/") || path.hasPrefix("@") {
            socketPath = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        } else {
            socketPath = nil
            fd = -1
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Whether messages go anywhere. Any thread.
    public var isActive: Bool { fd >= 0 }

    /// Sends `state` (newline-separated `KEY=VALUE` assignments) in one datagram; returns false if
    /// there is no socket or the send failed. Never blocks for long (datagram, MSG_DONTWAIT). Any thread.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard fd >= 0, let path = socketPath else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity || (abstract && bytes.count <= capacity) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let message = Array(state.utf8)
        lock.lock(); defer { lock.unlock() }
        let sent = message.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT), sa, length)
                }
            }
        }
        return sent == message.count
    }
}
