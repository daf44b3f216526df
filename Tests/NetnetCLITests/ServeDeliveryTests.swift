import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `netnet serve` with `[sink NAME]` sections (docs/delivery.md): the records wait in the spool
/// while the broker is away, arrive when it is back, survive a restart, and show in `/metrics`.
@Suite("netnet serve durable delivery", .serialized, .enabled(if: hasMosquitto && hasFFmpeg && hasCurl && hasVtest))
struct ServeDeliveryTests {
    let scratch = Scratch()

    func config(clip: String, state: String, lines: String, brokerPort: Int) -> String {
        """
        [global]
        listen = 127.0.0.1:0
        state_directory = \(state)
        json_lines = \(lines)
        spool_fsync = 0.1
        [stream clip]
        url = \(clip)
        [sink broker]
        type = mqtt
        url = mqtt://127.0.0.1:\(brokerPort)
        topic = site1/{stream}/{schema}
        client_id = serve-test
        lines = event, status
        """
    }

    /// The `(schema, seq)` of the `clip` stream's records in a JSON-lines file, by kind.
    func records(_ path: String, schema: String) -> [Int] {
        seqs(jsonObjects(inFile: path), schema: schema, stream: "clip")
    }

    func metric(_ text: String, _ name: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test("broker down at start, back later, then a restart: every event and status line arrives once or more, seqs never repeat")
    func spoolAcrossOutageAndRestart() throws {
        // People walk through vtest: the file plays, ends and plays again, with object events.
        let clip = try vtestClip(frames: 60, in: scratch)
        let state = scratch.file("state")
        let broker = try Broker(scratch: scratch, start: false)
        // netnet reaches the broker only through the proxy, so the subscriber's persistent
        // session exists before netnet can publish anything.
        let proxy = try CuttableProxy(target: broker.port)
        proxy.cut()
        let first = scratch.file("first.jsonl")
        try config(clip: clip, state: state, lines: first, brokerPort: proxy.port).write(toFile: scratch.file("first.conf"), atomically: true, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", scratch.file("first.conf")], scratch: scratch, tag: "first")
        let port = try #require(serve.port(), "\(serve.stderr)")
        let metricsURL = "http://127.0.0.1:\(port)/metrics"
        // The records wait: the sink is not connected, the spool holds them.
        #expect(waitFor(60) { metric((try? curl(["-sf", metricsURL]).body) ?? "", #"netnet_spool_pending{sink="broker"}"#) ?? 0 > 5 }, "\(serve.stderr)")
        let waiting = try curl(["-sf", metricsURL]).body
        #expect(metric(waiting, #"netnet_sink_connected{sink="broker"}"#) == 0, "\(waiting)")
        #expect(serve.stderr.contains("sink broker: cannot connect"), "\(serve.stderr)")

        try broker.start()
        let subscriber = try Subscriber(scratch: scratch, port: broker.port, topic: "site1/#", clientID: "serve-sub")
        try proxy.restore()
        #expect(waitFor(60) { metric((try? curl(["-sf", metricsURL]).body) ?? "", #"netnet_sink_delivered_total{sink="broker"}"#) ?? 0 > 20 })
        let flowing = try curl(["-sf", metricsURL]).body
        #expect(metric(flowing, #"netnet_sink_connected{sink="broker"}"#) == 1, "\(flowing)")
        for family in ["netnet_spool_bytes gauge", "netnet_spool_records gauge", "netnet_spool_oldest_record_age_seconds gauge",
                       "netnet_spool_dropped_total counter", "netnet_sink_in_flight gauge", "netnet_sink_redelivered_total counter"] {
            #expect(flowing.contains("# TYPE \(family)\n"), "\(family)")
        }
        if hasPromtool {
            let check = try promtoolCheck(metricsURL)
            #expect(check.passed, "promtool: \(check.said)")
        }
        serve.signal(SIGTERM)
        #expect(serve.waitExit(30) == 0, "\(serve.stderr)")
        let firstStatus = records(first, schema: "netnet.status/1"), firstEvents = records(first, schema: "netnet.event/1")
        let firstFrames = records(first, schema: "netnet.frame/1")
        #expect(firstStatus.contains(0), "the stream's first line, seq 0, is its first status")

        // Restarted on the same state directory (spool and seq counter): what the first run had
        // not delivered goes out now, and numbering goes on.
        let second = scratch.file("second.jsonl")
        try config(clip: clip, state: state, lines: second, brokerPort: broker.port).write(toFile: scratch.file("second.conf"), atomically: true, encoding: .utf8)
        let again = try ServeProcess(arguments: ["serve", "--config", scratch.file("second.conf")], scratch: scratch, tag: "second")
        _ = try #require(again.port(), "\(again.stderr)")
        let wanted = Set(firstStatus + firstEvents)
        let arrivedAll = waitFor(60) {
            Set(subscriber.records.compactMap { $0.object["seq"] as? Int }).isSuperset(of: wanted) && !records(second, schema: "netnet.status/1").isEmpty
        }
        again.signal(SIGTERM)
        #expect(again.waitExit(30) == 0, "\(again.stderr)")
        let received = subscriber.records
        let receivedSeqs = Set(received.compactMap { $0.object["seq"] as? Int })
        #expect(arrivedAll, "missing: \(wanted.subtracting(receivedSeqs).sorted())")
        let secondAll = Set(records(second, schema: "netnet.status/1") + records(second, schema: "netnet.event/1") + records(second, schema: "netnet.frame/1"))
        #expect(secondAll.isDisjoint(with: Set(firstStatus + firstEvents + firstFrames)), "no seq is used twice across the restart")
        #expect(secondAll.min() ?? 0 > (firstStatus + firstEvents + firstFrames).max() ?? 0)
        // lines = event, status: no frame went to the broker; topics follow the template.
        #expect(!received.isEmpty && received.allSatisfy { $0.topic == "site1/clip/status" || $0.topic == "site1/clip/event" },
                "\(Set(received.map(\.topic)))")
        #expect(received.contains { $0.topic == "site1/clip/event" }, "object events went out")
    }

    @Test("serve with a type = http sink whose endpoint fails the first requests: status and event lines arrive in seq order")
    func webhookSection() throws {
        let clip = try vtestClip(frames: 60, in: scratch)
        let receiver = try WebhookReceiver(scratch: scratch, arguments: ["--fail-first", "2"])
        let lines = scratch.file("hook.jsonl")
        try """
            [global]
            listen = 127.0.0.1:0
            spool_dir = \(scratch.file("hook-spool"))
            json_lines = \(lines)
            [stream clip]
            url = \(clip)
            [sink hook]
            type = http
            url = http://127.0.0.1:\(receiver.port)/netnet
            lines = status, event
            """.write(toFile: scratch.file("hook.conf"), atomically: true, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", scratch.file("hook.conf")], scratch: scratch, tag: "hook")
        let port = try #require(serve.port(), "\(serve.stderr)")
        #expect(waitFor(60) { receiver.records.count >= 10 && receiver.records.contains { $0["schema"] as? String == "netnet.event/1" } },
                "\(receiver.records.count) records; \(serve.stderr)")
        let metrics = try curl(["-sf", "http://127.0.0.1:\(port)/metrics"]).body
        #expect(metric(metrics, #"netnet_sink_delivered_total{sink="hook"}"#) ?? 0 >= 10, "\(metrics)")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(30) == 0, "\(serve.stderr)")
        #expect(Array(receiver.answers.prefix(2)) == [503, 503], "\(receiver.answers)")
        let received = receiver.records.filter { $0["stream"] as? String == "clip" }.compactMap { $0["seq"] as? Int }
        // A batch is resent whole after a failure: the first time each seq arrives, seqs increase.
        var seen = Set<Int>(), firsts: [Int] = []
        for seq in received where seen.insert(seq).inserted { firsts.append(seq) }
        #expect(firsts == firsts.sorted(), "in seq order")
        let written = Set(records(lines, schema: "netnet.status/1") + records(lines, schema: "netnet.event/1"))
        #expect(seen.isSubset(of: written) && seen.contains(0), "only status and event lines, from the first")
        #expect(receiver.records.allSatisfy { $0["schema"] as? String != "netnet.frame/1" })
    }

    @Test("--check-config checks [sink] sections and where their spool goes; an uncreatable spool refuses to start")
    func checkConfigSinks() throws {
        let clip = try ServeClips.make(in: scratch)
        func check(_ text: String) throws -> (status: Int32, stdout: String, stderr: String) {
            let path = scratch.file("check.conf")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try NetnetBinary.run(["serve", "--check-config", path])
            return (result.status, result.stdout, result.stderr)
        }
        let path = scratch.file("check.conf")
        let ok = try check("[global]\nspool_dir = \(scratch.file("spool"))\n[stream clip]\nurl = \(clip)\n[sink b]\ntype = mqtt\nurl = mqtt://127.0.0.1:1\n")
        #expect(ok.status == 0 && ok.stdout.contains("sinks b (mqtt), spool \(scratch.file("spool"))"), "\(ok)")
        let noSpool = try check("[stream clip]\nurl = \(clip)\n[sink b]\ntype = mqtt\nurl = mqtt://127.0.0.1:1\n")
        #expect(noSpool.status != 0 && noSpool.stderr.contains("\(path):3: [sink b] needs a spool on disk: set spool_dir or state_directory"), "\(noSpool)")
        let noType = try check("[global]\nspool_dir = /tmp/x\n[stream clip]\nurl = \(clip)\n[sink b]\nurl = mqtt://h\n")
        #expect(noType.status != 0 && noType.stderr.contains("\(path):5: [sink b] has no type"), "\(noType)")
        // A spool that cannot be made: serve refuses to start, naming it.
        let blocker = scratch.file("not-a-folder")
        try "x".write(toFile: blocker, atomically: true, encoding: .utf8)
        try "[global]\nlisten = 127.0.0.1:0\nspool_dir = \(blocker)/spool\n[stream clip]\nurl = \(clip)\n[sink b]\ntype = mqtt\nurl = mqtt://127.0.0.1:1\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let refused = try NetnetBinary.run(["serve", "--config", path])
        #expect(refused.status == 1 && refused.stderr.contains("spool_dir \(blocker)/spool: cannot create it"), "\(refused.stderr)")
    }
}
