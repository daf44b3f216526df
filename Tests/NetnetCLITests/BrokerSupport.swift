import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

let hasMosquitto = FileManager.default.isExecutableFile(atPath: "/usr/sbin/mosquitto")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/mosquitto_sub")

/// A real mosquitto on 127.0.0.1 with its own generated configuration (anonymous, persistence in
/// the scratch folder), never the system service. `stop` and `start` again keep its port and its
/// persisted sessions.
final class Broker {
    let port: Int
    private let scratch: Scratch
    private let tag: String
    private var process: Process?

    init(scratch: Scratch, tag: String = "broker", port: Int = freeTCPPort(), start: Bool = true) throws {
        self.scratch = scratch
        self.port = port
        self.tag = tag
        let data = scratch.file("\(tag)-data/")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let config = "listener \(port) 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location \(data)\n"
            + "max_queued_messages 0\nmax_inflight_messages 0\nlog_dest file \(scratch.file("\(tag).log"))\n"
        try config.write(toFile: scratch.file("\(tag).conf"), atomically: true, encoding: .utf8)
        if start { try self.start() }
    }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-c", scratch.file("\(tag).conf")]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        guard waitFor(10, { canConnect(port: port) }) else { throw CLIError("mosquitto did not listen on \(port)") }
    }

    /// Stops it (SIGTERM: it saves its persistence file) and waits.
    func stop() {
        guard let process, process.isRunning else { return }
        // SIGKILL: a teardown that waits on SIGTERM was seen to hang the suite.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    deinit { stop() }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    return onLoopback(port: port) { connect(fd, $0, $1) } == 0
}

/// `mosquitto_sub` with a persistent session (`-c`, a fixed client id, QoS 1), writing
/// `TOPIC PAYLOAD` lines to a file. `protocolV5` with a `$share/GROUP/…` topic makes it a shared
/// subscription consumer.
final class Subscriber {
    let output: String
    private let process = Process()

    init(scratch: Scratch, port: Int, topic: String = "netnet/#", clientID: String, protocolV5: Bool = false) throws {
        output = scratch.file("\(clientID).sub")
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_sub")
        process.arguments = ["-h", "127.0.0.1", "-p", "\(port)", "-t", topic, "-q", "1", "-c", "-i", clientID, "-v"]
            + (protocolV5 ? ["-V", "mqttv5", "-x", "600"] : [])
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 0.5)   // subscribed before anything is published
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    /// The JSON records received so far (topic, object), in arrival order.
    var records: [(topic: String, object: [String: Any])] {
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let space = line.firstIndex(of: " "),
                  let object = try? JSONSerialization.jsonObject(with: Data(line[line.index(after: space)...].utf8)) as? [String: Any]
            else { return nil }
            return (String(line[..<space]), object)
        }
    }
}

/// A TCP proxy on 127.0.0.1 in front of `target`: `cut()` closes the listener and every
/// connection (clients see the broker vanish and connections refused), `restore()` listens again
/// on the same port.
final class CuttableProxy: @unchecked Sendable {
    let port: Int
    private let target: Int
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var connections: [Int32] = []
    private var generation = 0

    init(target: Int) throws {
        self.target = target
        port = freeTCPPort()
        try restore()
    }

    func restore() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = onLoopback(port: port) { bind(fd, $0, $1) }
        guard rc == 0, listen(fd, 16) == 0 else { close(fd); throw CLIError("proxy: cannot listen on \(port)") }
        lock.lock(); listener = fd; generation += 1; let mine = generation; lock.unlock()
        Thread.detachNewThread { [self] in acceptLoop(fd, generation: mine) }
    }

    func cut() {
        lock.lock()
        let fd = listener
        listener = -1
        let open = connections
        connections.removeAll()
        lock.unlock()
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
        for c in open { shutdown(c, Int32(SHUT_RDWR)) }
    }

    deinit { cut() }

    private func acceptLoop(_ fd: Int32, generation mine: Int) {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            let rc = onLoopback(port: target) { connect(upstream, $0, $1) }
            lock.lock()
            let live = generation == mine && listener == fd
            if live && rc == 0 { connections += [client, upstream] }
            lock.unlock()
            guard live && rc == 0 else { close(client); close(upstream); continue }
            Thread.detachNewThread { Self.pump(from: client, to: upstream) }
            Thread.detachNewThread { Self.pump(from: upstream, to: client) }
        }
    }

    private static func pump(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(from, &buffer, buffer.count)
            if n <= 0 { break }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, n - sent) }
                if m <= 0 { break }
                sent += m
            }
            if sent < n { break }
        }
        shutdown(from, Int32(SHUT_RDWR))
        shutdown(to, Int32(SHUT_RDWR))
        close(from)
    }
}

/// The seqs of `kind` records (`frame`, `event`, `status`) of `stream` in JSON objects.
func seqs(_ objects: [[String: Any]], schema: String, stream: String) -> [Int] {
    objects.filter { $0["schema"] as? String == schema && $0["stream"] as? String == stream }.compactMap { $0["seq"] as? Int }
}

/// The JSON objects of a JSON-lines file.
func jsonObjects(inFile path: String) -> [[String: Any]] {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
}
