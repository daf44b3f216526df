import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection to 127.0.0.1:`port` that sends nothing; its descriptor, or -1.
func idleConnection(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    let rc = onLoopback(port: port) { connect(fd, $0, $1) }
    guard rc == 0 else { close(fd); return -1 }
    return fd
}

/// What the server did to an idle connection, waiting up to `seconds`: the bytes it sent before
/// closing (empty: closed without a word), or nil while it is still open.
func serverEnd(of fd: Int32, within seconds: Double) -> String? {
    var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let deadline = Date(timeIntervalSinceNow: seconds)
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 512)
    while Date() < deadline {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n > 0 { received += buffer[0..<n]; continue }
        if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return String(decoding: received, as: UTF8.self)   // EOF or reset: closed by the server
        }
    }
    return nil
}

/// What the server did to each of `fds`, waiting up to `seconds` for all together: the bytes it
/// sent before closing (empty: closed without a word), or nil for those still open at the end.
func serverEnds(of fds: [Int32], within seconds: Double) -> [String?] {
    var received = [[UInt8]](repeating: [], count: fds.count)
    var closed = [Bool](repeating: false, count: fds.count)
    var buffer = [UInt8](repeating: 0, count: 512)
    let deadline = Date(timeIntervalSinceNow: seconds)
    repeat {
        for (i, fd) in fds.enumerated() where !closed[i] {
            while true {
                let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if n > 0 { received[i] += buffer[0..<n]; continue }
                if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { closed[i] = true }
                break
            }
        }
        if closed.allSatisfy({ $0 }) { break }
        Thread.sleep(forTimeInterval: 0.05)
    } while Date() < deadline
    return fds.indices.map { closed[$0] ? String(decoding: received[$0], as: UTF8.self) : nil }
}

/// The value of the first `/metrics` sample starting with `name` (labels included), or nil.
func metric(_ text: String, _ name: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.split(separator: " ").last ?? "")
    }
    return nil
}

/// `netnet serve` under hostile input and exhausted resources (issue #25): idle HTTP connections
/// against a lowered descriptor limit, a full disk and a vanished folder under the JSON lines
/// sink, many dead streams. Each test runs the built binary with real sockets, files and limits.
@Suite("netnet serve: hostile input and exhausted resources", .serialized)
struct ServeResilienceTests {
    let scratch = Scratch()

    func writeConfig(_ text: String, name: String = "netnet.conf") throws -> String {
        let path = scratch.file(name)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    func get(_ base: String, _ path: String) -> (code: String, body: String) {
        let marker = "\n--code:"
        let result = (try? curl(["--max-time", "5", "-w", "\(marker)%{http_code}", "\(base)\(path)"]).body) ?? ""
        guard let range = result.range(of: marker, options: .backwards) else { return ("000", result) }
        return (String(result[range.upperBound...]), String(result[..<range.lowerBound]))
    }

    @Test("ulimit -n 256 and 300 idle connections: the cap refuses and counts, the header timeout closes, serve lives",
          .enabled(if: hasFFmpeg && hasCurl, "needs ffmpeg and curl"))
    func idleConnectionsAgainstALowLimit() throws {
        let clip = try ServeClips.make(in: scratch, loops: 30)
        let events = scratch.file("events.jsonl")
        let config = try writeConfig("""
            [global]
            listen = 127.0.0.1:0
            json_lines = \(events)
            http_header_timeout = 3
            http_idle_timeout = 3
            [stream a]
            url = \(clip)
            """)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch,
                                     launcher: ServeProcess.descriptorLimit(256))
        guard let port = serve.port() else { Issue.record("no port: \(serve.stderr)"); return }
        // 64 + 4 per stream + 2 per sink reserved: 256 - 70 = 186 connections.
        let cap = 256 - (64 + 4 + 2)
        #expect(serve.stderr.contains("file descriptors: limit 256, 70 reserved for the daemon and 1 streams, up to \(cap) HTTP connections"), "\(serve.stderr)")
        let base = "http://127.0.0.1:\(port)"
        #expect(waitFor(60) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("netnet.frame/1") })

        let sockets = (0..<300).map { _ in idleConnection(port: port) }
        defer { for fd in sockets where fd >= 0 { close(fd) } }
        #expect(sockets.allSatisfy { $0 >= 0 })
        // Those over the cap are answered 503 and closed at once; the others are held until the
        // header timeout (3 s) closes them without a word. None stays open.
        var refused = 0, timedOut = 0, open = 0
        for end in serverEnds(of: sockets.filter { $0 >= 0 }, within: 20) {
            switch end {
            case nil: open += 1
            case let text? where text.hasPrefix("HTTP/1.1 503"): refused += 1
            case _?: timedOut += 1
            }
        }
        #expect(serve.process.isRunning, "serve died: \(serve.stderr)")
        #expect(open == 0, "\(open) idle connections still open after 20 s")
        #expect(refused >= 300 - cap, "refused \(refused), timed out \(timedOut)")
        #expect(timedOut > 0 && timedOut <= cap, "refused \(refused), timed out \(timedOut)")

        // A fresh client gets through, and the counters say what happened.
        #expect(get(base, "/healthz") == ("200", "ok\n"))
        let metrics = get(base, "/metrics").body
        #expect((metric(metrics, "netnet_http_connections_refused_total") ?? 0) >= Double(refused), "\(metrics)")
        #expect(metric(metrics, "netnet_http_connections_limit") == Double(cap))
        #expect((metric(metrics, "netnet_http_connections_timed_out_total{timeout=\"header\"}") ?? 0) >= Double(timedOut))
        #expect(metric(metrics, "netnet_http_connections_open") == 1)   // this request
        // The stream and the file sink never ran short: frames still arrive, nothing was dropped.
        let before = ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").count
        #expect(waitFor(30) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").count > before })
        #expect(metric(metrics, "netnet_events_dropped_total{sink=\"file\"}") == 0)
        #expect(get(base, "/readyz").code == "200")
        // A kept-alive connection is closed after the idle timeout once its response is done.
        let kept = idleConnection(port: port)
        defer { close(kept) }
        let request = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        #expect(send(kept, request, request.count, 0) == request.count)
        let reply = serverEnd(of: kept, within: 15)
        #expect(reply?.hasPrefix("HTTP/1.1 200") == true && reply?.hasSuffix("ok\n") == true, "\(reply ?? "still open")")
        let after = get(base, "/metrics").body
        #expect((metric(after, "netnet_http_connections_timed_out_total{timeout=\"idle\"}") ?? 0) >= 1)
        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0, "\(serve.stderr)")
    }

    @Test("the limit lowered while running (prlimit --pid): the cap follows it, 400 idle connections do not crash serve",
          .enabled(if: hasFFmpeg && hasCurl && FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs ffmpeg, curl and prlimit"))
    func limitLoweredWhileRunning() throws {
        let clip = try ServeClips.make(in: scratch, loops: 30)
        let events = scratch.file("events.jsonl")
        let config = try writeConfig("""
            [global]
            listen = 127.0.0.1:0
            json_lines = \(events)
            http_header_timeout = 3
            [stream a]
            url = \(clip)
            """)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch, tag: "squeeze",
                                     launcher: ServeProcess.descriptorLimit(4096))
        guard let port = serve.port() else { Issue.record("no port: \(serve.stderr)"); return }
        let base = "http://127.0.0.1:\(port)"
        #expect(metric(get(base, "/metrics").body, "netnet_http_connections_limit") == 1024)
        #expect(waitFor(60) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("netnet.frame/1") })
        // Before: the cap stayed at 1024 and the daemon died of SIGILL once it ran out (Dispatch).
        try shell("prlimit --pid \(serve.process.processIdentifier) --nofile=200:200")
        let cap = 200 - 70
        #expect(metric(get(base, "/metrics").body, "netnet_http_connections_limit") == Double(cap))
        let sockets = (0..<400).map { _ in idleConnection(port: port) }
        defer { for fd in sockets where fd >= 0 { close(fd) } }
        let ends = serverEnds(of: sockets.filter { $0 >= 0 }, within: 20)
        #expect(serve.process.isRunning, "serve died: \(serve.stderr.suffix(500))")
        #expect(ends.allSatisfy { $0 != nil }, "\(ends.filter { $0 == nil }.count) still open")
        #expect(ends.filter { $0?.hasPrefix("HTTP/1.1 503") == true }.count >= 400 - cap)
        #expect(get(base, "/healthz") == ("200", "ok\n"))
        #expect(get(base, "/readyz").code == "200")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0, "\(serve.stderr.suffix(500))")
    }

    @Test("a descriptor limit too low for the configuration: one line and exit 1",
          .enabled(if: hasFFmpeg))
    func refusesTooLowALimit() throws {
        let clip = try ServeClips.make(in: scratch)
        let config = try writeConfig("[global]\nlisten = 127.0.0.1:0\n[stream a]\nurl = \(clip)\n")
        let low = try NetnetBinary.run(["serve", "--config", config], launcher: ServeProcess.descriptorLimit(60))
        #expect(low.status == 1)
        #expect(low.stderrLines.last == "netnet: \(config): 1 streams need at least 84 file descriptors (68 reserved: 64 + 4 per stream + 2 per sink, and 16 for HTTP clients), but the limit (RLIMIT_NOFILE, systemd's LimitNOFILE=) is 60; raise it", "\(low.stderr)")
        let big = try writeConfig("[global]\nlisten = 127.0.0.1:0\nhttp_max_connections = 500\n[stream a]\nurl = \(clip)\n", name: "big.conf")
        let tooMany = try NetnetBinary.run(["serve", "--config", big], launcher: ServeProcess.descriptorLimit(512))
        #expect(tooMany.status == 1)
        #expect(tooMany.stderr.contains("http_max_connections = 500 with 1 streams needs 568 file descriptors"), "\(tooMany.stderr)")
    }

    @Test("listen on a non-loopback address: refused without a token; with allow_unauthenticated, a one-line warning at start",
          .enabled(if: hasFFmpeg))
    func warnsAboutAnOpenListen() throws {
        let clip = try ServeClips.make(in: scratch, loops: 30)
        let refused = try writeConfig("[global]\nlisten = 0.0.0.0:0\n[stream a]\nurl = \(clip)\n", name: "open.conf")
        let run = try NetnetBinary.run(["serve", "--config", refused])
        #expect(run.status == 1 && run.stderrLines.last == "netnet: \(refused):2: listen = 0.0.0.0:0 is not a loopback address and there is no auth_token_file: anyone who can reach the port could read every stream; set auth_token_file, or allow_unauthenticated = true to run open anyway",
                "\(run.stderr)")
        for (listen, warns) in [("0.0.0.0:0", true), ("127.0.0.1:0", false)] {
            let config = try writeConfig("[global]\nlisten = \(listen)\nallow_unauthenticated = true\n[stream a]\nurl = \(clip)\n", name: "listen.conf")
            let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch, tag: "listen")
            #expect(serve.port() != nil, "\(serve.stderr)")
            let lines = serve.stderr.split(separator: "\n").filter { $0.contains("is not a loopback address") }
            #expect(lines.count == (warns ? 1 : 0), "\(serve.stderr)")
            if warns { #expect(lines.first?.hasPrefix("netnet: warning: listen = 0.0.0.0:0 is not a loopback address and the HTTP API has no authentication") == true) }
            serve.signal(SIGTERM)
            #expect(serve.waitExit(10) == 0)
        }
    }

    /// A tmpfs of `size` at a fresh folder, or nil when mounting is not permitted here.
    func mountTmpfs(size: String) -> String? {
        let folder = scratch.file("tmpfs")
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        guard (try? shell("mount -t tmpfs -o size=\(size) netnet-test '\(folder)' 2>/dev/null")) != nil else { return nil }
        return folder
    }

    static let canMount: Bool = {
        let folder = NSTemporaryDirectory() + "netnet-mount-probe-\(getpid())"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        guard (try? shell("mount -t tmpfs -o size=64k netnet-probe '\(folder)' 2>/dev/null")) != nil else { return false }
        _ = try? shell("umount '\(folder)'")
        return true
    }()

    @Test("a full disk under the JSON lines file: drops counted, /readyz says why, the sink recovers when space returns",
          .enabled(if: hasFFmpeg && hasCurl, "needs ffmpeg and curl"),
          .enabled(if: ServeResilienceTests.canMount, "mount -t tmpfs is not permitted here (needs root or CAP_SYS_ADMIN)"))
    func fullDisk() throws {
        guard let folder = mountTmpfs(size: "1m") else { Issue.record("mount failed"); return }
        defer { _ = try? shell("umount -l '\(folder)'") }
        let clip = try ServeClips.make(in: scratch, loops: 60)
        let events = "\(folder)/events.jsonl"
        let config = try writeConfig("""
            [global]
            listen = 127.0.0.1:0
            json_lines = \(events)
            json_lines_max_bytes = 64K
            json_lines_keep = 1
            [stream a]
            url = \(clip)
            [stream b]
            url = \(clip)
            """)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        guard let port = serve.port() else { Issue.record("no port: \(serve.stderr)"); return }
        let base = "http://127.0.0.1:\(port)"
        #expect(waitFor(60) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("netnet.frame/1") })
        #expect(get(base, "/readyz") == ("200", "ready\n"))
        // Fill the disk (dd stops at ENOSPC).
        _ = try? shell("dd if=/dev/zero of='\(folder)/filler' bs=4k 2>/dev/null")
        var readyz = ("", "")
        #expect(waitFor(60) { readyz = get(base, "/readyz"); return readyz.0 == "503" }, "\(readyz)")
        #expect(readyz.1.hasPrefix("not ready: file sink failing since "), "\(readyz.1)")
        #expect(readyz.1.contains("No space left on device"), "\(readyz.1)")
        var metrics = ""
        #expect(waitFor(30) { metrics = get(base, "/metrics").body; return (metric(metrics, "netnet_events_dropped_total{sink=\"file\"}") ?? 0) >= 5 }, "\(metrics)")
        #expect(metric(metrics, "netnet_sink_up{sink=\"file\"}") == 0)
        #expect(serve.stderr.contains("file sink: cannot write \(events): No space left on device; events are dropped (counted in netnet_events_dropped_total{sink=\"file\"}) and it retries"), "\(serve.stderr)")
        let dropped = metric(metrics, "netnet_events_dropped_total{sink=\"file\"}") ?? 0
        // Space returns: the sink writes again by itself, and the drops stay counted.
        try FileManager.default.removeItem(atPath: "\(folder)/filler")
        #expect(waitFor(60) { get(base, "/readyz") == ("200", "ready\n") }, "\(get(base, "/readyz"))")
        metrics = get(base, "/metrics").body
        #expect(metric(metrics, "netnet_sink_up{sink=\"file\"}") == 1)
        #expect(metric(metrics, "netnet_sink_recoveries_total{sink=\"file\"}") == 1)
        #expect((metric(metrics, "netnet_events_dropped_total{sink=\"file\"}") ?? 0) >= dropped)
        #expect(serve.stderr.contains("file sink: writing again after "), "\(serve.stderr)")
        let size = (try? FileManager.default.attributesOfItem(atPath: events)[.size] as? Int) ?? 0
        #expect(waitFor(30) { ((try? FileManager.default.attributesOfItem(atPath: events)[.size] as? Int) ?? 0) > size || FileManager.default.fileExists(atPath: events + ".1") })
        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0, "\(serve.stderr)")
        // Whatever was written is whole lines of JSON.
        for path in [events, events + ".1"] where FileManager.default.fileExists(atPath: path) {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.isEmpty || text.hasSuffix("\n"))
            for line in text.split(separator: "\n") { #expect((try? jsonObject(line)) != nil, "\(path): \(line.prefix(80))") }
        }
    }

    @Test("a rotation that cannot open the new file (its folder gone): drops counted, /readyz says why, recovery",
          .enabled(if: hasFFmpeg && hasCurl, "needs ffmpeg and curl"))
    func rotationFails() throws {
        let clip = try ServeClips.make(in: scratch, loops: 60)
        let folder = scratch.file("out")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let events = "\(folder)/events.jsonl"
        let config = try writeConfig("""
            [global]
            listen = 127.0.0.1:0
            json_lines = \(events)
            json_lines_max_bytes = 64K
            json_lines_keep = 1
            [stream a]
            url = \(clip)
            [stream b]
            url = \(clip)
            """)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        guard let port = serve.port() else { Issue.record("no port: \(serve.stderr)"); return }
        let base = "http://127.0.0.1:\(port)"
        #expect(waitFor(60) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("netnet.frame/1") })
        // The folder goes away: the open file is written on until the next rotation, which
        // cannot create the new file.
        try FileManager.default.moveItem(atPath: folder, toPath: folder + ".moved")
        var readyz = ("", "")
        #expect(waitFor(120) { readyz = get(base, "/readyz"); return readyz.0 == "503" }, "\(readyz)")
        #expect(readyz.1.contains("file sink failing since ") && readyz.1.contains("cannot open \(events): No such file or directory"), "\(readyz.1)")
        var metrics = ""
        #expect(waitFor(30) { metrics = get(base, "/metrics").body; return (metric(metrics, "netnet_events_dropped_total{sink=\"file\"}") ?? 0) >= 3 }, "\(metrics)")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        #expect(waitFor(60) { get(base, "/readyz") == ("200", "ready\n") })
        #expect(waitFor(30) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("netnet.frame/1") })
        metrics = get(base, "/metrics").body
        #expect(metric(metrics, "netnet_sink_recoveries_total{sink=\"file\"}") == 1)
        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0, "\(serve.stderr)")
    }

    /// Sends `GET path` on an open keep-alive connection and returns the status code and body
    /// (empty strings if no whole response came within `seconds`).
    func keepAliveGet(_ fd: Int32, _ path: String, within seconds: Double = 5) -> (code: String, body: String) {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return ("", "") }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { received += buffer[0..<n] } else if n == 0 { break }
            let text = String(decoding: received, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { continue }
            let head = text[..<end.lowerBound]
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) } ?? 0
            let body = String(text[end.upperBound...])
            if body.utf8.count >= length {
                return (String(head.split(separator: " ").dropFirst().first ?? ""), body)
            }
        }
        return ("", "")
    }

    /// Also checks `DescriptorSpares`: with no free descriptor number left below the limit,
    /// libdispatch's worker monitor (which Swift concurrency's pool runs on) aborts the process
    /// with SIGILL when it cannot open /proc/self/task/TID/stat (1 run in 5 without the spares).
    /// The daemon must release a spare within 0.1 s of the squeeze and its sink must not reopen
    /// while that would take the last free number.
    @Test("a rotation under EMFILE (the descriptor limit squeezed while running): drops counted, /readyz says why, recovery",
          .enabled(if: hasFFmpeg && hasCurl && FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs ffmpeg, curl and prlimit"))
    func rotationUnderEMFILE() throws {
        let clip = try ServeClips.make(in: scratch, loops: 60)
        let events = scratch.file("emfile-events.jsonl")
        let config = try writeConfig("""
            [global]
            listen = 127.0.0.1:0
            json_lines = \(events)
            json_lines_max_bytes = 64K
            json_lines_keep = 1
            [stream a]
            url = \(clip)
            [stream b]
            url = \(clip)
            """)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        guard let port = serve.port() else { Issue.record("no port: \(serve.stderr)"); return }
        let pid = serve.process.processIdentifier
        #expect(waitFor(60) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("netnet.frame/1") })
        // The squeeze starts near the end of a file, so the rotation it is about comes within
        // seconds even when a loaded machine infers only a few frames a second.
        func eventsSize() -> Int { (try? FileManager.default.attributesOfItem(atPath: events)[.size] as? Int) ?? 0 }
        #expect(waitFor(180) { eventsSize() >= 56 * 1024 }, "\(eventsSize()) bytes")
        // A connection opened (and used) before the squeeze: the only way to ask while no
        // descriptor can be had.
        let fd = idleConnection(port: port)
        defer { close(fd) }
        #expect(keepAliveGet(fd, "/readyz") == ("200", "ready\n"))
        // No new descriptor from here: open takes the lowest free descriptor number and fails
        // with EMFILE when that is not below the soft limit. The limit goes to the events file's
        // own number, so even the number the rotation frees by closing the file is refused.
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap(Int.init)
        let fileDescriptor = fds.first { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == events }
        guard let fileDescriptor else { Issue.record("\(events) is not open in \(pid)"); return }
        let hard = try capture("prlimit --pid \(pid) --nofile --noheadings --output HARD").trimmingCharacters(in: .whitespacesAndNewlines)
        try shell("prlimit --pid \(pid) --nofile=\(fileDescriptor):\(hard)")
        // Whatever the squeeze left, a number below the limit is free again within the watcher's
        // 0.1 s (a spare released): what the monitor needs to live.
        func freeBelowLimit() -> Bool {
            let open = Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap(Int.init))
            return (0..<fileDescriptor).contains { !open.contains($0) }
        }
        #expect(waitFor(2) { freeBelowLimit() }, "no free descriptor number below \(fileDescriptor) in \(pid)")
        var readyz = ("", "")
        #expect(waitFor(90) { readyz = keepAliveGet(fd, "/readyz"); return readyz.0 == "503" }, "\(readyz)\n\(serve.stderr)")
        #expect(readyz.1.contains("file sink failing since ") && readyz.1.contains("Too many open files"), "\(readyz.1)")
        var metrics = ""
        #expect(waitFor(30) { metrics = keepAliveGet(fd, "/metrics").body; return (metric(metrics, "netnet_events_dropped_total{sink=\"file\"}") ?? 0) >= 3 }, "\(metrics)")
        #expect(metric(metrics, "netnet_sink_up{sink=\"file\"}") == 0)
        // The limit comes back: the sink writes again by itself; the drops stay counted.
        try shell("prlimit --pid \(pid) --nofile=\(hard):\(hard)")
        #expect(waitFor(60) { keepAliveGet(fd, "/readyz") == ("200", "ready\n") })
        metrics = keepAliveGet(fd, "/metrics").body
        #expect(metric(metrics, "netnet_sink_recoveries_total{sink=\"file\"}") ?? 0 >= 1, "\(metrics)")
        #expect(waitFor(30) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("netnet.frame/1") })
        #expect(serve.process.isRunning, "\(serve.stderr)")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0, "\(serve.stderr)")
    }

    /// `count` streams at a closed port on 127.0.0.1 (each connection attempt is refused at once).
    func deadStreams(_ count: Int, port: Int) -> String {
        "[global]\nlisten = 127.0.0.1:0\nbackoff_base = 2\nbackoff_cap = 4\n"
            + (0..<count).map { "[stream s\($0)]\nurl = rtsp://127.0.0.1:\(port)/s\($0)\n" }.joined()
    }

    /// Largest RSS (kB) and the median thread count seen over `seconds` after the daemon is
    /// listening. The median, as connection attempts hold a thread each while they run: on a
    /// loaded machine a refused attempt takes longer and bursts overlap (a peak of 21 above the
    /// one-stream daemon was seen), while a thread kept per stream would be in every sample.
    func footprint(_ serve: ServeProcess, seconds: Double) -> (rss: Int, threads: Int) {
        var rss = 0
        var threads: [Int] = []
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            rss = max(rss, serve.status("VmRSS") ?? 0)
            if let count = serve.status("Threads") { threads.append(count) }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return (rss, threads.isEmpty ? 0 : threads.sorted()[threads.count / 2])
    }

    @Test("200 dead streams cost no frame memory and no thread each; SIGTERM while they start exits 0 at once; 257 are refused")
    func manyDeadStreams() throws {
        let closed = freeTCPPort()
        let one = try ServeProcess(arguments: ["serve", "--config", try writeConfig(deadStreams(1, port: closed), name: "one.conf")],
                                   scratch: scratch, tag: "one")
        #expect(one.port() != nil, "\(one.stderr)")
        let small = footprint(one, seconds: 4)
        one.signal(SIGTERM)
        #expect(one.waitExit(10) == 0, "\(one.stderr)")

        let many = try ServeProcess(arguments: ["serve", "--config", try writeConfig(deadStreams(200, port: closed), name: "many.conf")],
                                    scratch: scratch, tag: "many")
        #expect(many.port() != nil, "\(many.stderr)")
        #expect(waitFor(10) { many.stderr.components(separatedBy: ": backing_off (").count > 200 }, "not every stream failed once")
        let large = footprint(many, seconds: 4)
        // Before: 3 network-input slots (1.08 MB each at 300×300) and a reader thread per stream
        // from the start, +650 MB and +200 threads. Now a stream that is down holds its counters
        // and mailbox (a few kB) and a thread only while a connection attempt runs (a refused one
        // takes about a millisecond). Bounds: 100 kB of memory and 0.1 thread per stream.
        #expect(large.rss - small.rss < 200 * 100, "RSS \(small.rss) kB with 1 stream, \(large.rss) kB with 200")
        #expect(large.threads - small.threads < 20, "threads \(small.threads) with 1 stream, \(large.threads) with 200")
        let start = Date()
        many.signal(SIGTERM)
        let status = many.waitExit(10)
        #expect(status == 0, "\(many.stderr)")
        #expect(Date().timeIntervalSince(start) < 5)
        print("dead streams: 1 stream \(small.rss) kB, \(small.threads) threads; 200 streams \(large.rss) kB, \(large.threads) threads; SIGTERM → exit in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")

        // SIGTERM the moment the daemon listens, while 200 streams make their first attempts.
        let early = try ServeProcess(arguments: ["serve", "--config", scratch.file("many.conf")], scratch: scratch, tag: "early")
        #expect(early.port() != nil)
        early.signal(SIGTERM)
        #expect(early.waitExit(5) == 0, "\(early.stderr)")

        let over = try writeConfig(deadStreams(257, port: closed), name: "over.conf")
        let check = try NetnetBinary.run(["serve", "--check-config", over])
        #expect(check.status == 1)
        #expect(check.stderr == "netnet: \(over):\(4 + 2 * 256 + 1): 257 streams, more than the limit of 256 ([stream s256] is number 257); one inference thread serves them all, split them over several daemons\n", "\(check.stderr)")
        let run = try NetnetBinary.run(["serve", "--config", over])
        #expect(run.status == 1 && run.stderr.contains("257 streams, more than the limit of 256"))
    }
}
