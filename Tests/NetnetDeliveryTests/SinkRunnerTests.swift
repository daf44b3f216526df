import Foundation
import NetnetDaemon
import NetnetPipeline
import NetnetSpool
import Testing
@testable import NetnetDelivery

/// A transport that behaves like a webhook (batches, no resend of its own) and answers its
/// batches from a script: `.fail` (connection lost), `.refuse` (every record refused for good),
/// then acknowledges every later batch. Driven by the runner's thread; read after `stop`.
final class ScriptedTransport: SinkTransport, @unchecked Sendable {
    enum Answer { case fail, refuse }
    private let lock = NSLock()
    private var script: [Answer]
    private var batch: [UInt64] = []
    private var sentLog: [UInt64] = []
    private var answeredLog: [(tokens: [UInt64], answer: Answer?)] = []
    let maxInFlight: Int
    var resendsInFlightAfterReconnect: Bool { false }

    init(maxInFlight: Int, script: [Answer]) {
        self.maxInFlight = maxInFlight
        self.script = script
    }

    /// Every token sent, in order, repeats included.
    var sent: [UInt64] { lock.withLock { sentLog } }
    /// Each batch with its scripted answer (nil: acknowledged).
    var answered: [(tokens: [UInt64], answer: Answer?)] { lock.withLock { answeredLog } }

    func connect() throws(TransportError) {}
    func send(_ record: DeliveryRecord, token: UInt64) -> SendResult {
        lock.withLock { batch.append(token); sentLog.append(token) }
        return .sent
    }
    func poll(timeout: Double) -> PollResult {
        lock.lock(); defer { lock.unlock() }
        guard !batch.isEmpty else { return PollResult() }
        let tokens = batch
        batch.removeAll()
        let answer = script.isEmpty ? nil : script.removeFirst()
        answeredLog.append((tokens, answer))
        switch answer {
        case .fail: return PollResult(connected: false, failure: "HTTP 503 Service Unavailable")
        case .refuse: return PollResult(rejected: tokens, rejection: "HTTP 400 Bad Request")
        case nil: return PollResult(acknowledged: tokens)
        }
    }
    func close() {}
}

final class WarningLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func add(_ line: String) { lock.withLock { stored.append(line) } }
    var lines: [String] { lock.withLock { stored } }
}

@Suite("sink runner with a batching transport", .serialized)
struct SinkRunnerTests {
    /// A spool for sink `http` holding `count` frame records (seq = index).
    func spool(_ count: Int) throws -> (Spool, String) {
        let directory = NSTemporaryDirectory() + "netnet-runner-\(UUID().uuidString)"
        let spool = try Spool(directory: directory, sinks: ["http"])
        for seq in 0..<count {
            let record = DeliveryRecord(kind: .frame, stream: "cam", seq: seq, line: Array("{\"seq\": \(seq)}\n".utf8))
            _ = try spool.append(record.encoded())
        }
        return (spool, directory)
    }

    func run(_ transport: ScriptedTransport, count: Int) throws -> (SinkFigures, [String]) {
        let (spool, directory) = try spool(count)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let warnings = WarningLog()
        let runner = SinkRunner(name: "http", lines: Set(RecordKind.allCases), spool: spool, transport: transport,
                                backoff: Backoff(base: 0.01, cap: 0.05), warn: { warnings.add($0) })
        let deadline = Date(timeIntervalSinceNow: 20)
        while (try spool.cursor(sink: "http")) < UInt64(count) && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        runner.stop()
        #expect(try spool.cursor(sink: "http") == UInt64(count), "the cursor passed every record")
        try spool.close()
        return (runner.figures, warnings.lines)
    }

    @Test("failed batches are read again from the spool: every record, in order, each failed batch resent whole")
    func failedBatchesResent() throws {
        let transport = ScriptedTransport(maxInFlight: 50, script: [.fail, .fail, .fail])
        let (figures, warnings) = try run(transport, count: 600)
        let sent = transport.sent
        var seen = Set<UInt64>()
        var firstTimes: [UInt64] = []
        for token in sent where seen.insert(token).inserted { firstTimes.append(token) }
        #expect(firstTimes == Array(0..<600), "every record, first sent in spool order")
        let failed = transport.answered.filter { $0.answer == .fail }
        #expect(failed.count == 3)
        // Each failed batch is sent again, from its first record, before anything newer.
        for batch in failed {
            let after = transport.answered.drop { $0.tokens != batch.tokens || $0.answer != .fail }.dropFirst()
            #expect(after.first?.tokens.first == batch.tokens.first, "\(batch.tokens.first!) resent first")
        }
        #expect(sent.count == 600 + failed.map(\.tokens.count).reduce(0, +), "only failed batches repeat")
        #expect(figures.delivered == 600 && figures.rejected == 0)
        // The 600 were spooled before the runner started (a restart's replay, counted once each);
        // each failed batch's records once more when read again, not a second time as replay.
        #expect(figures.redelivered == 600 + UInt64(failed.map(\.tokens.count).reduce(0, +)))
        #expect(figures.reconnects == 3)
        // One line for three identical failures, one when records flow again.
        #expect(warnings.filter { $0.contains("HTTP 503") }.count == 1, "\(warnings)")
        #expect(warnings.last == "sink http: delivering again", "\(warnings)")
    }

    @Test("a refused batch is passed over with one warning, counted as refused, not delivered")
    func refusedBatchPassedOver() throws {
        let transport = ScriptedTransport(maxInFlight: 50, script: [.refuse])
        let (figures, warnings) = try run(transport, count: 300)
        let refused = try #require(transport.answered.first { $0.answer == .refuse })
        #expect(!refused.tokens.isEmpty)
        #expect(figures.rejected == UInt64(refused.tokens.count))
        #expect(figures.delivered == UInt64(300 - refused.tokens.count))
        #expect(transport.sent == Array(0..<300), "nothing is sent twice")
        #expect(warnings == ["sink http: \(refused.tokens.count) records refused for good, passed over: HTTP 400 Bad Request"])
    }
}
