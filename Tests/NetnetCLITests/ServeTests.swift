import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `netnet serve` as a process: configuration checks, signals, sd_notify, the HTTP API.
@Suite("netnet serve", .serialized)
struct ServeTests {
    let scratch = Scratch()

    func writeConfig(_ text: String, name: String = "netnet.conf") throws -> String {
        let path = scratch.file(name)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    func checkConfig(_ text: String) throws -> NetnetBinary.Result {
        try NetnetBinary.run(["serve", "--check-config", try writeConfig(text, name: "check.conf")])
    }

    @Test("--check-config accepts a valid file and names file and line for each rejection")
    func checkConfigMessages() throws {
        let ok = try checkConfig("[global]\nlisten = 127.0.0.1:0\n[stream a]\nurl = rtsp://127.0.0.1:8554/cam\nclasses = person\n")
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("OK: 1 streams (1 enabled)"))
        let path = scratch.file("check.conf")
        let cases: [(String, String)] = [
            ("[global]\nlisten = 127.0.0.1:0\nfoo = 1\n[stream a]\nurl = /x\n", "\(path):3: unknown key 'foo' in [global]"),
            ("[stream a]\nurl = /x\nthreshold = 2\n", "\(path):3: threshold = 2 is out of range 0-1"),
            ("[stream a]\nurl = /x\n[stream a]\nurl = /y\n", "\(path):3: duplicate stream id 'a'"),
            ("[stream a]\nurl = cam1\n", "\(path):2: url 'cam1' is neither an absolute path nor a URL"),
            ("[global]\nhttp_send_buffer = 100\n[stream a]\nurl = /x\n", "\(path):2: http_send_buffer = 100 is below 4096 (0 leaves it to the kernel)"),
            ("[stream a]\nurl = /x\nclasses = unicorn\n", "\(path):3: [stream a] classes: 'unicorn' is not a class of the model"),
            ("[global]\nmodel = /nonexistent/m.safetensors\n[stream a]\nurl = /x\n", "/nonexistent/m.safetensors"),
        ]
        for (text, expected) in cases {
            let result = try checkConfig(text)
            #expect(result.status == 1, "\(text)")
            #expect(result.stderrLines.count == 1, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("netnet: "), "\(result.stderr)")
            #expect(result.stderr.contains(expected), "\(result.stderr)")
        }
        let missing = try NetnetBinary.run(["serve", "--check-config", scratch.file("absent.conf")])
        #expect(missing.status == 1)
        #expect(missing.stderr == "netnet: \(scratch.file("absent.conf")): cannot read the configuration: No such file or directory\n")
        let serveMissing = try NetnetBinary.run(["serve", "--config", scratch.file("absent.conf")])
        #expect(serveMissing.status == 1 && serveMissing.stderr.contains("No such file or directory"))
        let badOutput = try writeConfig("[global]\nlisten = 127.0.0.1:0\njson_lines = /nonexistent-dir/events.jsonl\n[stream a]\nurl = /x.mp4\n", name: "out.conf")
        let noDir = try NetnetBinary.run(["serve", "--config", badOutput])
        #expect(noDir.status == 1)
        #expect(noDir.stderrLines.last == "netnet: cannot open /nonexistent-dir/events.jsonl: No such file or directory", "\(noDir.stderr)")
        let neither = try NetnetBinary.run(["serve"])
        #expect(neither.status != 0 && neither.stderr.contains("give either --config FILE or --check-config FILE"))
        let help = try NetnetBinary.run(["serve", "--help"])
        #expect(help.status == 0 && help.stdout.contains("--check-config") && help.stdout.contains("SIGHUP"))
    }

    @Test("serve refuses a class the model does not have, naming file and line")
    func serveChecksClasses() throws {
        let config = try writeConfig("[global]\nlisten = 127.0.0.1:0\n[stream a]\nurl = /nonexistent.mp4\nclasses = person, unicorn\n")
        let result = try NetnetBinary.run(["serve", "--config", config])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("netnet: \(config):5: [stream a] classes: 'unicorn' is not a class of the model"), "\(result.stderr)")
    }

    @Test("a port in use is a one-line error and exit 1", .enabled(if: hasFFmpeg))
    func portInUse() throws {
        let clip = try ServeClips.make(in: scratch)
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        _ = onLoopback(port: 0) { bind(listener, $0, $1) }
        listen(listener, 1)
        let port = boundPort(listener)
        let config = try writeConfig("[global]\nlisten = 127.0.0.1:\(port)\n[stream a]\nurl = \(clip)\n")
        let result = try NetnetBinary.run(["serve", "--config", config])
        #expect(result.status == 1)
        #expect(result.stderr.contains("netnet: cannot listen on 127.0.0.1:\(port)"), "\(result.stderr)")
    }

    @Test("SIGTERM during live processing exits 0 within 5 s; the JSON lines file ends on a complete line; sd_notify",
          .enabled(if: hasFFmpeg))
    func sigtermDrainsAndNotifies() throws {
        let clip = try ServeClips.make(in: scratch, loops: 30)
        let events = scratch.file("events.jsonl")
        let config = try writeConfig("""
            [global]
            listen = 127.0.0.1:0
            json_lines = \(events)
            stdout = true
            [stream a]
            url = \(clip)
            [stream b]
            url = \(clip)
            every = 2
            """)
        let notify = try NotifyListener(scratch: scratch)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch,
                                     environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        let messages = notify.collect(90) { got in
            got.contains { $0.hasPrefix("READY=1") } && got.contains("WATCHDOG=1") && got.contains { $0.hasPrefix("STATUS=2 streams") }
        }
        #expect(messages.contains { $0.hasPrefix("READY=1") }, "\(messages) \(serve.stderr)")
        #expect(messages.contains("WATCHDOG=1"), "\(messages)")
        #expect(messages.contains { $0.hasPrefix("STATUS=2 streams, ") && $0.hasSuffix(" fps") }, "\(messages)")
        // READY=1 comes only after the port is bound.
        #expect(serve.port(within: 1) != nil)
        #expect(waitFor(60) { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("\"stream\": \"b\", \"seq\": 2") })
        let start = Date()
        serve.signal(SIGTERM)
        let status = serve.waitExit(10)
        let took = Date().timeIntervalSince(start)
        #expect(status == 0, "\(serve.stderr)")
        #expect(took < 5, "exit took \(took) s")
        let rest = notify.collect(2) { $0.contains { $0.hasPrefix("STOPPING=1") } }
        #expect(rest.contains { $0.hasPrefix("STOPPING=1") })
        let text = try String(contentsOfFile: events, encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        var frames = 0
        for line in text.split(separator: "\n") {
            let object = try jsonObject(line)
            if object["schema"] as? String == "netnet.frame/1" { frames += 1 }
            else { #expect(["netnet.status/1", "netnet.event/1"].contains(object["schema"] as? String)) }
        }
        #expect(frames > 0)
        // The last status of each stream is "stopped"; stdout carries the same events.
        let statuses = text.split(separator: "\n").compactMap { try? jsonObject($0) }.filter { $0["schema"] as? String == "netnet.status/1" }
        for id in ["a", "b"] {
            #expect(statuses.last { $0["stream"] as? String == id }?["state"] as? String == "stopped")
        }
        #expect(serve.stdout == text)
        // Every line validates against its schema (frame, event or status).
        if hasJSONSchema { try validateAgainstSchema(events) }
    }

    @Test("SIGHUP: a broken configuration keeps the old streams; a valid one adds and removes streams",
          .enabled(if: hasFFmpeg))
    func sighupReload() throws {
        let clip = try ServeClips.make(in: scratch, loops: 30)
        let events = scratch.file("events.jsonl")
        let good = "[global]\nlisten = 127.0.0.1:0\njson_lines = \(events)\n[stream a]\nurl = \(clip)\n"
        let config = try writeConfig(good)
        let notify = try NotifyListener(scratch: scratch)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch, environment: ["NOTIFY_SOCKET": notify.path])
        guard let port = serve.port() else { Issue.record("no port: \(serve.stderr)"); return }
        func frames(_ id: String) -> Int {
            ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").components(separatedBy: "\"schema\": \"netnet.frame/1\", \"stream\": \"\(id)\"").count - 1
        }
        #expect(waitFor(60) { frames("a") >= 2 })
        try "[global]\nlisten = 127.0.0.1:0\njson_lines = \(events)\n[stream a]\nurl = \(clip)\nthreshold = 7\n".write(toFile: config, atomically: false, encoding: .utf8)
        serve.signal(SIGHUP)
        #expect(waitFor(10) { serve.stderr.contains("reload rejected, the running configuration stays: \(config):6: threshold = 7 is out of range 0-1") }, "\(serve.stderr)")
        // systemd hears RELOADING=1, then READY=1 again.
        let messages = notify.collect(10) { got in
            guard let r = got.firstIndex(where: { $0.hasPrefix("RELOADING=1") }) else { return false }
            return got[r...].contains { $0.hasPrefix("READY=1") }
        }
        let reloading = messages.firstIndex { $0.hasPrefix("RELOADING=1") }
        #expect(reloading != nil && messages[(reloading ?? 0)...].contains { $0.hasPrefix("READY=1") }, "\(messages)")
        let before = frames("a")
        #expect(waitFor(30) { frames("a") >= before + 2 }, "stream a stopped after a broken reload")
        if hasCurl {
            let metrics = try curl(["--max-time", "5", "http://127.0.0.1:\(port)/metrics"])
            #expect(metrics.body.contains("netnet_config_reloads_total{result=\"rejected\"} 1"))
        }
        // A valid file: b added, a kept.
        try (good + "[stream b]\nurl = \(clip)\n").write(toFile: config, atomically: false, encoding: .utf8)
        serve.signal(SIGHUP)
        #expect(waitFor(60) { frames("b") >= 1 }, "\(serve.stderr)")
        #expect(serve.stderr.contains("reload: \(config): added [b], removed [], changed [], unchanged [a]"))
        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0)
    }

    @Test("HTTP: healthz, readyz, metrics, api/streams and the SSE stream read with curl",
          .enabled(if: hasFFmpeg && hasCurl, "needs ffmpeg and curl"))
    func httpEndpoints() throws {
        let clip = try ServeClips.make(in: scratch, loops: 30)
        let config = try writeConfig("[global]\nlisten = 127.0.0.1:0\n[stream a]\nurl = \(clip)\n[stream b]\nurl = \(clip)\n")
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        guard let port = serve.port() else { Issue.record("no port: \(serve.stderr)"); return }
        let base = "http://127.0.0.1:\(port)"
        #expect(try curl(["--max-time", "5", "\(base)/healthz"]).body == "ok\n")
        #expect(try curl(["--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "\(base)/readyz"]).body == "200")
        // Once b has inferred frames (debug builds on a busy machine are slow), SSE filtered to b:
        // the curl client reads for 8 s.
        #expect(waitFor(90) {
            let body = (try? curl(["--max-time", "5", "\(base)/api/streams"]).body) ?? ""
            return body.contains("\"id\": \"b\"") && !body.contains("\"frames_inferred\": 0,")
        })
        let sse = try curl(["-N", "--max-time", "8", "\(base)/api/events?stream=b"])
        #expect(sse.status == 28, "curl should stop at --max-time, got \(sse.status)")   // 28: timed out, as expected for a stream
        let received = sseEvents(sse.body)
        #expect(!received.isEmpty, "no SSE events: \(sse.body.prefix(300))")
        #expect(received.allSatisfy { $0.object["stream"] as? String == "b" })
        #expect(received.contains { $0.event == "frame" && $0.object["schema"] as? String == "netnet.frame/1" && $0.object["detections"] is [Any] })
        #expect(received.allSatisfy { ($0.event == "frame") == ($0.object["schema"] as? String == "netnet.frame/1") })
        let headers = try curl(["-N", "--max-time", "1", "-D", "-", "-o", "/dev/null", "\(base)/api/events"])
        #expect(headers.body.lowercased().contains("content-type: text/event-stream"))
        #expect(try curl(["--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "\(base)/api/events?stream=zzz"]).body == "404")

        let metrics = try curl(["--max-time", "5", "-D", "-", "\(base)/metrics"]).body
        #expect(metrics.contains("text/plain; version=0.0.4"))
        for id in ["a", "b"] {
            for family in ["netnet_frames_decoded_total", "netnet_frames_inferred_total", "netnet_frames_dropped_total",
                           "netnet_decode_errors_total", "netnet_reconnects_total", "netnet_queue_depth"] {
                #expect(metrics.contains("\(family){stream=\"\(id)\"} "), "\(family) \(id)")
            }
            #expect(metrics.contains("netnet_inference_seconds_bucket{stream=\"\(id)\",le=\"+Inf\"}"))
            #expect(metrics.contains("netnet_end_to_end_seconds_count{stream=\"\(id)\"}"))
            // Exactly one state is 1 (a file input ends and reconnects, so which one varies).
            let states = metrics.split(separator: "\n").filter { $0.hasPrefix("netnet_stream_state{stream=\"\(id)\"") }
            #expect(states.count == 5 && states.filter { $0.hasSuffix(" 1") }.count == 1, "\(states)")
        }
        #expect(metrics.contains("netnet_events_dropped_total{sink=\"sse\"}"))

        let streams = try curl(["--max-time", "5", "\(base)/api/streams"]).body
        let object = try JSONSerialization.jsonObject(with: Data(streams.utf8)) as? [String: Any]
        let list: [[String: Any]] = object?["streams"] as? [[String: Any]] ?? []
        let ids: [String] = list.compactMap { $0["id"] as? String }
        #expect(ids == ["a", "b"])
        #expect(["connecting", "streaming", "backing_off"].contains(list.first?["state"] as? String ?? "?"))
        #expect((list.first?["frames_inferred"] as? Int ?? 0) > 0)
        #expect(list.first?["url"] as? String == clip)
        #expect(try curl(["--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "\(base)/api/streams/zzz/snapshot.jpg"]).body == "404")
        // The snapshot: a JPEG of the latest inferred frame, full size.
        let jpeg = scratch.file("snapshot.jpg")
        let snapshot = try curl(["--max-time", "10", "-o", jpeg, "-w", "%{http_code} %{content_type}", "\(base)/api/streams/a/snapshot.jpg"])
        #expect(snapshot.body == "200 image/jpeg")
        let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: jpeg))) ?? Data())
        #expect(bytes.starts(with: [0xFF, 0xD8]) && bytes.count > 1000)
        #expect(try capture("ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 '\(jpeg)'") == "mjpeg,320,240")
        #expect(try curl(["--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "\(base)/nothing"]).body == "404")

        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0, "\(serve.stderr)")
    }

    @Test("systemd/netnet.service passes systemd-analyze verify and rates at most 2.5",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze"))
    func systemdUnit() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["\(repositoryRoot)/scripts/check-systemd.sh", NetnetBinary.url.path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("verify: OK"))
        // The score docs/operations.md quotes is the one systemd gives.
        let score = text.components(separatedBy: "exposure: ").last?.split(separator: " ").first.map(String.init) ?? "?"
        let docs = (try? String(contentsOfFile: "\(repositoryRoot)/docs/operations.md", encoding: .utf8)) ?? ""
        #expect(docs.contains("exposure level \(score)"), "docs/operations.md does not quote the score \(score)")
    }
}
