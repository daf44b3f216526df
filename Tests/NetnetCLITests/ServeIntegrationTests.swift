import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Whether GStreamer's RTSP server is importable by /usr/bin/python3 (Debian packages
/// gir1.2-gst-rtsp-server-1.0, python3-gi, python3-gst-1.0, gstreamer1.0-plugins-good/-bad).
let hasRTSPServer: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = ["-c", """
        import gi
        gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')
        from gi.repository import Gst, GstRtspServer
        Gst.init(None)
        import sys
        sys.exit(0 if all(Gst.ElementFactory.find(e) for e in ('qtdemux', 'h264parse', 'rtph264pay')) else 1)
        """]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

/// The TCP states (from /proc/net/tcp, as hex: "0A" listening, "01" established) of the sockets
/// bound to 127.0.0.1:`port`; no connection is made.
func localSocketStates(port: Int) -> Set<String> {
    let table = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
    let local = String(format: "0100007F:%04X", port)
    return Set(table.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        return fields.count > 3 && fields[1] == local ? String(fields[3]) : nil
    })
}

/// The `time` of an event: ISO 8601 UTC with milliseconds.
func parseTime(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.date(from: text)
}

/// A server process (the RTSP server script or ffmpeg), killed when released.
final class ServerProcess {
    let process = Process()
    init(_ tool: String, _ arguments: [String], log: String) throws {
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = FileHandle(forWritingAtPath: log)
        handle?.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }
    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
    deinit { kill() }
}

/// `netnet serve` against real servers on 127.0.0.1: GStreamer's RTSP server serving a looped
/// H.264 clip, and ffmpeg serving MPEG-TS over TCP. Both are killed and restarted mid-run; the
/// daemon must reconnect by itself within the backoff bound and the events must resume, as a
/// curl client of /api/events sees them.
@Suite("netnet serve against real servers", .serialized)
struct ServeIntegrationTests {
    let scratch = Scratch()

    @Test("RTSP and TCP servers killed and restarted: reconnects within the backoff bound, events resume (curl on SSE and /metrics)",
          .enabled(if: hasFFmpeg && hasCurl, "needs ffmpeg and curl"),
          .enabled(if: hasRTSPServer, "needs GStreamer's RTSP server: apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi python3-gst-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad (scripts/install-deps.sh)"))
    func serversDieAndComeBack() throws {
        let short = try ServeClips.make(in: scratch)
        let long = try ServeClips.make(in: scratch, loops: 90)   // 3 minutes, looped without re-encoding
        let rtspPort = freeTCPPort(), tcpPort = freeTCPPort()
        let serverLog = scratch.file("rtsp-server.log")
        func startRTSP() throws -> ServerProcess {
            try ServerProcess("/usr/bin/python3", ["\(repositoryRoot)/scripts/rtsp-server.py", "\(rtspPort)", "cam", long], log: serverLog)
        }
        func startTCP() throws -> ServerProcess {
            try ServerProcess("/usr/bin/ffmpeg", ["-loglevel", "error", "-re", "-stream_loop", "-1", "-i", short, "-c", "copy",
                                                  "-f", "mpegts", "tcp://127.0.0.1:\(tcpPort)?listen=1"], log: scratch.file("ffmpeg-server.log"))
        }
        var rtsp = try startRTSP()
        var tcp = try startTCP()
        #expect(waitFor(10) { ((try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? "").contains("ready rtsp://") })

        let backoffCap = 2.0, openTimeout = 3.0
        let config = scratch.file("netnet.conf")
        try """
            [global]
            listen = 127.0.0.1:0
            backoff_base = 0.25
            backoff_cap = \(backoffCap)
            stall_timeout = 3
            open_timeout = \(openTimeout)
            [stream rtsp]
            url = rtsp://127.0.0.1:\(rtspPort)/cam
            [stream tcp]
            url = tcp://127.0.0.1:\(tcpPort)
            """.write(toFile: config, atomically: false, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        guard let port = serve.port() else { Issue.record("no port: \(serve.stderr)"); return }
        let base = "http://127.0.0.1:\(port)"

        // A curl client on the event stream for the whole run.
        let ssePath = scratch.file("events.sse")
        let sse = try ServerProcess("/usr/bin/curl", ["-sS", "-N", "--max-time", "100", "-o", ssePath, "\(base)/api/events"],
                                    log: scratch.file("curl.log"))
        func events() -> [(event: String, object: [String: Any])] {
            sseEvents((try? String(contentsOfFile: ssePath, encoding: .utf8)) ?? "")
        }
        func frames(_ id: String) -> Int { events().filter { $0.event == "frame" && $0.object["stream"] as? String == id }.count }
        func states(_ id: String) -> [String] {
            events().filter { $0.event == "status" && $0.object["stream"] as? String == id }.compactMap { $0.object["state"] as? String }
        }

        #expect(waitFor(60) { frames("rtsp") >= 3 && frames("tcp") >= 3 }, "no frames: \(serve.stderr)")
        #expect(states("rtsp").last == "streaming" && states("tcp").last == "streaming")

        // Kill both servers; both streams must notice and back off.
        rtsp.kill()
        tcp.kill()
        #expect(waitFor(15) { states("rtsp").contains("backing_off") && states("tcp").contains("backing_off") }, "\(serve.stderr)")
        Thread.sleep(forTimeInterval: 3)   // a few failed attempts while the servers are down
        let framesBefore = (rtsp: frames("rtsp"), tcp: frames("tcp"))
        let streamingBefore = (rtsp: states("rtsp").filter { $0 == "streaming" }.count, tcp: states("tcp").filter { $0 == "streaming" }.count)

        // Restart them, and note when each accepts connections again; the daemon must reconnect
        // by itself within the backoff bound of that moment. Measured with the daemon's own
        // event times, so a slow test process does not inflate the figure.
        let readyLines = ((try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? "").components(separatedBy: "ready rtsp://").count
        rtsp = try startRTSP()
        tcp = try startTCP()
        // ffmpeg's tcp listen=1 closes its listening socket as soon as it accepts, so a daemon
        // retrying at the right moment can connect between two polls and the listening state is
        // never seen. Then the server side's established socket shows it is back, and the poll
        // before it (when it was not) is taken as the moment: that can only lengthen the measured
        // reconnect, never shorten it.
        var ready: [String: Date] = [:]
        var previousPoll = Date()
        _ = waitFor(60) {
            let now = Date()
            if ready["rtsp"] == nil,
               ((try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? "").components(separatedBy: "ready rtsp://").count > readyLines {
                ready["rtsp"] = now
            }
            if ready["tcp"] == nil {
                let states = localSocketStates(port: tcpPort)
                if states.contains("0A") { ready["tcp"] = now } else if states.contains("01") { ready["tcp"] = previousPoll }
            }
            previousPoll = now
            return ready.count == 2
        }
        #expect(ready.count == 2, "the servers did not come back: \(ready)")
        var reconnectedAfter: [String: Double] = [:]
        _ = waitFor(60) {
            let all = events()
            for (id, before) in [("rtsp", streamingBefore.rtsp), ("tcp", streamingBefore.tcp)] where reconnectedAfter[id] == nil {
                let streaming = all.filter { $0.event == "status" && $0.object["stream"] as? String == id && $0.object["state"] as? String == "streaming" }
                if streaming.count > before, let time = (streaming[before].object["time"] as? String).flatMap(parseTime), let up = ready[id] {
                    reconnectedAfter[id] = time.timeIntervalSince(up)
                }
            }
            return reconnectedAfter.count == 2
        }
        // Bound: one backoff delay (< cap) + one connection attempt (< open_timeout) + the first frame.
        let bound = backoffCap + openTimeout + 2
        for id in ["rtsp", "tcp"] {
            #expect((reconnectedAfter[id] ?? .infinity) < bound, "\(id) reconnected \(reconnectedAfter[id] ?? -1) s after its server was back (bound \(bound) s)")
        }
        #expect(waitFor(30) { frames("rtsp") >= framesBefore.rtsp + 3 && frames("tcp") >= framesBefore.tcp + 3 }, "events did not resume")

        // /metrics counts the reconnects; every status transition is in the SSE stream.
        let metrics = try curl(["--max-time", "5", "\(base)/metrics"]).body
        func sample(_ prefix: String) -> Int? {
            metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.split(separator: " ").last!) }
        }
        for id in ["rtsp", "tcp"] {
            let count = sample("netnet_reconnects_total{stream=\"\(id)\"} ") ?? -1
            let connecting = sample("netnet_state_transitions_total{stream=\"\(id)\",state=\"connecting\"} ") ?? -1
            // Every connection attempt after the first is a reconnect, and the client saw the ones
            // after the kill (it subscribed after start-up, so it may have missed the first).
            #expect(count >= 1 && count == connecting - 1, "\(id): reconnects \(count), connecting transitions \(connecting)")
            let seen = states(id).filter { $0 == "connecting" }.count
            #expect(seen >= 1 && seen <= connecting, "\(id): SSE saw \(seen) connecting events of \(connecting)")
        }
        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0, "\(serve.stderr)")
        sse.kill()
        print("serve integration: reconnected after \(reconnectedAfter.mapValues { String(format: "%.2f s", $0) }) (bound \(bound) s)")
    }
}
