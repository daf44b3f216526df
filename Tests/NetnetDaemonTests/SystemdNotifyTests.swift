import Foundation
import Testing
@testable import NetnetDaemon
#if canImport(Glibc)
import Glibc
#endif

/// A real unix datagram socket standing in for systemd's notification socket.
final class NotifySocket {
    let fd: Int32
    let name: String
    init(abstract: Bool) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        let unique = "netnet-notify-\(getpid())-\(UUID().uuidString.prefix(8))"
        name = abstract ? "@\(unique)" : NSTemporaryDirectory() + unique + ".sock"
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let rc = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0 else { throw NotifyTestError(message: "bind \(name): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
    deinit {
        close(fd)
        if !name.hasPrefix("@") { unlink(name) }
    }
    /// The next datagram, or nil after the 1 s receive timeout.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}

struct NotifyTestError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

@Suite("sd_notify")
struct SystemdNotifyTests {
    @Test(arguments: [false, true])
    func sendsDatagrams(abstract: Bool) throws {
        let socket = try NotifySocket(abstract: abstract)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.name])
        #expect(notifier.isActive)
        #expect(notifier.notify("READY=1\nSTATUS=2 streams"))
        #expect(notifier.notify("WATCHDOG=1"))
        #expect(socket.receive() == "READY=1\nSTATUS=2 streams")
        #expect(socket.receive() == "WATCHDOG=1")
    }

    @Test func silentWithoutSocket() {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isActive)
        #expect(!notifier.notify("READY=1"))
        #expect(notifier.watchdogInterval == nil)
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative"]).isActive)
    }

    @Test func watchdogInterval() {
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000"]).watchdogInterval == 3)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "\(getpid())"]).watchdogInterval == 3)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "x"]).watchdogInterval == nil)
    }

    @Test func sendToAMissingSocketFails() {
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/notify.sock"])
        #expect(notifier.isActive)
        #expect(!notifier.notify("READY=1"))
    }
}
