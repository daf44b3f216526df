import Foundation
import NetnetDaemon
import NetnetPipeline
import NetnetSpool

/// What a sink's protocol does, driven by its `SinkRunner` on the runner's thread (every method
/// is called from that one thread only, so an implementation needs no lock of its own). The MQTT
/// sink (`MQTTTransport`) is one implementation; the HTTP webhook (`WebhookTransport`) is a second:
/// `send` buffers a batch, `poll` POSTs it and reports the tokens of a 2xx as acknowledged.
public protocol SinkTransport: AnyObject {
    /// The most records sent and not yet acknowledged.
    var maxInFlight: Int { get }
    /// Whether, after a reconnect, the transport itself sends again what was in flight (MQTT's
    /// session does; a webhook does not, so the runner reads those records again).
    var resendsInFlightAfterReconnect: Bool { get }
    /// Connects (or reconnects); throws `TransportError` when it cannot (refused, unreachable,
    /// not authorised). Blocking is fine: the runner's thread waits.
    func connect() throws(TransportError)
    /// Sends one record, identified by `token` (its spool index) in the acknowledgements.
    func send(_ record: DeliveryRecord, token: UInt64) -> SendResult
    /// Does the transport's I/O for up to `timeout` seconds (a webhook: the POST of its batch, up
    /// to its own timeout); returns the tokens acknowledged and refused for good since the last
    /// call, in any order, and whether the connection still stands.
    func poll(timeout: Double) -> PollResult
    /// Says goodbye (e.g. `offline`) and closes; the transport is not used again.
    func close()
}

/// What `SinkTransport.poll` found. Value type; any thread.
public struct PollResult: Sendable, Equatable {
    /// Tokens the far end acknowledged.
    public var acknowledged: [UInt64]
    /// Tokens the far end refused for good (a webhook's 400 for its whole batch): counted as
    /// rejected and passed over, like `SendResult.rejected`.
    public var rejected: [UInt64]
    /// Why `rejected` were refused: one line, already redacted (the runner warns once per poll).
    public var rejection: String?
    /// Whether the connection still stands; false: the runner reconnects (with backoff when
    /// nothing was acknowledged on the connection that was lost).
    public var connected: Bool
    /// Why the connection is gone, one line, already redacted; nil: no reason known.
    public var failure: String?

    /// A result. Pure.
    public init(acknowledged: [UInt64] = [], rejected: [UInt64] = [], rejection: String? = nil,
                connected: Bool = true, failure: String? = nil) {
        self.acknowledged = acknowledged
        self.rejected = rejected
        self.rejection = rejection
        self.connected = connected
        self.failure = failure
    }
}

/// What `SinkTransport.send` did with a record. Value type.
public enum SendResult: Sendable, Equatable {
    /// Sent (or queued to be sent); its acknowledgement will come from `poll`.
    case sent
    /// The connection is gone: the record was not sent; the runner reconnects and sends it again.
    case disconnected
    /// The record can never be sent (too large for the broker, a topic it refuses): it is counted
    /// as rejected and passed over, so one bad record does not stop the sink.
    case rejected(String)
}

/// Why a transport could not connect. Value type; any thread.
public struct TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The library's or system's code (e.g. `MOSQ_ERR_*`, a CONNACK reason, `errno`).
    public var code: Int32
    /// One line, already redacted.
    public var message: String
    /// An error. Pure.
    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// A sink's figures for metrics and the end-of-run summary. Value type; any thread.
public struct SinkFigures: Sendable, Equatable {
    /// The sink's name (`[sink NAME]`, or `mqtt`, `mqtt-2`, …, `http`, `http-2`, … for `annotate --sink`).
    public var sink: String
    /// Whether it is connected now.
    public var connected = false
    /// Records sent and not yet acknowledged.
    public var inFlight = 0
    /// Records acknowledged (or passed over by the `lines` filter) since start; not those refused.
    public var delivered: UInt64 = 0
    /// Records sent again: in flight when a connection broke (the session resends them), and
    /// records read back from the spool after a restart that an earlier run had already sent.
    public var redelivered: UInt64 = 0
    /// Records the far end refused for good (`SendResult.rejected`, `PollResult.rejected`).
    public var rejected: UInt64 = 0
    /// Connections made after the first.
    public var reconnects: UInt64 = 0
    /// The last connection failure, nil while connected.
    public var lastError: String?
}

/// Drives one sink on a thread of its own: reads the spool after the sink's cursor, filters by
/// `lines`, sends through the transport with at most `maxInFlight` unacknowledged, and moves the
/// sink's cursor (persisted) over the longest acknowledged prefix — so a record is deleted only
/// after this sink (and every other) acknowledged it. Connection failures retry with the
/// cameras' jittered `Backoff`. Created, queried and stopped from any thread.
public final class SinkRunner: @unchecked Sendable {
    /// The sink's name (its spool cursor's name).
    public let name: String
    /// Which record kinds it sends (others are acknowledged without sending).
    public let lines: Set<RecordKind>
    private let spool: Spool
    private let transport: SinkTransport
    private let backoff: Backoff
    private let warn: @Sendable (String) -> Void
    private let condition = NSCondition()
    private var stopping = false
    private var state: SinkFigures
    private let done = DispatchSemaphore(value: 0)
    /// The index below which records existed before this run (a restart's replay).
    private let openedAt: UInt64

    /// A runner for sink `name` of `spool` (registered there), sending `lines` through
    /// `transport`. Starts its thread at once. `warn` gets one line per connection failure that
    /// differs from the last, one when it connects (after a failed connect) or delivers (after a
    /// lost connection) again, and one per record or batch refused for good. Any thread.
    public init(name: String, lines: Set<RecordKind>, spool: Spool, transport: SinkTransport,
                backoff: Backoff = Backoff(base: 0.25, cap: 5), warn: @escaping @Sendable (String) -> Void) {
        self.name = name
        self.lines = lines
        self.spool = spool
        self.transport = transport
        self.backoff = backoff
        self.warn = warn
        state = SinkFigures(sink: name)
        openedAt = spool.figures().nextIndex
        let thread = Thread { [self] in run() }
        thread.name = "netnet-sink-\(name)"
        thread.start()
    }

    /// The figures now. Any thread.
    public var figures: SinkFigures {
        condition.lock(); defer { condition.unlock() }
        return state
    }

    /// Stops the thread (what is in flight stays in the spool for the next run) and closes the
    /// transport; waits for both. Any thread, once.
    public func stop() {
        condition.lock(); stopping = true; condition.broadcast(); condition.unlock()
        done.wait()
    }

    private var isStopping: Bool {
        condition.lock(); defer { condition.unlock() }
        return stopping
    }

    private func update(_ body: (inout SinkFigures) -> Void) {
        condition.lock(); body(&state); condition.unlock()
    }

    /// Waits up to `seconds` unless stopped. Runner thread.
    private func pause(_ seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        while !stopping && Date() < deadline { _ = condition.wait(until: deadline) }
        condition.unlock()
    }

    private func run() {
        defer { transport.close(); done.signal() }
        var attempt = 0
        // Connections lost in a row with nothing acknowledged on them. A webhook "connects" at
        // once every time (there is nothing to connect ahead of a POST), so for it this, not
        // `attempt`, is what makes a far end answering 503 see a growing backoff.
        var fruitless = 0
        var everConnected = false
        var lastFailure: String?
        // A connect failure was warned about: "connected" follows the next connect.
        var connectWarned = false
        // A lost connection was warned about: "delivering again" follows the next acknowledgement
        // (a transport that connects at once may well fail again on its first send).
        var lossWarned = false
        // Records in flight or passed over, in index order; `finished` holds those acknowledged.
        var pending: [UInt64] = []
        var head = 0
        var finished = Set<UInt64>()
        // The finished ones refused for good: passed over like the rest, but not counted as delivered.
        var refused = Set<UInt64>()
        var nextRead = (try? spool.cursor(sink: name)) ?? 0
        // The end of what this run has read: a record read again after a reconnect is counted as
        // redelivered once (when it is read again), not a second time as a restart's replay.
        var readEnd = nextRead
        while !isStopping {
            do throws(TransportError) {
                try transport.connect()
            } catch {
                update { $0.connected = false; $0.lastError = error.message }
                if error.message != lastFailure { warn("sink \(name): cannot connect: \(error.message); records wait in the spool") }
                lastFailure = error.message
                connectWarned = true
                lossWarned = false
                pause(backoff.delay(attempt: attempt, unit: Double.random(in: 0..<1)))
                attempt += 1
                continue
            }
            if everConnected { update { $0.reconnects += 1 } }
            if connectWarned { warn("sink \(name): connected"); lastFailure = nil }
            connectWarned = false
            everConnected = true
            attempt = 0
            if !transport.resendsInFlightAfterReconnect, head < pending.count {
                // Send again what was in flight: read from the oldest unacknowledged record.
                let unacknowledged = pending[head...].filter { !finished.contains($0) }
                if let first = unacknowledged.first { nextRead = first; update { $0.redelivered += UInt64(unacknowledged.count) } }
                pending.removeAll(); head = 0; finished.removeAll(); refused.removeAll()
            }
            update { $0.connected = true; $0.lastError = nil }
            var connected = true
            var failure: String?
            while connected && !isStopping {
                let inFlight = pending.count - head - finished.count
                var room = transport.maxInFlight - inFlight
                var readAny = false
                if room > 0, let entries = try? spool.read(sink: name, from: nextRead, max: min(room, 512)), !entries.isEmpty {
                    readAny = true
                    var replayed: UInt64 = 0
                    for entry in entries {
                        nextRead = entry.index + 1
                        pending.append(entry.index)
                        guard let record = DeliveryRecord(payload: entry.payload), lines.contains(record.kind) else {
                            finished.insert(entry.index)
                            continue
                        }
                        if entry.index < openedAt && entry.index >= readEnd { replayed += 1 }
                        switch transport.send(record, token: entry.index) {
                        case .sent:
                            room -= 1
                        case .disconnected:
                            connected = false
                            nextRead = entry.index
                            pending.removeLast()
                        case let .rejected(why):
                            finished.insert(entry.index)
                            refused.insert(entry.index)
                            update { $0.rejected += 1 }
                            warn("sink \(name): record \(record.stream)/\(record.seq) refused: \(why)")
                        }
                        if !connected { break }
                    }
                    readEnd = max(readEnd, nextRead)
                    if replayed > 0 { update { $0.redelivered += replayed } }
                }
                let polled = transport.poll(timeout: readAny ? 0 : 0.05)
                if !polled.connected { connected = false; failure = polled.failure }
                for token in polled.acknowledged { finished.insert(token) }
                if !polled.rejected.isEmpty {
                    for token in polled.rejected { finished.insert(token); refused.insert(token) }
                    update { $0.rejected += UInt64(polled.rejected.count) }
                    warn("sink \(name): \(polled.rejected.count) records refused for good, passed over: \(polled.rejection ?? "no reason given")")
                }
                if !polled.acknowledged.isEmpty || !polled.rejected.isEmpty {
                    fruitless = 0
                    if lossWarned { warn("sink \(name): delivering again"); lossWarned = false; lastFailure = nil }
                }
                // The longest acknowledged prefix moves the cursor.
                var through: UInt64?
                var count: UInt64 = 0
                while head < pending.count, finished.remove(pending[head]) != nil {
                    through = pending[head]
                    if refused.remove(pending[head]) == nil { count += 1 }
                    head += 1
                }
                if head > 4096 { pending.removeFirst(head); head = 0 }
                if let through {
                    do throws(SpoolError) { try spool.acknowledge(sink: name, through: through) } catch {
                        warn("sink \(name): \(error)")
                    }
                }
                let left = pending.count - head - finished.count
                update { $0.delivered += count; $0.inFlight = left }
            }
            if !isStopping {
                let left = pending.count - head - finished.count
                let why = failure ?? "connection lost"
                update {
                    $0.connected = false
                    $0.lastError = why
                    if transport.resendsInFlightAfterReconnect { $0.redelivered += UInt64(left) }
                }
                if why != lastFailure {
                    warn(failure.map { "sink \(name): \($0); \(left) records in flight; retrying" }
                         ?? "sink \(name): connection lost with \(left) records in flight; reconnecting")
                }
                lastFailure = why
                lossWarned = true
                pause(backoff.delay(attempt: fruitless, unit: Double.random(in: 0..<1)))
                fruitless += 1
            }
        }
    }
}
