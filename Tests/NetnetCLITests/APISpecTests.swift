import Foundation
import Testing

let schemathesisPath = "\(repositoryRoot)/scripts/.venv-api/bin/schemathesis"
let hasSchemathesis = FileManager.default.isExecutableFile(atPath: schemathesisPath)

/// The API as docs/openapi.yaml specifies it, checked by a fuzzer and by hand where it streams.
@Suite("the specified API", .serialized)
struct APISpecTests {
    let scratch = Scratch()

    /// A running serve with a token, a scene and a frame inferred; the token and base URL.
    func startServe(heartbeat: Int = 15) throws -> (ServeProcess, String, String) {
        let clip = try ServeClips.make(in: scratch, loops: 60)
        let token = "5b0e7c1d9a2f48e6b3c7d0a1f2e3d4c5"
        let tokenFile = scratch.file("token"), scene = scratch.file("s.scene"), config = scratch.file("api.conf")
        try (token + "\n").write(toFile: tokenFile, atomically: false, encoding: .utf8)
        try "[line door]\npoints = 10,10 100,100\n[zone all]\npoints = 0,0 100,0 100,100\n".write(toFile: scene, atomically: false, encoding: .utf8)
        try """
            [global]
            listen = 127.0.0.1:0
            auth_token_file = \(tokenFile)
            sse_heartbeat = \(heartbeat)
            [stream cam]
            url = \(clip)
            scene = \(scene)
            """.write(toFile: config, atomically: false, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        let port = try #require(serve.port(), "\(serve.stderr)")
        let base = "http://127.0.0.1:\(port)"
        let inferred = waitFor(60) {
            (try? curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(token)",
                        base + "/api/streams/cam/snapshot.jpg"]).body) == "200"
        }
        #expect(inferred, "no frame inferred: \(serve.stderr)")
        return (serve, token, base)
    }

    @Test("schemathesis over docs/openapi.yaml: no server error, every response as specified, auth enforced",
          .enabled(if: hasSchemathesis && hasFFmpeg && hasCurl, "needs scripts/.venv-api (scripts/install-deps.sh), ffmpeg and curl"))
    func fuzzedAgainstTheSpec() throws {
        let (serve, token, base) = try startServe()
        // The event and picture streams never end, so they are left to the test below and to
        // LiveViewTests; a fixed seed and a case budget keep the run short and repeatable.
        let command = "'\(schemathesisPath)' run '\(repositoryRoot)/docs/openapi.yaml' --url '\(base)' "
            + "-H 'Authorization: Bearer \(token)' --checks all --max-examples 40 --seed 1 --exclude-path /api/events "
            + "--exclude-path '/api/streams/{id}/live.mjpeg' "
            + "--max-time 90 --request-timeout 10 --generation-database none --no-color 2>&1"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output.suffix(6000))")
        #expect(output.contains("passed") || output.contains("PASSED"), "\(output.suffix(2000))")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0, "\(serve.stderr)")
    }

    @Test("SSE: a heartbeat comment every sse_heartbeat seconds; events as specified; an unknown stream is a problem document",
          .enabled(if: hasFFmpeg && hasCurl))
    func eventStream() throws {
        let (serve, token, base) = try startServe(heartbeat: 1)
        // Until two heartbeats and a frame have come (a loaded debug daemon may take seconds a
        // frame); two heartbeats 1 s apart cannot come in under 2 s.
        func heartbeats(_ text: String) -> Int { text.components(separatedBy: "\n:\n\n").count - 1 }
        let started = Date()
        let text = try curlStream(["-H", "Authorization: Bearer \(token)", base + "/api/events?stream=cam"], seconds: 60) {
            heartbeats($0) >= 2 && sseEvents($0).contains { $0.event == "frame" }
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(text.hasPrefix(": netnet events\n\n"), "\(text.prefix(200))")
        #expect(heartbeats(text) >= 2 && elapsed >= 1.9, "two heartbeats after \(elapsed) s: \(text.suffix(500))")
        #expect(sseEvents(text).contains { $0.event == "frame" })
        let missing = try curl(["-s", "-i", "-H", "Authorization: Bearer \(token)", base + "/api/events?stream=nope"]).body
        #expect(missing.hasPrefix("HTTP/1.1 404") && missing.lowercased().contains("content-type: application/problem+json"), "\(missing)")
        #expect(missing.contains(#""detail": "no stream 'nope'""#), "\(missing)")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0, "\(serve.stderr)")
    }

    /// The `(id, event, seq)` of each SSE block with data, in order.
    func sseBlocks(_ text: String) -> [(id: String?, event: String, object: [String: Any])] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var id: String?, name = "message", data = ""
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data += line.dropFirst(6) }
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { return nil }
            return (id, name, object)
        }
    }

    @Test("SSE: every event's id is STREAM:SEQ; Last-Event-ID resumes with nothing lost or repeated; an id not held gets a missed event",
          .enabled(if: hasFFmpeg && hasCurl))
    func eventStreamResumes() throws {
        let (serve, token, base) = try startServe()
        let auth = "Authorization: Bearer \(token)"
        // Counted, not timed: a loaded machine running a debug build may infer a frame a second.
        let first = sseBlocks(try curlStream(["-H", auth, base + "/api/events?stream=cam"], seconds: 60) { sseBlocks($0).count >= 6 })
        try #require(first.count >= 6, "\(first.count) events in 60 s")
        for block in first {
            #expect(block.id == "cam:\(block.object["seq"] as? Int ?? -1)", "\(block.id ?? "no id") for \(block.object)")
        }
        // Away for a second, then back with the last id: what was published meanwhile comes first.
        Thread.sleep(forTimeInterval: 1)
        let lastID = first.last!.id!
        // Until what was held has come and two live events after it.
        func held(_ text: String) -> Int? {
            guard let range = text.range(of: ": resumed after \(lastID), ") else { return nil }
            return Int(text[range.upperBound...].prefix { $0.isNumber })
        }
        let secondText = try curlStream(["-H", auth, "-H", "Last-Event-ID: \(lastID)", base + "/api/events?stream=cam"], seconds: 60) { text in
            held(text).map { count in sseBlocks(text).count >= count + 2 } ?? false
        }
        let heldCount = try #require(held(secondText), "\(secondText.prefix(300))")
        let second = sseBlocks(secondText)
        let firstSeqs = first.map { $0.object["seq"] as! Int }, secondSeqs = second.map { $0.object["seq"] as! Int }
        #expect(Set(firstSeqs).isDisjoint(with: secondSeqs), "nothing repeated")
        #expect(Set(secondSeqs).count == secondSeqs.count, "no event twice (held and live)")
        // The stream's lines (frame, event, status) share one counter: together, no seq is missing.
        let all = (firstSeqs + secondSeqs).sorted()
        #expect(all == Array(all.first!...all.last!), "a gap: \(Set(all.first!...all.last!).subtracting(all).sorted().prefix(20))")
        #expect(secondSeqs.count >= heldCount + 2, "what was held (\(heldCount)) was replayed and live events followed")

        // Ids not held: a missed event says where what is held begins.
        for id in ["cam:999999999", "other:5"] {
            let text = try curl(["-s", "-N", "-m", "1", "-H", auth, "-H", "Last-Event-ID: \(id)", base + "/api/events?stream=cam"]).body
            let missed = sseBlocks(text).first
            #expect(missed?.event == "missed" && missed?.id == nil, "\(text.prefix(300))")
            #expect(missed?.object["last_event_id"] as? String == id)
            #expect((missed?.object["oldest_held"] as? String)?.hasPrefix("cam:") == true, "\(String(describing: missed?.object))")
        }
        let bad = try curl(["-s", "-i", "-H", auth, "-H", "Last-Event-ID: ../etc:1", base + "/api/events"]).body
        #expect(bad.hasPrefix("HTTP/1.1 400") && bad.lowercased().contains("content-type: application/problem+json"), "\(bad)")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0, "\(serve.stderr)")
    }
}
