import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue #20's done-when tests: `netnet annotate --sink mqtt://…` against a real mosquitto on
/// loopback, with the broker cut, the process killed, the spool capped and the spool damaged.
@Suite("durable delivery over MQTT", .serialized, .enabled(if: hasMosquitto))
struct DeliveryTests {
    /// `annotate vtest.avi` with the sink and spool given, the records also in `json` (frames and
    /// events in one file); returns the running process.
    func annotate(_ scratch: Scratch, port: Int, spool: String, json: String, input: String = vtestPath, stream: String = "cam",
                  extra: [String] = [], tag: String) throws -> ServeProcess {
        try ServeProcess(arguments: ["annotate", input, "--json", json, "--events", json, "--stream-id", stream,
                                     "--sink", "mqtt://127.0.0.1:\(port)/netnet", "--spool", spool] + extra,
                         scratch: scratch, tag: tag)
    }

    @Test("broker cut mid-run: a QoS 1 persistent subscriber gets all 795 frame seqs, no gaps")
    func brokerCut() throws {
        let scratch = Scratch()
        let broker = try Broker(scratch: scratch)
        let proxy = try CuttableProxy(target: broker.port)
        let subscriber = try Subscriber(scratch: scratch, port: broker.port, clientID: "cut-sub")
        let json = scratch.file("out.jsonl")
        let run = try annotate(scratch, port: proxy.port, spool: scratch.file("spool"), json: json, tag: "cut")
        #expect(waitFor(120) { subscriber.records.count >= 100 }, "records flow before the cut")
        proxy.cut()
        let atCut = subscriber.records.count
        Thread.sleep(forTimeInterval: 5)
        #expect(subscriber.records.count < atCut + 300, "the cut stops delivery")
        try proxy.restore()
        #expect(run.waitExit(180) == 0, "\(run.stderr)")
        let written = jsonObjects(inFile: json)
        let expected = Set(seqs(written, schema: "netnet.frame/1", stream: "cam"))
        #expect(expected.count == 795)
        #expect(waitFor(30) { Set(seqs(subscriber.records.map(\.object), schema: "netnet.frame/1", stream: "cam")).count >= 795 })
        let received = seqs(subscriber.records.map(\.object), schema: "netnet.frame/1", stream: "cam")
        #expect(Set(received) == expected, "every frame seq, no gaps")
        let events = Set(seqs(written, schema: "netnet.event/1", stream: "cam"))
        #expect(events.isSubset(of: Set(seqs(subscriber.records.map(\.object), schema: "netnet.event/1", stream: "cam"))))
        let duplicates = received.count - Set(received).count
        print("broker cut: \(received.count) frame messages, \(duplicates) duplicates; \(run.stderr.split(separator: "\n").last ?? "")")
        #expect(run.stderr.contains("nothing left spooled"), "\(run.stderr)")
        #expect(subscriber.records.contains { $0.topic.hasSuffix("/status") == false && $0.topic == "netnet/cam/frame" })
    }

    @Test("SIGKILL while the broker is down; restarted on the same spool, every seq arrives")
    func crashWhileBrokerDown() throws {
        let scratch = Scratch()
        let broker = try Broker(scratch: scratch, start: false)
        let spool = scratch.file("spool")
        let first = scratch.file("first.jsonl")
        // fsync 0: every record is synced before the next, so a kill loses at most the one being written.
        let run = try annotate(scratch, port: broker.port, spool: spool, json: first, extra: ["--spool-fsync", "0"], tag: "crash1")
        #expect(waitFor(120) { jsonObjects(inFile: first).count >= 200 })
        run.signal(SIGKILL)
        _ = run.waitExit(10)
        let before = Set(jsonObjects(inFile: first).compactMap { $0["seq"] as? Int })
        try broker.start()
        let subscriber = try Subscriber(scratch: scratch, port: broker.port, clientID: "crash-sub")
        let clip = try ServeClips.make(in: scratch)
        let second = scratch.file("second.jsonl")
        let again = try annotate(scratch, port: broker.port, spool: spool, json: second, input: clip, tag: "crash2")
        #expect(again.waitExit(120) == 0, "\(again.stderr)")
        let after = Set(jsonObjects(inFile: second).compactMap { $0["seq"] as? Int })
        #expect(before.isDisjoint(with: after), "no seq is used twice across the restart")
        let all = before.union(after)
        _ = waitFor(20) { Set(subscriber.records.compactMap { $0.object["seq"] as? Int }).isSuperset(of: all.subtracting([before.max()!])) }
        let received = Set(subscriber.records.compactMap { $0.object["seq"] as? Int })
        let missing = all.subtracting(received)
        #expect(missing.isSubset(of: [before.max()!]), "lost only the record being written at the kill, if any: \(missing.sorted())")
        #expect(again.stderr.contains("nothing left spooled"), "\(again.stderr)")
    }

    @Test("cap: the missing seqs are exactly the gap lines' ranges and the dropped count")
    func capDropsOldestWithGapLines() throws {
        let scratch = Scratch()
        let broker = try Broker(scratch: scratch, start: false)
        // netnet reaches the broker only through the proxy, so the subscriber is in before netnet
        // can deliver anything: a record delivered earlier would look lost.
        let proxy = try CuttableProxy(target: broker.port)
        proxy.cut()
        let json = scratch.file("out.jsonl")
        let run = try annotate(scratch, port: proxy.port, spool: scratch.file("spool"), json: json,
                               extra: ["--spool-max-bytes", "\(160 << 10)", "--drain-timeout", "60"], tag: "cap")
        #expect(waitFor(120) { run.stderr.contains("gap: ") && jsonObjects(inFile: json).count >= 400 }, "\(run.stderr)")
        try broker.start()
        let subscriber = try Subscriber(scratch: scratch, port: broker.port, topic: "netnet/cam/+", clientID: "cap-sub")
        try proxy.restore()
        #expect(run.waitExit(180) == 0, "\(run.stderr)")
        let written = Set(jsonObjects(inFile: json).compactMap { $0["seq"] as? Int })
        var named = Set<Int>()
        // A gap line is a record too (a status of the stream, in the spool): a later cap can drop it.
        var gapSeqs = Set<Int>()
        for line in run.stderr.split(separator: "\n") where line.hasPrefix("netnet: warning: gap: ") {
            let object = try jsonObject(line.dropFirst("netnet: warning: gap: ".count))
            #expect(object["state"] as? String == "gap" && object["sink"] as? String == "mqtt")
            let first = object["first_seq"] as! Int, last = object["last_seq"] as! Int
            #expect(object["lost"] as? Int == last - first + 1)
            #expect(named.isDisjoint(with: first...last), "each lost seq is named once")
            named.formUnion(first...last)
            gapSeqs.insert(object["seq"] as! Int)
        }
        #expect(!gapSeqs.isEmpty)
        #expect(written.isDisjoint(with: gapSeqs), "gap lines take seqs of their own")
        // netnet's exit means the broker has acknowledged every record; the subscriber may still be writing them.
        let due = written.union(gapSeqs).subtracting(named)
        _ = waitFor(30) { Set(subscriber.records.compactMap { $0.object["seq"] as? Int }).isSuperset(of: due) }
        let received = subscriber.records.map(\.object)
        let receivedSeqs = Set(received.compactMap { $0["seq"] as? Int })
        let missing = written.union(gapSeqs).subtracting(receivedSeqs)
        #expect(missing == named, "missing \(missing.count), named \(named.count)")
        let dropped = run.stderr.range(of: #"dropped [0-9]+"#, options: .regularExpression).map { Int(run.stderr[$0].dropFirst(8))! }
        #expect(dropped == named.count, "\(run.stderr)")
        // The gap lines went to the sink too, as status records.
        #expect(received.contains { $0["state"] as? String == "gap" })
    }

    @Test("corrupt spool: a truncated and a bit-flipped segment are warned about, cut, the rest delivered")
    func corruptSpool() throws {
        let scratch = Scratch()
        let broker = try Broker(scratch: scratch, start: false)
        let spool = scratch.file("spool")
        let first = scratch.file("first.jsonl")
        // Broker down, no drain: every record (about 700 KB) stays spooled, in 128 KiB segments
        // (an eighth of the 1 MiB cap).
        let run = try annotate(scratch, port: broker.port, spool: spool, json: first,
                               extra: ["--spool-max-bytes", "\(1 << 20)", "--drain-timeout", "0"], tag: "corrupt1")
        #expect(run.waitExit(180) == 0, "\(run.stderr)")
        let segments = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".seg") }.sorted()
        try #require(segments.count >= 3, "\(segments)")
        // Flip a byte in the middle of the second segment; cut the last one mid-record.
        let flipped = spool + "/" + segments[1]
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: flipped)))
        bytes[bytes.count / 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: flipped))
        let last = spool + "/" + segments[segments.count - 1]
        let size = try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int
        #expect(truncate(last, off_t(size - 7)) == 0)
        try broker.start()
        let subscriber = try Subscriber(scratch: scratch, port: broker.port, clientID: "corrupt-sub")
        let clip = try ServeClips.make(in: scratch)
        let second = scratch.file("second.jsonl")
        let again = try annotate(scratch, port: broker.port, spool: spool, json: second, input: clip, tag: "corrupt2")
        #expect(again.waitExit(120) == 0, "\(again.stderr)")
        #expect(again.stderr.contains("torn last record"), "\(again.stderr)")
        #expect(again.stderr.contains("corrupt record"), "\(again.stderr)")
        let before = jsonObjects(inFile: first).compactMap { $0["seq"] as? Int }
        let after = Set(jsonObjects(inFile: second).compactMap { $0["seq"] as? Int })
        _ = waitFor(20) { Set(subscriber.records.compactMap { $0.object["seq"] as? Int }).isSuperset(of: after) }
        let received = Set(subscriber.records.compactMap { $0.object["seq"] as? Int })
        #expect(received.isSuperset(of: after), "the new run's records all arrive")
        let lost = Set(before).subtracting(received)
        // At most the flipped segment from the flipped record on, and the torn record: a 128 KiB
        // segment holds under 200 records (frame lines here are over 700 bytes).
        #expect(!lost.isEmpty && lost.count < 200, "lost \(lost.count)")
        #expect(!again.stderr.contains("gap: "), "damage is warned about, not reported as a cap gap")
        #expect(received.isSuperset(of: before.prefix(20)), "the first segment arrives")
    }

    @Test("two netnet processes, one mosquitto, two shared-subscription consumers: every record arrives")
    func sharedSubscriptions() throws {
        let scratch = Scratch()
        let broker = try Broker(scratch: scratch)
        let consumers = try (1...2).map {
            try Subscriber(scratch: scratch, port: broker.port, topic: "$share/workers/netnet/#", clientID: "worker-\($0)", protocolV5: true)
        }
        let clip = try ServeClips.make(in: scratch)
        let runs = try ["host-a", "host-b"].map { stream in
            try annotate(scratch, port: broker.port, spool: scratch.file("spool-\(stream)"), json: scratch.file("\(stream).jsonl"),
                         input: clip, stream: stream, tag: stream)
        }
        for run in runs { #expect(run.waitExit(120) == 0, "\(run.stderr)") }
        for stream in ["host-a", "host-b"] {
            let written = Set(jsonObjects(inFile: scratch.file("\(stream).jsonl")).compactMap { $0["seq"] as? Int })
            _ = waitFor(20) {
                Set(consumers.flatMap { $0.records.map(\.object) }.filter { $0["stream"] as? String == stream }.compactMap { $0["seq"] as? Int })
                    .isSuperset(of: written)
            }
            let received = consumers.flatMap { $0.records.map(\.object) }.filter { $0["stream"] as? String == stream }
            #expect(Set(received.compactMap { $0["seq"] as? Int }).isSuperset(of: written), "\(stream)")
        }
        #expect(consumers.allSatisfy { !$0.records.isEmpty }, "the broker spread the records over both consumers")
    }
}
