import Foundation
import Testing

/// The scene's counts from the command line: `annotate --counts`, and `serve`'s counts endpoint,
/// metrics and state file across restarts (docs/scenes.md, "Counts").
@Suite("scene counts", .serialized)
struct SceneCountsCLITests {
    let scratch = Scratch()

    func makeClipAndScene() throws -> (clip: String, scene: String) {
        let clip = try vtestClip(frames: 120, in: scratch)
        let scene = scratch.file("door.scene")
        try vtestDoorScene.write(toFile: scene, atomically: false, encoding: .utf8)
        return (clip, scene)
    }

    /// Crossings by direction and entries tallied from event lines: what the counts must say.
    func tally(_ lines: [[String: Any]]) -> (in: Int, out: Int, entered: Int) {
        var result = (in: 0, out: 0, entered: 0)
        for line in lines {
            switch (line["kind"] as? String, line["direction"] as? String) {
            case ("cross", "in"): result.in += 1
            case ("cross", "out"): result.out += 1
            case ("enter", _): result.entered += 1
            default: break
            }
        }
        return result
    }

    /// The totals of a counts document (all labels).
    func totals(_ document: [String: Any]) -> (in: Int, out: Int, entered: Int, inside: Int) {
        func sum(_ value: Any?) -> Int { (value as? [String: Int] ?? [:]).values.reduce(0, +) }
        let door = (document["lines"] as? [String: Any])?["door"] as? [String: Any] ?? [:]
        let zone = (document["zones"] as? [String: Any])?["right"] as? [String: Any] ?? [:]
        return (sum(door["in"]), sum(door["out"]), sum(zone["entered"]), sum(zone["objects"]))
    }

    func document(_ path: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    func validateCounts(_ path: String) throws {
        let script = """
            import json, sys
            from jsonschema import Draft202012Validator
            schema = json.load(open(sys.argv[1] + "/docs/schemas/netnet.counts.schema.json"))
            errors = [e.message for e in Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2])))]
            print(errors[:1]); sys.exit(1 if errors else 0)
            """
        #expect((try? capture("python3 -c '\(script)' '\(repositoryRoot)' '\(path)' 2>&1")) != nil, "\(path) does not validate")
    }

    @Test("annotate --counts writes what the events add up to, schema-valid; the summary prints it",
          .enabled(if: hasVtest, "needs samples/vtest.avi (scripts/fetch-vtest.sh)"))
    func annotateCounts() throws {
        let (clip, scene) = try makeClipAndScene()
        let events = scratch.file("events.jsonl"), counts = scratch.file("counts.json")
        let result = try NetnetBinary.run(["annotate", clip, "--events", events, "--scene", scene, "--counts", counts])
        #expect(result.status == 0, "\(result.stderr)")
        let expected = tally(try jsonLines(events))
        let got = totals(try document(counts))
        #expect(expected.in + expected.out > 0 && expected.entered > 0, "the clip should cross the line and enter the zone")
        #expect(got.in == expected.in && got.out == expected.out && got.entered == expected.entered, "\(got) vs \(expected)")
        #expect(got.inside == 0, "the input ended: everybody left")
        #expect(try document(counts)["frames"] as? Int == 120)
        #expect(result.stderr.contains("netnet: line door: \(expected.in) in, \(expected.out) out"), "\(result.stderr)")
        #expect(result.stderr.contains("netnet: zone right: \(expected.entered) entered, 0 inside"), "\(result.stderr)")
        if hasJSONSchema { try validateCounts(counts) }
    }

    @Test("annotate --counts refuses before any work: no scene, a shared path, an unwritable folder")
    func annotateCountsErrors() throws {
        let scene = scratch.file("s.scene")
        try "[line a]\npoints = 0,0 10,10\n".write(toFile: scene, atomically: false, encoding: .utf8)
        let noScene = try NetnetBinary.run(["annotate", "in.mp4", "--json", scratch.file("a.jsonl"), "--counts", scratch.file("c.json")])
        #expect(noScene.status != 0 && noScene.stderr.contains("--counts needs --scene FILE"), "\(noScene.stderr)")
        let same = scratch.file("x.json")
        let shared = try NetnetBinary.run(["annotate", "in.mp4", "--json", same, "--scene", scene, "--counts", same])
        #expect(shared.status != 0 && shared.stderr.contains("--counts names the same file as another output"), "\(shared.stderr)")
        if hasVtest {
            let unwritable = try NetnetBinary.run(["annotate", vtestPath, "--json", scratch.file("b.jsonl"), "--scene", scene,
                                                   "--counts", "/nonexistent-dir/c.json", "--quiet"])
            #expect(unwritable.status == 1 && unwritable.stderr.contains("netnet: cannot write /nonexistent-dir/c.json: No such file or directory"),
                    "\(unwritable.stderr)")
            let written = (try? String(contentsOfFile: scratch.file("b.jsonl"), encoding: .utf8)) ?? ""
            #expect(written.isEmpty, "no frame was processed")
        }
    }

    /// One `serve` run over the clip until it has played once; returns its event lines of that
    /// play, the counts the API gave after it and the metrics text. `stop` ends the daemon.
    func servePlay(_ clip: String, scene: String, state: String, run: Int, stop: Int32,
                   before: (ServeProcess) -> Void = { _ in }) throws -> (events: [[String: Any]], api: [String: Any], stderr: String) {
        let lines = scratch.file("run\(run).jsonl")
        let config = scratch.file("run\(run).conf")
        try """
            [global]
            listen = 127.0.0.1:0
            json_lines = \(lines)
            state_directory = \(state)
            backoff_base = 30
            backoff_cap = 30
            [stream clip]
            url = \(clip)
            scene = \(scene)
            """.write(toFile: config, atomically: false, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch, tag: "serve-\(run)")
        let port = try #require(serve.port(), "\(serve.stderr)")
        before(serve)
        let ended = waitFor(120) { ((try? String(contentsOfFile: lines, encoding: .utf8)) ?? "").contains(#""reason": "ended""#) }
        #expect(ended, "the clip never ended: \(serve.stderr)")
        let api = try curl(["-sf", "http://127.0.0.1:\(port)/api/streams/clip/counts"])
        let metrics = try curl(["-sf", "http://127.0.0.1:\(port)/metrics"])
        let missing = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/api/streams/nope/counts"])
        #expect(missing.body == "404")
        let apiDocument = try #require(JSONSerialization.jsonObject(with: Data(api.body.utf8)) as? [String: Any], "\(api.body)")
        let inward = totals(apiDocument).in
        #expect(metrics.body.contains(#"netnet_line_crossings_total{stream="clip",line="door",direction="in",label="person"} \#(inward)"#)
                || inward == 0, "\(metrics.body)")
        if stop == SIGKILL {
            // The counts thread writes what changed once a second, but a loaded machine (CI runs
            // the suites side by side) can hold it, or its fsync, for longer: kill only once the
            // file says what the API says, so what is checked is that the kill loses nothing.
            let file = state + "/counts/clip.json"
            let written = waitFor(30) {
                guard let data = try? Data(contentsOf: URL(fileURLWithPath: file)),
                      let saved = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
                return totals(saved) == totals(apiDocument)
            }
            #expect(written, "the counts file never caught up with the API: \((try? String(contentsOfFile: file, encoding: .utf8)) ?? "none") vs \(api.body)")
        }
        serve.signal(stop)
        let status = serve.waitExit(20)
        #expect(stop == SIGKILL ? status != nil : status == 0, "\(serve.stderr)")
        let all = try jsonLines(lines)
        return (Array(all.prefix { !($0["schema"] as? String == "netnet.status/1" && $0["reason"] as? String == "ended") }), apiDocument, serve.stderr)
    }

    @Test("serve keeps the counts across a SIGTERM and a SIGKILL restart; a corrupt counts file is renamed with a warning",
          .enabled(if: hasVtest && hasCurl, "needs samples/vtest.avi (scripts/fetch-vtest.sh) and curl"))
    func serveCountsSurviveRestarts() throws {
        let (clip, scene) = try makeClipAndScene()
        let state = scratch.file("state")
        let file = state + "/counts/clip.json"

        // Run 1, SIGTERM: the file holds the API's figures and nobody inside.
        let first = try servePlay(clip, scene: scene, state: state, run: 1, stop: SIGTERM)
        let one = tally(first.events)
        #expect(totals(first.api).in == one.in && totals(first.api).out == one.out && totals(first.api).entered == one.entered,
                "\(first.api) vs \(one)")
        let afterTerm = totals(try document(file))
        #expect(afterTerm.in == one.in && afterTerm.out == one.out && afterTerm.entered == one.entered && afterTerm.inside == 0)
        if hasJSONSchema { try validateCounts(file) }

        // Run 2, SIGKILL after a quiet second: it went on from run 1, and the file lost nothing.
        let second = try servePlay(clip, scene: scene, state: state, run: 2, stop: SIGKILL)
        let two = tally(second.events)
        #expect(totals(second.api).in == one.in + two.in && totals(second.api).out == one.out + two.out
                && totals(second.api).entered == one.entered + two.entered, "\(second.api) vs \(one) + \(two)")
        let afterKill = totals(try document(file))
        #expect(afterKill.in == one.in + two.in && afterKill.out == one.out + two.out && afterKill.entered == one.entered + two.entered,
                "\(afterKill) vs \(one) + \(two)")

        // Run 3 after the file was torn: a warning, the file set aside, counting from zero.
        try #"{"schema": "netnet.counts/1", "stream": "clip", "lines": {"do"#.write(toFile: file, atomically: false, encoding: .utf8)
        let third = try servePlay(clip, scene: scene, state: state, run: 3, stop: SIGTERM)
        #expect(third.stderr.contains("stream clip: counts file \(file): not JSON (torn or overwritten?); renamed to \(file).corrupt-"),
                "\(third.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/counts").contains { $0.hasPrefix("clip.json.corrupt-") })
        let three = tally(third.events)
        #expect(totals(third.api).in == three.in && totals(third.api).out == three.out, "\(third.api) vs \(three)")
        // The sums above mean something only if something was counted. Under heavy load serve's
        // `latest` policy drops frames and a run may see no crossing; all three together do.
        let counted = [one, two, three].map { $0.in + $0.out + $0.entered }.reduce(0, +)
        #expect(counted > 0, "the clip should cross the line or enter the zone in at least one of three plays")
    }
}
