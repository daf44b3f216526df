import Foundation
import Testing
@testable import NetnetDaemon
import NetnetEngine
#if canImport(Glibc)
import Glibc
#endif

/// Shared fixtures: the bundled default model, a short H.264 clip made with ffmpeg, free ports.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let modelPath = root.appendingPathComponent("models/default.safetensors").path
    static let model: Model = try! Model(path: modelPath)
    static let hasFFmpeg = FileManager.default.isExecutableFile(atPath: "/usr/bin/ffmpeg")

    /// A 2 s, 10 fps, 320x240 H.264 clip (made once per process).
    static let clip: String = {
        let path = NSTemporaryDirectory() + "netnet-daemon-clip-\(getpid()).mp4"
        run("/usr/bin/ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "2",
                                "-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p", path])
        return path
    }()

    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        try? p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Collects the hub's events, parsed, for assertions.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [[String: Any]] = []
    init(hub: EventHub) {
        hub.subscribe(name: "test") { [self] event in
            if let object = try? JSONSerialization.jsonObject(with: Data(event.line)) as? [String: Any] {
                lock.withLock { events.append(object) }
            }
            return true
        }
    }
    var all: [[String: Any]] { lock.withLock { events } }
    func statuses(_ stream: String) -> [[String: Any]] {
        all.filter { $0["schema"] as? String == "netnet.status/1" && $0["stream"] as? String == stream }
    }
    /// Every record of `stream` (frame, event, status), in publish order.
    func records(_ stream: String) -> [[String: Any]] {
        all.filter { $0["stream"] as? String == stream }
    }
    func frames(_ stream: String) -> [[String: Any]] {
        all.filter { $0["schema"] as? String == "netnet.frame/1" && $0["stream"] as? String == stream }
    }
    /// Waits up to `seconds` for `condition`; true if it held.
    func wait(_ seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }
}

func quietLog() -> DaemonLog { DaemonLog(level: .error, journal: false, write: { _ in }) }

func config(_ streams: [StreamConfig], base: Double = 0.1, cap: Double = 0.3, stall: Double = 10) -> DaemonConfig {
    var c = DaemonConfig()
    c.streams = streams
    c.backoffBase = base
    c.backoffCap = cap
    c.stallTimeout = stall
    c.openTimeout = 5
    return c
}

@Suite("supervisor", .serialized)
struct SupervisorTests {
    @Test(.enabled(if: Fixtures.hasFFmpeg, "needs /usr/bin/ffmpeg"))
    func streamsEndReconnectAndReloadWithoutTouchingOthers() throws {
        let clip = Fixtures.clip
        let hub = EventHub()
        let events = EventLog(hub: hub)
        let supervisor = try Supervisor(config: config([StreamConfig(id: "a", url: clip), StreamConfig(id: "b", url: clip)]),
                                    model: Fixtures.model, hub: hub, log: quietLog(), random: { 0.5 })
        supervisor.start()
        // A file ends: backing_off ("ended"), connecting again; both streams are served (round-robin).
        let reconnected = events.wait(150) {
            supervisor.streamStats().allSatisfy { $0.snapshot().reconnects >= 2 } && !events.frames("a").isEmpty && !events.frames("b").isEmpty
        }
        #expect(reconnected)
        let a = events.statuses("a").map { $0["state"] as! String }
        #expect(Array(a.prefix(4)) == ["connecting", "streaming", "backing_off", "connecting"])
        let backoff = events.statuses("a").first { $0["state"] as? String == "backing_off" }!
        #expect(backoff["reason"] as? String == "ended")
        #expect(backoff["attempt"] as? Int == 0)
        #expect((backoff["retry_in"] as? Double ?? -1) == 0.05)   // base 0.1 × unit 0.5
        // Every reconnect is counted: connecting transitions after the first.
        for stats in supervisor.streamStats() {
            let s = stats.snapshot()
            #expect(s.reconnects + 1 == s.transitions["connecting"] ?? 0)
            #expect(s.framesDecoded >= 20)
            #expect(s.framesInferred > 0)
        }
        // Frame records are netnet.frame/1; seq is one counter per stream from 0 that frames,
        // events and status lines share.
        let frames = events.frames("a")
        let frameSeqs = frames.map { $0["seq"] as! Int }
        #expect(zip(frameSeqs, frameSeqs.dropFirst()).allSatisfy { $0 < $1 })
        let allSeqs = events.records("a").map { $0["seq"] as! Int }
        #expect(allSeqs.sorted() == Array(0..<allSeqs.count))
        #expect(frames.first?["width"] as? Int == 320)

        // Reload: a unchanged, b removed, c added.
        let statsA = supervisor.streamStats().first { $0.id == "a" }!
        let result = supervisor.apply(config([StreamConfig(id: "a", url: clip), StreamConfig(id: "c", url: clip)], base: 0.1, cap: 0.3))
        #expect(result == Supervisor.ReloadResult(added: ["c"], removed: ["b"], changed: [], unchanged: ["a"]))
        #expect(supervisor.streamStats().map(\.id) == ["a", "c"])
        #expect(supervisor.streamStats().first { $0.id == "a" } === statsA)
        #expect(events.statuses("b").last?["state"] as? String == "stopped")
        #expect(events.statuses("b").last?["reason"] as? String == "removed by reload")
        #expect(events.wait(120) { !events.frames("c").isEmpty })
        // A changed stream restarts.
        var changedA = StreamConfig(id: "a", url: clip)
        changedA.threshold = 0.9
        let second = supervisor.apply(config([changedA, StreamConfig(id: "c", url: clip)], base: 0.1, cap: 0.3))
        #expect(second.changed == ["a"] && second.unchanged == ["c"])
        #expect(supervisor.streamStats().first { $0.id == "a" } !== statsA)
        // seq goes on across the restart: no repeated or missing numbers.
        let seqBefore = events.frames("a").count
        #expect(events.wait(120) { events.frames("a").count > seqBefore })
        let seqs = events.records("a").map { $0["seq"] as! Int }
        #expect(seqs.sorted() == Array(0..<seqs.count))

        supervisor.stop()
        for id in ["a", "c"] {
            #expect(events.statuses(id).last?["state"] as? String == "stopped", "\(id)")
        }
    }

    @Test func deadCameraBacksOffExponentially() throws {
        let port = Fixtures.freePort()   // nothing listens there: connection refused
        let hub = EventHub()
        let events = EventLog(hub: hub)
        let supervisor = try Supervisor(config: config([StreamConfig(id: "dead", url: "tcp://127.0.0.1:\(port)")], base: 0.05, cap: 0.4),
                                    model: Fixtures.model, hub: hub, log: quietLog(), random: { 0.999 })
        supervisor.start()
        #expect(events.wait(20) { events.statuses("dead").filter { $0["state"] as? String == "backing_off" }.count >= 6 })
        supervisor.stop()
        let backoffs = events.statuses("dead").filter { $0["state"] as? String == "backing_off" }
        let attempts = backoffs.map { $0["attempt"] as! Int }
        #expect(Array(attempts.prefix(6)) == [0, 1, 2, 3, 4, 5])
        let delays = backoffs.prefix(6).map { $0["retry_in"] as! Double }
        let bounds = [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
        for (d, b) in zip(delays, bounds) { #expect(d <= b && d >= b * 0.99, "\(delays)") }
        #expect(backoffs.first?["reason"] as? String ?? "" != "")
        #expect(events.frames("dead").isEmpty)
    }

    @Test(.enabled(if: Fixtures.hasFFmpeg, "needs /usr/bin/ffmpeg"))
    func stalledServerIsDetectedAndRetried() throws {
        let port = Fixtures.freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        server.arguments = ["-loglevel", "error", "-re", "-stream_loop", "-1", "-i", Fixtures.clip, "-c", "copy", "-f", "mpegts",
                            "tcp://127.0.0.1:\(port)?listen=1"]
        try server.run()
        defer { kill(server.processIdentifier, SIGCONT); server.terminate(); server.waitUntilExit() }
        Thread.sleep(forTimeInterval: 0.5)
        let hub = EventHub()
        let events = EventLog(hub: hub)
        let supervisor = try Supervisor(config: config([StreamConfig(id: "s", url: "tcp://127.0.0.1:\(port)")], base: 0.1, cap: 0.2, stall: 1.5),
                                    model: Fixtures.model, hub: hub, log: quietLog(), random: { 0.5 })
        supervisor.start()
        defer { supervisor.stop() }
        #expect(events.wait(20) { !events.frames("s").isEmpty })
        kill(server.processIdentifier, SIGSTOP)   // the connection stays open, no more data
        let stalledAt = Date()
        #expect(events.wait(15) { events.statuses("s").contains { $0["state"] as? String == "stalled" } })
        let waited = Date().timeIntervalSince(stalledAt)
        #expect(waited >= 1 && waited < 8, "stalled after \(waited) s with stall_timeout 1.5")
        #expect(events.statuses("s").last { $0["state"] as? String == "stalled" }?["reason"] as? String ?? "" != "")
        #expect(events.wait(5) { events.statuses("s").last?["state"] as? String == "connecting" || events.statuses("s").last?["state"] as? String == "backing_off" })
    }
}

@Suite("fairness", .serialized)
struct FairnessTests {
    /// A 200 fps stream beside a 2 fps one (both files, played at their frame rates like cameras).
    /// Round-robin gives the slow stream a turn whenever it has a frame: it gets either every
    /// frame it decoded (inference faster than its rate) or as many turns as the fast one
    /// (inference slower: both always have a frame waiting), never fewer. 200 fps is about twice
    /// what the default model's inference does on the project's machine (it was 25 fps while the
    /// kernels were unoptimised in debug builds), so the fast stream must drop frames.
    @Test(.enabled(if: Fixtures.hasFFmpeg, "needs /usr/bin/ffmpeg"))
    func fastCameraCannotStarveASlowOne() throws {
        let dir = NSTemporaryDirectory() + "netnet-fair-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fast = dir + "/fast.mp4", slow = dir + "/slow.mp4"
        #expect(Fixtures.run("/usr/bin/ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=200", "-t", "30",
                                                 "-c:v", "libx264", "-preset", "ultrafast", "-g", "200", "-pix_fmt", "yuv420p", fast]) == 0)
        #expect(Fixtures.run("/usr/bin/ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=2", "-t", "120",
                                                 "-c:v", "libx264", "-g", "2", "-pix_fmt", "yuv420p", slow]) == 0)
        let hub = EventHub()
        let events = EventLog(hub: hub)
        let supervisor = try Supervisor(config: config([StreamConfig(id: "fast", url: fast), StreamConfig(id: "slow", url: slow)]),
                                    model: Fixtures.model, hub: hub, log: quietLog(), random: { 0.5 })
        supervisor.start()
        #expect(events.wait(150) { events.frames("slow").count >= 6 })
        supervisor.stop()
        let stats = Dictionary(uniqueKeysWithValues: supervisor.streamStats().map { ($0.id, $0.snapshot()) })
        let slowStats = stats["slow"]!, fastStats = stats["fast"]!
        // Files are played at their frame rate: about 100 fast frames decoded per slow one.
        #expect(fastStats.framesDecoded >= 5 * slowStats.framesDecoded, "fast \(fastStats.framesDecoded), slow \(slowStats.framesDecoded) decoded")
        // The fast stream has more frames than inference takes: some are dropped.
        #expect(fastStats.framesDropped > 0)
        // The slow stream is never starved: all its frames, or at least as many turns as the fast one.
        let order = events.all.filter { $0["schema"] as? String == "netnet.frame/1" }.map { $0["stream"] as! String }
        let first = order.firstIndex(of: "slow") ?? order.count
        let slowAfter = order[first...].filter { $0 == "slow" }.count, fastAfter = order[first...].filter { $0 == "fast" }.count
        #expect(slowAfter + 2 >= min(fastAfter, Int(slowStats.framesDecoded) - 1),
                "after the slow stream's first frame: slow \(slowAfter) inferred of \(slowStats.framesDecoded) decoded, fast \(fastAfter)")
        // The records report the drops (all but those after the fast stream's last record).
        let reported = events.frames("fast").reduce(0) { $0 + ($1["dropped"] as? Int ?? 0) }
        #expect(reported > 0 && reported <= Int(fastStats.framesDropped))
    }
}
