import Foundation
import Testing
@testable import NetnetDaemon
import NetnetPipeline

@Suite("events and sinks")
struct EventTests {
    @Test func statusRecordLine() throws {
        let r = StatusRecord(stream: "cam\"1", seq: 17, timeNanoseconds: 1_764_000_000_123_000_000, state: .backingOff, previous: .connecting,
                             reason: "Connection refused", attempt: 2, retryIn: 1.23456, reconnects: 5)
        let line = String(decoding: r.jsonLine(), as: UTF8.self)
        #expect(line == #"{"schema": "netnet.status/1", "stream": "cam\"1", "seq": 17, "time": "2025-11-24T16:00:00.123Z", "state": "backing_off", "previous": "connecting", "reason": "Connection refused", "attempt": 2, "retry_in": 1.235, "reconnects": 5}"# + "\n")
        let object = try JSONSerialization.jsonObject(with: Data(r.jsonLine())) as! [String: Any]
        #expect(object["state"] as? String == "backing_off")
        let first = StatusRecord(stream: "a", seq: 0, timeNanoseconds: 0, state: .connecting, previous: nil, reason: nil, attempt: nil, retryIn: nil, reconnects: 0)
        let o2 = try JSONSerialization.jsonObject(with: Data(first.jsonLine())) as! [String: Any]
        #expect(o2["previous"] is NSNull && o2["retry_in"] is NSNull)
    }

    func event(_ stream: String, _ n: Int) -> DaemonEvent {
        DaemonEvent(kind: .frame, stream: stream, seq: n, line: Array("{\"n\": \(n)}\n".utf8))
    }

    @Test func hubFiltersAndCountsDrops() {
        let hub = EventHub()
        let all = BoundedEventQueue(capacity: 2)
        let onlyB = BoundedEventQueue(capacity: 10)
        let idAll = hub.subscribe(name: "all") { all.offer($0) }
        hub.subscribe(name: "b", stream: "b") { onlyB.offer($0) }
        for n in 0..<5 { hub.publish(event(n % 2 == 0 ? "a" : "b", n)) }
        let counts = Dictionary(uniqueKeysWithValues: hub.dropCounts().map { ($0.sink, $0.dropped) })
        #expect(counts["all"] == 3)
        #expect(counts["b"] == 0)
        onlyB.close()
        var bs: [String] = []
        while let e = onlyB.take() { bs.append(e.stream) }
        #expect(bs == ["b", "b"])
        hub.unsubscribe(idAll)
        hub.publish(event("a", 9))
        #expect(Dictionary(uniqueKeysWithValues: hub.dropCounts().map { ($0.sink, $0.dropped) })["all"] == 3)
        #expect(hub.consumerCount == 1)
    }

    @Test func queueDrainsAfterClose() {
        let q = BoundedEventQueue(capacity: 3)
        #expect(q.offer(event("a", 1)) && q.offer(event("a", 2)) && q.offer(event("a", 3)))
        #expect(!q.offer(event("a", 4)))
        #expect(q.take()?.line == Array("{\"n\": 1}\n".utf8))
        q.close()
        #expect(!q.offer(event("a", 5)))
        #expect(q.take() != nil && q.take() != nil && q.take() == nil)
    }

    @Test func fileSinkRotatesBySizeAndKeepsCompleteLines() throws {
        let dir = NSTemporaryDirectory() + "netnet-sink-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/events.jsonl"
        let hub = EventHub()
        let log = DaemonLog(level: .error, journal: false, write: { _ in })
        let sink = try LineSink(name: "file", path: path, maxBytes: 1000, keep: 2, queueCapacity: 10_000, hub: hub, log: log)
        for n in 0..<100 {
            let head = "{\"n\": \(n), \"p\": \""
            let text = head + String(repeating: "x", count: 100 - head.utf8.count - 3) + "\"}\n"
            precondition(text.utf8.count == 100)
            hub.publish(DaemonEvent(kind: .frame, stream: "a", seq: 0, line: Array(text.utf8)))
        }
        sink.close()
        // 100 lines of 100 bytes, 10 per file: 9 rotations; the current file and two old ones remain.
        #expect(sink.rotations == 9)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"])
        for (name, first) in [("events.jsonl", 90), ("events.jsonl.1", 80), ("events.jsonl.2", 70)] {
            let text = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
            #expect(text.hasSuffix("\n"))
            let lines = text.split(separator: "\n")
            #expect(lines.count == 10)
            #expect(lines.first?.hasPrefix("{\"n\": \(first),") == true)
            for l in lines { _ = try JSONSerialization.jsonObject(with: Data(l.utf8)) }
            #expect(try FileManager.default.attributesOfItem(atPath: dir + "/" + name)[.size] as? Int ?? 0 <= 1000)
        }
    }

    @Test func fileSinkAppendsAcrossRestartsAndNamesABadPath() throws {
        let hub = EventHub()
        let log = DaemonLog(level: .error, journal: false, write: { _ in })
        #expect {
            _ = try LineSink(name: "file", path: "/nonexistent-dir/e.jsonl", queueCapacity: 16, hub: hub, log: log)
        } throws: { "\($0)".hasPrefix("cannot open /nonexistent-dir/e.jsonl: No such file or directory") }
        let path = NSTemporaryDirectory() + "netnet-append-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        for n in 0..<2 {
            let sink = try LineSink(name: "file", path: path, queueCapacity: 16, hub: hub, log: log)
            hub.publish(event("a", n))
            sink.close()
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "{\"n\": 0}\n{\"n\": 1}\n")
    }

    @Test func logLevelsAndJournalPrefixes() {
        final class Lines: @unchecked Sendable { var all: [String] = []; let lock = NSLock() }
        let lines = Lines()
        let log = DaemonLog(level: .warning, journal: false) { l in lines.lock.withLock { lines.all.append(l) } }
        log.info("hidden")
        log.warning("shown")
        let journal = DaemonLog(level: .debug, journal: true) { l in lines.lock.withLock { lines.all.append(l) } }
        journal.error("e")
        journal.debug("d\nsecond")
        #expect(lines.all == ["netnet: warning: shown\n", "<3>e\n", "<7>d second\n"])
    }

    @Test func metricsExposition() {
        let stats = StreamStats(id: "cam1", url: "rtsp://x/y")
        stats.update {
            $0.framesDecoded = 10; $0.framesInferred = 7; $0.framesDropped = 3; $0.reconnects = 2; $0.state = .streaming
            $0.transitions = ["connecting": 3, "streaming": 3, "backing_off": 2]
            $0.inference.observe(0.02); $0.inference.observe(0.3); $0.endToEnd.observe(0.05)
        }
        let text = MetricsText.render(streams: [("cam1", stats.snapshot())], sinkDrops: [("sse", 4)], uptimeSeconds: 12.5,
                                      reloads: 1, reloadFailures: 2)
        for expected in ["netnet_frames_decoded_total{stream=\"cam1\"} 10", "netnet_frames_inferred_total{stream=\"cam1\"} 7",
                         "netnet_frames_dropped_total{stream=\"cam1\"} 3", "netnet_reconnects_total{stream=\"cam1\"} 2",
                         "netnet_decode_errors_total{stream=\"cam1\"} 0",
                         "netnet_stream_state{stream=\"cam1\",state=\"streaming\"} 1", "netnet_stream_state{stream=\"cam1\",state=\"stalled\"} 0",
                         "netnet_state_transitions_total{stream=\"cam1\",state=\"backing_off\"} 2",
                         "netnet_inference_seconds_bucket{stream=\"cam1\",le=\"0.025\"} 1",
                         "netnet_inference_seconds_bucket{stream=\"cam1\",le=\"0.5\"} 2",
                         "netnet_inference_seconds_bucket{stream=\"cam1\",le=\"+Inf\"} 2", "netnet_inference_seconds_count{stream=\"cam1\"} 2",
                         "netnet_end_to_end_seconds_count{stream=\"cam1\"} 1", "netnet_queue_depth{stream=\"cam1\"} 0",
                         "netnet_events_dropped_total{sink=\"sse\"} 4", "netnet_config_reloads_total{result=\"rejected\"} 2",
                         "# TYPE netnet_inference_seconds histogram"] {
            #expect(text.contains(expected + "\n"), "missing \(expected)")
        }
        // Every sample line is NAME{labels} VALUE or NAME VALUE.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.split(separator: " ").count == 2, "\(line)")
        }
    }
}

@Suite("slow consumers")
struct SlowConsumerTests {
    /// A sink whose reader stops reading (a FIFO nobody drains): its thread blocks in write(2),
    /// its queue fills, and publishing goes on without waiting; every event is either written or
    /// counted as dropped, none lost silently.
    @Test func blockedSinkNeverBlocksThePublisher() throws {
        let path = NSTemporaryDirectory() + "netnet-fifo-\(UUID().uuidString)"
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        // The reader end, opened first (non-blocking) so the sink's open for writing succeeds.
        let reader = open(path, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        let hub = EventHub()
        let log = DaemonLog(level: .error, journal: false, write: { _ in })
        let sink = try LineSink(name: "file", path: path, queueCapacity: 16, hub: hub, log: log)
        let line = Array((String(repeating: "x", count: 199) + "\n").utf8)
        let total = 5000   // 1 MB: far more than the 64 KiB pipe plus 16 queued events
        for _ in 0..<total { hub.publish(DaemonEvent(kind: .frame, stream: "a", seq: 0, line: line)) }
        // The publisher got here although nobody reads: drops were counted.
        let dropped = Int(hub.dropCounts().first { $0.sink == "file" }?.dropped ?? 0)
        #expect(dropped > total / 2)
        // Drain the pipe while the sink finishes; count the lines that got through.
        let counter = LineCounter(fd: reader)
        let drained = Thread { counter.run() }
        drained.start()
        sink.close()
        counter.finish()
        #expect(counter.bytes % 200 == 0)
        #expect(counter.bytes / 200 + dropped == total, "written \(counter.bytes / 200) + dropped \(dropped) != \(total)")
    }
}

/// Reads a non-blocking descriptor until told to finish and nothing is left.
final class LineCounter: @unchecked Sendable {
    let fd: Int32
    private let lock = NSLock()
    private var count = 0
    private var finishing = false
    private let done = DispatchSemaphore(value: 0)
    init(fd: Int32) { self.fd = fd }
    var bytes: Int { lock.withLock { count } }
    func run() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { lock.withLock { count += n }; continue }
            if lock.withLock({ finishing }) && n <= 0 { break }
            usleep(2000)
        }
        done.signal()
    }
    func finish() {
        lock.withLock { finishing = true }
        done.wait()
    }
}
