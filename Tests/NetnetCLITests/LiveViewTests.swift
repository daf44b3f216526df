import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

let chromiumPath = "/usr/bin/chromium"
let hasChromium = FileManager.default.isExecutableFile(atPath: chromiumPath)

/// Headless Chromium driven by `scripts/browser-driver.py` (the DevTools protocol over a pipe):
/// one command line in, one JSON answer out.
final class BrowserDriver {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer = Data()

    init(log: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["\(repositoryRoot)/scripts/browser-driver.py", chromiumPath]
        process.standardInput = input
        process.standardOutput = output
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
    }

    deinit {
        try? input.fileHandleForWriting.write(contentsOf: Data("quit\n".utf8))
        let deadline = Date(timeIntervalSinceNow: 5)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Sends `command` and returns the answer (`["error": …]` when the driver failed or died).
    func send(_ command: String) -> [String: Any] {
        precondition(!command.contains("\n"))
        do { try input.fileHandleForWriting.write(contentsOf: Data((command + "\n").utf8)) } catch { return ["error": "\(error)"] }
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[buffer.startIndex..<newline]
                buffer = Data(buffer[buffer.index(after: newline)...])
                return (try? JSONSerialization.jsonObject(with: line) as? [String: Any]) ?? ["error": "bad answer"]
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return ["error": "the driver ended"] }
            buffer.append(chunk)
        }
    }

    /// The value of a JavaScript expression (nil on an error).
    func eval(_ expression: String) -> Any? { send("eval " + expression)["value"] }

    /// Polls `expression` every 0.25 s for up to `seconds` until it is `true`.
    func waitUntil(_ seconds: Double, _ expression: String) -> Bool {
        waitFor(seconds) { (eval(expression) as? Bool) == true }
    }
}

/// The live view (issue #22) with real parts: `netnet serve` on two cameras from GStreamer's RTSP
/// server, the page in headless Chromium, and curl on the login and picture endpoints.
@Suite("live view in the browser", .serialized)
struct LiveViewTests {
    let scratch = Scratch()
    let token = "c0ffee5b0e7c1d9a2f48e6b3c7d0a1f2"

    /// The sample clip as H.264 MP4 (what the RTSP server serves), looped to `seconds` or more.
    func sampleClip() throws -> String {
        let clip = scratch.file("vtest.mp4"), long = scratch.file("vtest-long.mp4")
        try shell("ffmpeg -loglevel error -y -i '\(vtestPath)' -t 30 -c:v libx264 -preset ultrafast -g 10 -pix_fmt yuv420p '\(clip)'")
        try shell("ffmpeg -loglevel error -y -stream_loop 9 -i '\(clip)' -c copy '\(long)'")
        return long
    }

    @Test("the page: both cameras' pictures with boxes, nothing from outside 127.0.0.1, a camera going down and back, events growing",
          .enabled(if: hasChromium, "needs Debian's chromium (scripts/install-deps.sh)"),
          .enabled(if: hasFFmpeg && FileManager.default.fileExists(atPath: vtestPath), "needs ffmpeg and samples/vtest.avi"),
          .enabled(if: hasRTSPServer, "needs GStreamer's RTSP server (scripts/install-deps.sh)"))
    func pageInChromium() throws {
        let clip = try sampleClip()
        let ports = ["a": freeTCPPort(), "b": freeTCPPort()]
        func startRTSP(_ id: String) throws -> ServerProcess {
            try ServerProcess("/usr/bin/python3", ["\(repositoryRoot)/scripts/rtsp-server.py", "\(ports[id]!)", "cam", clip],
                              log: scratch.file("rtsp-\(id).log"))
        }
        var servers = ["a": try startRTSP("a"), "b": try startRTSP("b")]
        #expect(waitFor(15) {
            ["a", "b"].allSatisfy { ((try? String(contentsOfFile: scratch.file("rtsp-\($0).log"), encoding: .utf8)) ?? "").contains("ready rtsp://") }
        })
        let tokenFile = scratch.file("token"), scene = scratch.file("a.scene"), config = scratch.file("live.conf")
        try (token + "\n").write(toFile: tokenFile, atomically: false, encoding: .utf8)
        try "[line door]\npoints = 100,300 700,300\n[zone left]\npoints = 0,0 380,0 380,576 0,576\n"
            .write(toFile: scene, atomically: false, encoding: .utf8)
        let stallTimeout = 3.0
        // Camera a: tracked, with a scene (events, the yellow line); camera b: untracked, so its
        // boxes keep their class colour (person: 0xFF3838), which the screenshot is checked for.
        try """
            [global]
            listen = 127.0.0.1:0
            auth_token_file = \(tokenFile)
            live_fps = 5
            live_width = 480
            stall_timeout = \(stallTimeout)
            open_timeout = 3
            backoff_base = 0.25
            backoff_cap = 2
            [stream a]
            url = rtsp://127.0.0.1:\(ports["a"]!)/cam
            scene = \(scene)
            [stream b]
            url = rtsp://127.0.0.1:\(ports["b"]!)/cam
            track = false
            """.write(toFile: config, atomically: false, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        let port = try #require(serve.port(), "\(serve.stderr)")
        let base = "http://127.0.0.1:\(port)"
        let browser = try BrowserDriver(log: scratch.file("browser.log"))

        // The token is asked for once; the session cookie does the rest.
        #expect(browser.send("open \(base)/")["ok"] as? Bool == true)
        #expect(browser.waitUntil(10, "!document.getElementById('login').hidden"), "no login form")
        _ = browser.eval("document.getElementById('token').value = '\(token)'; document.getElementById('login').requestSubmit(); true")
        let tiles = "[...document.querySelectorAll('.tile')]"
        let bothShown = browser.waitUntil(90, "\(tiles).length === 2 && \(tiles).every(t => t.querySelector('img').naturalWidth > 0 && t.querySelector('.state').textContent === 'streaming')")
        #expect(bothShown, "tiles: \(browser.eval("\(tiles).map(t => t.innerText)") ?? "none"); \(serve.stderr.suffix(2000))")
        Thread.sleep(forTimeInterval: 2)   // a few pictures more, and the counts and fps filled in

        let screenshot = scratch.file("live-view.png")
        let rects = browser.eval("\(tiles).map(t => { const r = t.querySelector('img').getBoundingClientRect(); return [t.dataset.stream, Math.round(r.x), Math.round(r.y), Math.round(r.width), Math.round(r.height)]; })") as? [[Any]] ?? []
        #expect(rects.count == 2)
        // Pixels within 100 (RGB distance) of b's box colour (person, 0xFF3838) and of a's scene
        // line (0xFFFF00). On the bare clip, scaled to a tile, five frames gave 29…78 and 22…57
        // such pixels (bricks, signs): more than 120 and 150 means boxes and the line are drawn.
        // Boxes come and go with the people, so up to five screenshots a second apart.
        let wanted = ["a": ("FFFF00", 150), "b": ("FF3838", 120)]
        var best: [String: [String: Any]] = [:]
        for _ in 0..<5 {
            #expect(browser.send("screenshot \(screenshot)")["ok"] as? Bool == true)
            for rect in rects {
                guard let id = rect[0] as? String, let x = rect[1] as? Int, let y = rect[2] as? Int, let w = rect[3] as? Int,
                      let h = rect[4] as? Int, let (colour, _) = wanted[id] else { continue }
                let stats = browser.send("pixels \(screenshot) \(x) \(y) \(w) \(h) \(colour)")
                if (stats["near"] as? Int ?? -1) > (best[id]?["near"] as? Int ?? -1) { best[id] = stats }
            }
            if wanted.allSatisfy({ (best[$0.key]?["near"] as? Int ?? 0) >= $0.value.1 }) { break }
            Thread.sleep(forTimeInterval: 1)
        }
        for (id, (colour, least)) in wanted.sorted(by: { $0.key < $1.key }) {
            let stats = best[id] ?? [:]
            // A picture, not a blank or flat tile: many colours and contrast.
            #expect((stats["distinct"] as? Int ?? 0) > 500 && (stats["stddev"] as? Double ?? 0) > 15, "tile \(id): \(stats)")
            #expect((stats["near"] as? Int ?? 0) >= least, "tile \(id): too few pixels near #\(colour) (\(id == "b" ? "boxes" : "the scene line")): \(stats)")
        }
        if let keep = ProcessInfo.processInfo.environment["NETNET_WRITE_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: screenshot, toPath: keep)
        }

        // Camera b goes away: its tile says so within the stall timeout, and recovers.
        servers["b"]!.kill()
        let stateB = "document.querySelector('.tile[data-stream=\"b\"] .state').textContent"
        let killed = Date()
        #expect(browser.waitUntil(stallTimeout + 4, "\(stateB).startsWith('backing off')"), "b: \(browser.eval(stateB) ?? "?")")
        let noticed = Date().timeIntervalSince(killed)
        let shownBackingOff = browser.eval(stateB) as? String ?? ""
        servers["b"] = try startRTSP("b")
        #expect(browser.waitUntil(40, "\(stateB) === 'streaming'"), "b did not come back: \(browser.eval(stateB) ?? "?")")
        #expect(browser.eval("document.querySelector('.tile[data-stream=\"a\"] .state').textContent") as? String == "streaming")

        // One camera large: its events list grows while we watch.
        _ = browser.eval("location.hash = '#stream/a'; true")
        #expect(browser.waitUntil(10, "!document.getElementById('single').hidden && document.getElementById('large-picture').naturalWidth > 0"))
        let received = "Number(document.getElementById('events').dataset.received)"
        #expect(browser.waitUntil(40, "\(received) >= 1"), "no event in the large view")
        let first = browser.eval(received) as? Int ?? 0
        #expect(browser.waitUntil(40, "\(received) > \(first) && document.querySelectorAll('#events li').length > Math.min(\(first), 99)"),
                "the events list did not grow from \(first)")
        let sample = browser.eval("document.querySelector('#events li').textContent") as? String ?? ""
        #expect(["object_start", "object_end", "cross", "enter", "leave", "loiter"].contains { sample.contains($0) }, "\(sample)")

        // Every request the page made went to the daemon, and none carried the token.
        let urls = browser.send("requests")["urls"] as? [String] ?? []
        #expect(urls.count > 5)
        let elsewhere = urls.filter { URL(string: $0)?.host != "127.0.0.1" }
        #expect(elsewhere.isEmpty, "requests left 127.0.0.1: \(elsewhere)")
        #expect(!urls.contains { $0.contains(token) }, "the token is in a URL")
        #expect(urls.contains { $0.hasSuffix("/api/streams/a/live.mjpeg") } && urls.contains { $0.contains("/api/events") })

        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0, "\(serve.stderr.suffix(2000))")
        print("live view: b shown as '\(shownBackingOff)' \(String(format: "%.1f", noticed)) s after its server was killed (stall_timeout \(stallTimeout) s)")
    }

    /// A served clip with a token; the process and its base URL, once a frame is inferred.
    func startServe() throws -> (ServeProcess, String) {
        let clip = try ServeClips.make(in: scratch, loops: 60)
        let tokenFile = scratch.file("token"), config = scratch.file("login.conf")
        try (token + "\n").write(toFile: tokenFile, atomically: false, encoding: .utf8)
        try """
            [global]
            listen = 127.0.0.1:0
            auth_token_file = \(tokenFile)
            live_fps = 10
            [stream cam]
            url = \(clip)
            """.write(toFile: config, atomically: false, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        let base = "http://127.0.0.1:\(try #require(serve.port(), "\(serve.stderr)"))"
        #expect(waitFor(60) {
            (try? curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(token)", base + "/api/streams/cam/snapshot.jpg"]).body) == "200"
        })
        return (serve, base)
    }

    @Test("login: the right token sets an HttpOnly SameSite=Strict session cookie accepted on /api/*; a wrong one is 401; the page has its CSP",
          .enabled(if: hasFFmpeg && hasCurl))
    func loginAndCookie() throws {
        let (serve, base) = try startServe()
        func head(_ text: String) -> String { text.components(separatedBy: "\r\n\r\n").first?.lowercased() ?? "" }

        let page = try curl(["-i", base + "/"]).body
        #expect(page.hasPrefix("HTTP/1.1 200"), "\(page.prefix(300))")
        #expect(head(page).contains("content-security-policy: default-src 'self'"), "\(head(page))")
        #expect(page.contains("<script src=\"/live.js\"") && !page.contains("<script>"), "no inline script")
        for path in ["/live.js", "/live.css"] {
            let file = try curl(["-i", base + path]).body
            #expect(file.hasPrefix("HTTP/1.1 200") && head(file).contains("content-security-policy"), "\(path): \(file.prefix(300))")
            #expect(!file.contains("http://") && !file.contains("https://"), "\(path) names another origin")
        }

        let wrong = try curl(["-i", "-H", "Content-Type: application/json", "--data", #"{"token": "nope"}"#, base + "/api/login"]).body
        #expect(wrong.hasPrefix("HTTP/1.1 401") && head(wrong).contains("application/problem+json"), "\(wrong)")
        #expect(!head(wrong).contains("set-cookie"))
        let empty = try curl(["-i", "-H", "Content-Type: application/json", "--data", #"{"token": 3}"#, base + "/api/login"]).body
        #expect(empty.hasPrefix("HTTP/1.1 400"), "\(empty)")
        let getLogin = try curl(["-i", base + "/api/login"]).body
        #expect(getLogin.hasPrefix("HTTP/1.1 405") && head(getLogin).contains("allow: post"), "\(getLogin)")

        let right = try curl(["-i", "-H", "Content-Type: application/json", "--data", "{\"token\": \"\(token)\"}", base + "/api/login"]).body
        #expect(right.hasPrefix("HTTP/1.1 204"), "\(right)")
        let cookieLine = head(right).split(separator: "\r\n").first { $0.hasPrefix("set-cookie:") }.map(String.init) ?? ""
        #expect(cookieLine.contains("httponly") && cookieLine.contains("samesite=strict") && cookieLine.contains("path=/"), "\(cookieLine)")
        let session = cookieLine.components(separatedBy: "netnet_session=").last?.split(separator: ";").first.map(String.init) ?? ""
        #expect(session.count == 64 && session.allSatisfy(\.isHexDigit) && session != token, "\(session)")
        let form = try curl(["-i", "--data-urlencode", "token=\(token)", base + "/api/login"]).body
        #expect(form.hasPrefix("HTTP/1.1 204") && head(form).contains("set-cookie: netnet_session="), "\(form)")

        // The cookie stands in for the Bearer header on the API; nothing else does.
        func status(_ arguments: [String]) throws -> String { try curl(["-o", "/dev/null", "-w", "%{http_code}"] + arguments).body }
        #expect(try status(["-b", "netnet_session=\(session)", base + "/api/streams"]) == "200")
        #expect(try status(["-b", "netnet_session=\(session)", base + "/api/streams/cam/counts"]) == "200")
        #expect(try status([base + "/api/streams"]) == "401")
        #expect(try status(["-b", "netnet_session=\(String(repeating: "0", count: 64))", base + "/api/streams"]) == "401")
        #expect(try status(["-b", "netnet_session=\(token)", base + "/api/streams"]) == "401", "the token is not a session")
        #expect(try status(["--max-time", "2", "-o", "/dev/null", base + "/api/streams/cam/live.mjpeg"]) == "401")

        // The picture stream with the cookie: MJPEG parts of JPEG pictures.
        let mjpeg = scratch.file("live.mjpeg")
        _ = try curl(["--max-time", "2", "-b", "netnet_session=\(session)", "-D", scratch.file("mjpeg.head"), "-o", mjpeg,
                      base + "/api/streams/cam/live.mjpeg"])
        let headers = (try? String(contentsOfFile: scratch.file("mjpeg.head"), encoding: .utf8))?.lowercased() ?? ""
        #expect(headers.contains("content-type: multipart/x-mixed-replace; boundary=netnetframe"), "\(headers)")
        let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: mjpeg))) ?? Data())
        let parts = String(decoding: bytes, as: UTF8.self).components(separatedBy: "--netnetframe\r\nContent-Type: image/jpeg\r\n").count - 1
        #expect(parts >= 3, "\(parts) pictures in 2 s at live_fps 10")
        let jpegStart = bytes.indices.dropLast().first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xD8 }
        #expect(jpegStart != nil, "no JPEG in the parts")

        // Viewers are counted while they watch; the metrics know them.
        var metrics = ""
        // Let go at the first picture written after curl closed.
        #expect(waitFor(10) {
            metrics = (try? curl(["-H", "Authorization: Bearer \(token)", base + "/metrics"]).body) ?? ""
            return metrics.contains("netnet_live_viewers{stream=\"cam\"} 0")
        }, "the viewer was not let go")
        #expect(metrics.contains("netnet_live_frames_encoded_total{stream=\"cam\"} ") && metrics.contains("netnet_live_frames_skipped_total{stream=\"cam\"} "))
        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0, "\(serve.stderr)")
    }

    @Test("a viewer that never reads: skipped pictures counted, the others unaffected, the stream never blocks",
          .enabled(if: hasFFmpeg && hasCurl))
    func slowViewer() throws {
        let (serve, base) = try startServe()
        let auth = ["-H", "Authorization: Bearer \(token)"]
        // A socket that connects, asks, and never reads a byte of the answer.
        let sleeper = try ServerProcess("/usr/bin/python3", ["-c", """
            import socket, sys, time
            s = socket.create_connection(('127.0.0.1', \(URL(string: base)!.port!)))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b'GET /api/streams/cam/live.mjpeg HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer \(token)\\r\\n\\r\\n')
            time.sleep(120)
            """], log: scratch.file("sleeper.log"))
        func sample(_ name: String) -> Int {
            let text = (try? curl(auth + [base + "/metrics"]).body) ?? ""
            return text.split(separator: "\n").first { $0.hasPrefix("\(name){stream=\"cam\"} ") }.flatMap { Int($0.split(separator: " ").last!) } ?? -1
        }
        #expect(waitFor(10) { sample("netnet_live_viewers") == 1 })
        // Once the kernel's socket buffers are full (a few MB: tens of seconds at a few pictures a
        // second), every picture is a skip.
        #expect(waitFor(120) { sample("netnet_live_frames_skipped_total") >= 5 }, "skips: \(sample("netnet_live_frames_skipped_total"))")
        // Meanwhile a reading viewer still gets pictures, and inference goes on.
        let inferredBefore = sample("netnet_frames_inferred_total")
        let mjpeg = try curl(auth + ["--max-time", "2", base + "/api/streams/cam/live.mjpeg"]).body
        #expect(mjpeg.components(separatedBy: "--netnetframe").count - 1 >= 3, "the reading viewer got too few pictures")
        #expect(sample("netnet_frames_inferred_total") > inferredBefore)
        let rss = serve.status("VmRSS") ?? 0
        sleeper.kill()
        #expect(waitFor(20) { sample("netnet_live_viewers") == 0 }, "the stuck viewer was not let go once it closed")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0, "\(serve.stderr)")
        print("live view: stuck viewer, RSS \(rss) kB")
    }
}
