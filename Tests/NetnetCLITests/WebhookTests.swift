import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

let hasPython3 = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")

/// scripts/webhook-receiver.py on 127.0.0.1 (any free port), the bodies it accepts appended to a
/// file in arrival order, its own log (one line per request) in another.
final class WebhookReceiver {
    let port: Int
    let output: String
    let log: String
    private let process = Process()

    init(scratch: Scratch, tag: String = "receiver", arguments: [String] = []) throws {
        output = scratch.file("\(tag).jsonl")
        log = scratch.file("\(tag).log")
        let stdout = scratch.file("\(tag).stdout")
        for path in [output, log, stdout] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["\(repositoryRoot)/scripts/webhook-receiver.py", "--port", "0", "--out", output] + arguments
        process.standardOutput = FileHandle(forWritingAtPath: stdout)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        var found: Int?
        _ = waitFor(10) {
            let text = (try? String(contentsOfFile: stdout, encoding: .utf8)) ?? ""
            guard let line = text.split(separator: "\n").first, line.hasPrefix("listening ") else { return false }
            found = Int(line.dropFirst("listening ".count))
            return true
        }
        guard let found else { throw CLIError("webhook-receiver.py did not say where it listens") }
        port = found
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    /// The records accepted so far, in arrival order.
    var records: [[String: Any]] { jsonObjects(inFile: output) }

    /// The statuses it answered POSTs with, in order.
    var answers: [Int] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard line.contains("\"POST ") else { return nil }
            return line.split(separator: " ").dropLast().last.flatMap { Int($0) }
        }
    }
}

/// Issue #20's webhook done-when: `netnet annotate --sink http://…` against a local receiver that
/// fails the first requests; every record arrives, in order per stream.
@Suite("HTTP webhook sink", .serialized, .enabled(if: hasPython3 && hasFFmpeg))
struct WebhookTests {
    func annotate(_ scratch: Scratch, clip: String, sink: String, json: String, spool: String? = nil, extra: [String] = [],
                  tag: String) throws -> ServeProcess {
        try ServeProcess(arguments: ["annotate", clip, "--json", json, "--events", json, "--stream-id", "cam",
                                     "--sink", sink, "--spool", spool ?? scratch.file("spool-\(tag)")] + extra,
                         scratch: scratch, tag: tag)
    }

    /// Whether `seqs` (arrival order) only ever repeats what already arrived and otherwise rises:
    /// after removing the repeats of seqs already seen, strictly increasing.
    func inOrder(_ seqs: [Int]) -> Bool {
        var seen = Set<Int>()
        var last = Int.min
        for seq in seqs where seen.insert(seq).inserted {
            if seq <= last { return false }
            last = seq
        }
        return true
    }

    /// The number after `label` in the summary line (`redelivered 12`), nil if absent.
    func figure(_ label: String, in stderr: String) -> Int? {
        guard let line = stderr.split(separator: "\n").last(where: { $0.hasPrefix("netnet: sinks: ") }),
              let range = line.range(of: "\(label) [0-9]+", options: .regularExpression) else { return nil }
        return Int(line[range].dropFirst(label.count + 1))
    }

    @Test("the first 3 POSTs answered 503: every frame and event seq arrives, in order, nothing left spooled",
          .enabled(if: FileManager.default.fileExists(atPath: vtestPath)))
    func failFirstRequests() throws {
        let scratch = Scratch()
        let receiver = try WebhookReceiver(scratch: scratch, arguments: ["--fail-first", "3"])
        // 30 s of vtest.avi: people, so events too, and a run long enough for many batches.
        let clip = scratch.file("vtest-30s.avi")
        try shell("ffmpeg -loglevel error -y -i '\(vtestPath)' -t 30 -c copy '\(clip)'")
        let json = scratch.file("out.jsonl")
        let run = try annotate(scratch, clip: clip, sink: "http://127.0.0.1:\(receiver.port)/hook", json: json, tag: "fail3")
        #expect(run.waitExit(180) == 0, "\(run.stderr)")
        #expect(run.stderr.contains("nothing left spooled"), "\(run.stderr)")
        #expect(run.stderr.contains("HTTP 503"), "the failure is named: \(run.stderr)")
        let written = jsonObjects(inFile: json)
        let frames = Set(seqs(written, schema: "netnet.frame/1", stream: "cam"))
        let events = Set(seqs(written, schema: "netnet.event/1", stream: "cam"))
        #expect(frames.count == 300, "30 s at 10 fps")
        #expect(!events.isEmpty, "the clip has tracks, so events")
        let received = receiver.records.filter { $0["stream"] as? String == "cam" }.compactMap { $0["seq"] as? Int }
        #expect(frames.isSubset(of: Set(received)), "every frame: missing \(frames.subtracting(received).sorted())")
        #expect(events.isSubset(of: Set(received)), "every event: missing \(events.subtracting(received).sorted())")
        #expect(inOrder(received), "in order per stream: \(received)")
        let answers = receiver.answers
        #expect(answers.prefix(3) == [503, 503, 503] && answers.dropFirst(3).allSatisfy { $0 == 204 }, "\(answers)")
        #expect(answers.count > 6, "several accepted batches, so the order is checked across batches: \(answers)")
        // Every failed POST carried records (a batch is POSTed only when it has some), all sent again.
        #expect((figure("redelivered", in: run.stderr) ?? 0) >= 3, "\(run.stderr)")
        #expect(run.stderr.contains("sinks: http delivered"), "the sink is named http: \(run.stderr)")
        print("webhook fail-first 3: \(received.count) records, \(received.count - Set(received).count) repeats, "
              + "\(answers.count) POSTs; \(run.stderr.split(separator: "\n").last ?? "")")
    }

    @Test("a 400 answer: that batch is refused with one warning, the run ends, later records arrive")
    func badRequestPassedOver() throws {
        let scratch = Scratch()
        let receiver = try WebhookReceiver(scratch: scratch, arguments: ["--fail-first", "1", "--status", "400"])
        let clip = try ServeClips.make(in: scratch)
        let json = scratch.file("out.jsonl")
        let run = try annotate(scratch, clip: clip, sink: "http://127.0.0.1:\(receiver.port)/hook", json: json, tag: "bad")
        #expect(run.waitExit(180) == 0, "\(run.stderr)")
        #expect(run.stderr.contains("nothing left spooled"), "\(run.stderr)")
        let warnings = run.stderr.split(separator: "\n").filter { $0.contains("refused for good") }
        #expect(warnings.count == 1, "one warning for the refused batch: \(run.stderr)")
        let warning = try #require(warnings.first)
        #expect(warning.contains("HTTP 400") && warning.contains("sink http"), "\(warning)")
        let refused = try #require(warning.range(of: "[0-9]+ records refused", options: .regularExpression)
            .flatMap { Int(warning[$0].prefix { $0.isNumber }) })
        #expect(refused > 0 && figure("refused", in: run.stderr) == refused, "\(run.stderr)")
        #expect(receiver.answers.first == 400 && receiver.answers.dropFirst().allSatisfy { $0 == 204 }, "\(receiver.answers)")
        let received = receiver.records.filter { $0["stream"] as? String == "cam" }.compactMap { $0["seq"] as? Int }
        let written = jsonObjects(inFile: json).filter { $0["stream"] as? String == "cam" }.compactMap { $0["seq"] as? Int }
        let missing = Set(written).subtracting(received)
        // The refused batch was the first: what is missing comes before everything that arrived.
        #expect(!received.isEmpty && written.max().map(Set(received).contains) == true, "later records arrive")
        #expect(missing.allSatisfy { $0 < received.min()! } && missing.count <= refused, "missing \(missing.sorted())")
        #expect(inOrder(received) && received.count == Set(received).count, "\(received)")
    }

    @Test("basic auth from password_file; a wrong password is retried (401), never printed, its records go out on the next run")
    func basicAuth() throws {
        let scratch = Scratch()
        let receiver = try WebhookReceiver(scratch: scratch, arguments: ["--auth", "bot:open-sesame-42"])
        let clip = try ServeClips.make(in: scratch)
        let good = scratch.file("good.pw"), bad = scratch.file("bad.pw")
        try "open-sesame-42\n".write(toFile: good, atomically: true, encoding: .utf8)
        try "wrong-sesame-17\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let url = "http://bot@127.0.0.1:\(receiver.port)/hook"
        let spool = scratch.file("spool")

        let refused = try annotate(scratch, clip: clip, sink: "\(url)?password_file=\(bad)", json: scratch.file("bad.jsonl"),
                                   spool: spool, extra: ["--drain-timeout", "3"], tag: "badpw")
        #expect(refused.waitExit(120) == 0, "\(refused.stderr)")
        #expect(refused.stderr.contains("HTTP 401"), "\(refused.stderr)")
        #expect(refused.stderr.contains("records still spooled"), "401 keeps the records: \(refused.stderr)")
        #expect(!refused.stderr.contains("wrong-sesame-17"), "the password never appears")
        #expect(receiver.records.isEmpty)

        let json = scratch.file("good.jsonl")
        let run = try annotate(scratch, clip: clip, sink: "\(url)?password_file=\(good)", json: json, spool: spool, tag: "goodpw")
        #expect(run.waitExit(120) == 0, "\(run.stderr)")
        #expect(run.stderr.contains("nothing left spooled"), "\(run.stderr)")
        #expect(!run.stderr.contains("open-sesame-42"))
        let received = Set(receiver.records.compactMap { $0["seq"] as? Int })
        let first = Set(jsonObjects(inFile: scratch.file("bad.jsonl")).compactMap { $0["seq"] as? Int })
        let written = first.union(jsonObjects(inFile: json).compactMap { $0["seq"] as? Int })
        #expect(!first.isEmpty && written.isSubset(of: received), "both runs' records: missing \(written.subtracting(received).sorted())")
        #expect(inOrder(receiver.records.compactMap { $0["seq"] as? Int }))
    }

    @Test("https with a private CA: refused (and retried) without ca_file, delivered with it",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    func httpsWithPrivateCA() throws {
        let scratch = Scratch()
        let cert = scratch.file("cert.pem"), key = scratch.file("key.pem")
        try shell("openssl req -x509 -newkey rsa:2048 -nodes -keyout '\(key)' -out '\(cert)' -days 2 -subj /CN=127.0.0.1 "
                  + "-addext subjectAltName=IP:127.0.0.1 2>/dev/null")
        let receiver = try WebhookReceiver(scratch: scratch, arguments: ["--cert", cert, "--key", key])
        let clip = try ServeClips.make(in: scratch)
        let spool = scratch.file("spool")
        let url = "https://127.0.0.1:\(receiver.port)/hook"
        let untrusted = try annotate(scratch, clip: clip, sink: url, json: scratch.file("untrusted.jsonl"), spool: spool,
                                     extra: ["--drain-timeout", "2"], tag: "untrusted")
        #expect(untrusted.waitExit(120) == 0, "\(untrusted.stderr)")
        #expect(untrusted.stderr.contains("CERTIFICATE_VERIFY_FAILED") && untrusted.stderr.contains("records still spooled"),
                "\(untrusted.stderr)")
        #expect(receiver.records.isEmpty)
        let json = scratch.file("trusted.jsonl")
        let trusted = try annotate(scratch, clip: clip, sink: "\(url)?ca_file=\(cert)", json: json, spool: spool, tag: "trusted")
        #expect(trusted.waitExit(120) == 0, "\(trusted.stderr)")
        #expect(trusted.stderr.contains("nothing left spooled"), "\(trusted.stderr)")
        let written = Set(jsonObjects(inFile: scratch.file("untrusted.jsonl")).compactMap { $0["seq"] as? Int })
            .union(jsonObjects(inFile: json).compactMap { $0["seq"] as? Int })
        let received = Set(receiver.records.compactMap { $0["seq"] as? Int })
        #expect(written.count == 40 && written.isSubset(of: received), "missing \(written.subtracting(received).sorted())")
    }
}
