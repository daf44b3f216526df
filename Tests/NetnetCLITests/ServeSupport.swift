import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `netnet serve` child process with its standard output and error in files.
final class ServeProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String
    private(set) var exitStatus: Int32?

    /// With a `launcher` (a program and its arguments), runs `launcher… netnet-path arguments…`:
    /// `ServeProcess.descriptorLimit(n)` runs it under `ulimit -n n` (exec'd, same pid).
    init(arguments: [String], scratch: Scratch, environment: [String: String] = [:], tag: String = "serve",
         launcher: [String] = []) throws {
        stdoutPath = scratch.file("\(tag).stdout")
        stderrPath = scratch.file("\(tag).stderr")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [NetnetBinary.url.path] + arguments
        } else {
            process.executableURL = NetnetBinary.url
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.removeValue(forKey: "JOURNAL_STREAM")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// A launcher that lowers RLIMIT_NOFILE (soft and hard) to `n`, then execs netnet.
    static func descriptorLimit(_ n: Int) -> [String] {
        ["/bin/bash", "-c", "ulimit -n \(n) && exec \"$@\"", "netnet"]
    }

    /// A field of /proc/PID/status (`VmRSS` in kB, `Threads`), nil once the process is gone.
    func status(_ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("\(field):") {
            return Int(line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        return nil
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits up to `seconds` for the exit; its status, or nil if still running.
    func waitExit(_ seconds: Double) -> Int32? {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    /// The HTTP port from the "listening on http://HOST:PORT" log line, waiting up to `seconds`.
    func port(within seconds: Double = 60) -> Int? {
        var found: Int?
        _ = waitFor(seconds) {
            guard let range = stderr.range(of: #"listening on http://[^ ]*:([0-9]+)"#, options: .regularExpression) else { return false }
            found = Int(stderr[range].split(separator: ":").last!.prefix { $0.isNumber })
            return true
        }
        return found
    }
}

/// Polls `condition` every 50 ms for up to `seconds`; true if it held.
func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return condition()
}

let hasCurl = FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")

/// Runs curl with `arguments`; its standard output (whatever it got before `--max-time`).
func curl(_ arguments: [String]) throws -> (status: Int32, body: String) {
    let (process, out) = curlProcess(["-sS"] + arguments)
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// An event stream read with curl until `enough` says the text so far is enough, or `seconds`
/// pass; the text read. Counting events rather than seconds keeps a slow (loaded, debug) daemon
/// from failing a test that only needs a few of them.
func curlStream(_ arguments: [String], seconds: Double, until enough: (String) -> Bool) throws -> String {
    let (process, out) = curlProcess(["-sS", "-N", "-m", String(Int(seconds.rounded(.up)))] + arguments)
    let text = LockedText()
    out.fileHandleForReading.readabilityHandler = { handle in
        let data = handle.availableData
        if !data.isEmpty { text.append(String(decoding: data, as: UTF8.self)) }
    }
    try process.run()
    _ = waitFor(seconds) { !process.isRunning || enough(text.value) }
    // SIGKILL: the test process may ignore SIGTERM (the signal tests), and its children inherit that.
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    out.fileHandleForReading.readabilityHandler = nil
    return text.value
}

/// A curl process, not started, with `arguments`, its output on the pipe and its errors dropped.
private func curlProcess(_ arguments: [String]) -> (Process, Pipe) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    return (process, out)
}

/// Text appended from one thread and read from another.
final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    func append(_ more: String) { lock.lock(); text += more; lock.unlock() }
    var value: String { lock.lock(); defer { lock.unlock() }; return text }
}

/// The `data:` payloads of a Server-Sent Events text, parsed, with their `event:` names.
func sseEvents(_ text: String) -> [(event: String, object: [String: Any])] {
    var result: [(String, [String: Any])] = []
    for block in text.components(separatedBy: "\n\n") {
        var name = "message"
        var data = ""
        for line in block.split(separator: "\n") {
            if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
            if line.hasPrefix("data: ") { data += line.dropFirst(6) }
        }
        if !data.isEmpty, let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] {
            result.append((name, object))
        }
    }
    return result
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    _ = onLoopback(port: 0) { bind(fd, $0, $1) }
    return boundPort(fd)
}

/// `call` (`bind` or `connect`) with the address 127.0.0.1:`port` (0: any port); its result.
func onLoopback(port: Int, _ call: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// The local port of a bound IPv4 socket.
func boundPort(_ fd: Int32) -> Int {
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A real unix datagram socket standing in for systemd's `NOTIFY_SOCKET`. A thread reads it all
/// the time (as systemd does), so the sender's queue never fills and no datagram is lost.
final class NotifyListener: @unchecked Sendable {
    let fd: Int32
    let path: String
    private let lock = NSLock()
    private var received: [String] = []
    private var closed = false
    private let done = DispatchSemaphore(value: 0)

    init(scratch: Scratch) throws {
        path = scratch.file("notify.sock")
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw CLIError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw CLIError("bind \(path): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !lock.withLock({ closed }) {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 {
                    let message = String(decoding: buffer[0..<n], as: UTF8.self)
                    lock.withLock { received.append(message) }
                }
            }
            done.signal()
        }
    }
    deinit {
        lock.withLock { closed = true }
        done.wait()
        close(fd)
        unlink(path)
    }
    /// Everything received so far, in order.
    var messages: [String] { lock.withLock { received } }
    /// Waits up to `seconds` until `stop` holds for the messages so far; returns them.
    func collect(_ seconds: Double, until stop: ([String]) -> Bool) -> [String] {
        _ = waitFor(seconds) { stop(messages) }
        return messages
    }
}

/// Test clips made with ffmpeg: a 2 s 10 fps 320×240 H.264 MP4, and a long one looped from it
/// without re-encoding (`-stream_loop`, `-c copy`).
enum ServeClips {
    static func make(in scratch: Scratch, loops: Int = 0) throws -> String {
        let short = scratch.file("short.mp4")
        if !FileManager.default.fileExists(atPath: short) {
            try shell("ffmpeg -loglevel error -y -f lavfi -i testsrc=size=320x240:rate=10 -t 2 -c:v libx264 -g 10 -pix_fmt yuv420p '\(short)'")
        }
        guard loops > 0 else { return short }
        let long = scratch.file("long\(loops).mp4")
        try shell("ffmpeg -loglevel error -y -stream_loop \(loops) -i '\(short)' -c copy '\(long)'")
        return long
    }
}
