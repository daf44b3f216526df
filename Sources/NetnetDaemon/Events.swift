import Foundation
import NetnetEngine
import NetnetPipeline

/// One event on the daemon's event stream: a `netnet.frame/1`, `netnet.event/1` or
/// `netnet.status/1` record (docs/json-lines.md), already encoded as one JSON line with its
/// newline. Value type; any thread.
public struct DaemonEvent: Sendable {
    /// Which schema the line has (the SSE event name).
    public enum Kind: String, Sendable { case frame, event, status }
    /// Frame, object event or status.
    public var kind: Kind
    /// The stream the event is about.
    public var stream: String
    /// The line's `seq`: unique per stream across restarts (one counter for the stream's frame,
    /// event and status lines), so `(stream, seq)` identifies the record (SSE `id:`, dedup).
    public var seq: Int
    /// The JSON line, newline included.
    public var line: [UInt8]
    /// Whether the spool already holds it (a `gap` line the delivery wrote itself), so the
    /// spool's own subscription passes over it.
    public var alreadySpooled: Bool

    /// An event. Any thread.
    public init(kind: Kind, stream: String, seq: Int, line: [UInt8], alreadySpooled: Bool = false) {
        self.kind = kind
        self.stream = stream
        self.seq = seq
        self.line = line
        self.alreadySpooled = alreadySpooled
    }
}

/// A stream's state change, schema `netnet.status/1`:
/// `{"schema": "netnet.status/1", "stream": "cam1", "seq": 12, "time": "…Z", "state": "backing_off",
/// "previous": "connecting", "reason": "…", "attempt": 2, "retry_in": 1.234, "reconnects": 5}`.
/// Value type; any thread.
public struct StatusRecord: Sendable, Equatable {
    /// The schema identifier every status line carries first.
    public static let schema = "netnet.status/1"
    /// Stream id.
    public var stream: String
    /// The line's number in the stream's one record counter (shared with its frame and event lines).
    public var seq: Int
    /// Wall-clock time of the change, ns since the epoch.
    public var timeNanoseconds: Int64
    /// The new state.
    public var state: StreamState
    /// The state before, nil for the first.
    public var previous: StreamState?
    /// Why (the error that ended a connection, "ended", "removed by reload", …), or nil.
    public var reason: String?
    /// The reconnect attempt (0-based) the backoff is for; nil outside `backing_off`.
    public var attempt: Int?
    /// Seconds until the next connection attempt; nil outside `backing_off`.
    public var retryIn: Double?
    /// The stream's reconnect count so far.
    public var reconnects: UInt64

    /// A record. Any thread.
    public init(stream: String, seq: Int, timeNanoseconds: Int64, state: StreamState, previous: StreamState?, reason: String?,
                attempt: Int?, retryIn: Double?, reconnects: UInt64) {
        self.stream = stream
        self.seq = seq
        self.timeNanoseconds = timeNanoseconds
        self.state = state
        self.previous = previous
        self.reason = reason
        self.attempt = attempt
        self.retryIn = retryIn
        self.reconnects = reconnects
    }

    /// The JSON line, newline included, keys in the order documented above. Any thread.
    public func jsonLine() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        Self.appendLine(stream: stream, seq: seq, timeNanoseconds: timeNanoseconds, state: state.rawValue,
                        previous: previous?.rawValue, reason: reason, attempt: attempt, retryIn: retryIn,
                        reconnects: reconnects, to: &bytes)
        return bytes
    }

    /// A `netnet.status/1` line, newline included: the keys above with `state` as text (a
    /// delivery `gap` line has a state no stream has), then whatever `extra` appends (each key
    /// with its leading `, `) before the closing brace. Pure.
    public static func appendLine(stream: String, seq: Int, timeNanoseconds: Int64, state: String, previous: String?,
                                  reason: String?, attempt: Int?, retryIn: Double?, reconnects: UInt64,
                                  extra: (inout [UInt8]) -> Void = { _ in }, to bytes: inout [UInt8]) {
        JSONText.appendRaw("{\"schema\": ", to: &bytes)
        JSONText.appendString(schema, to: &bytes)
        JSONText.appendRaw(", \"stream\": ", to: &bytes)
        JSONText.appendString(stream, to: &bytes)
        JSONText.appendRaw(", \"seq\": ", to: &bytes)
        JSONText.appendInt(seq, to: &bytes)
        JSONText.appendRaw(", \"time\": \"", to: &bytes)
        WallClock.appendISO8601(nanoseconds: timeNanoseconds, to: &bytes)
        JSONText.appendRaw("\", \"state\": ", to: &bytes)
        JSONText.appendString(state, to: &bytes)
        JSONText.appendRaw(", \"previous\": ", to: &bytes)
        if let previous { JSONText.appendString(previous, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        JSONText.appendRaw(", \"reason\": ", to: &bytes)
        if let reason { JSONText.appendString(reason, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        JSONText.appendRaw(", \"attempt\": ", to: &bytes)
        if let attempt { JSONText.appendInt(attempt, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        JSONText.appendRaw(", \"retry_in\": ", to: &bytes)
        if let retryIn { JSONText.appendFixed(retryIn, decimals: 3, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        JSONText.appendRaw(", \"reconnects\": ", to: &bytes)
        JSONText.appendInt(Int(reconnects), to: &bytes)
        extra(&bytes)
        JSONText.appendRaw("}\n", to: &bytes)
    }
}

/// Fans events out to consumers. Publishing never blocks: each consumer takes the event or, when
/// its bounded queue is full, drops it and counts the drop. Any thread.
public final class EventHub: @unchecked Sendable {
    /// A consumer: `offer` returns false when it dropped the event (queue full).
    struct Consumer {
        let name: String
        let stream: String?
        let offer: @Sendable (DaemonEvent) -> Bool
        var dropped: UInt64 = 0
    }

    private let lock = NSLock()
    private var consumers: [Int: Consumer] = [:]
    private var nextID = 0
    private var retiredDrops: [String: UInt64] = [:]

    /// An empty hub. Any thread.
    public init() {}

    /// Adds a consumer named `name` (in `/metrics`: SSE clients are summed under `sse`) that
    /// receives the events of `stream` (nil: all). `offer` is called on the publishing thread and
    /// must not block; it returns false when it had to drop the event. Returns an id for
    /// `unsubscribe`. Any thread.
    @discardableResult
    public func subscribe(name: String, stream: String? = nil, offer: @escaping @Sendable (DaemonEvent) -> Bool) -> Int {
        lock.lock(); defer { lock.unlock() }
        nextID += 1
        consumers[nextID] = Consumer(name: name, stream: stream, offer: offer)
        return nextID
    }

    /// Removes a consumer; its drop count stays in `dropCounts`. Any thread.
    public func unsubscribe(_ id: Int) {
        lock.lock(); defer { lock.unlock() }
        if let consumer = consumers.removeValue(forKey: id) {
            retiredDrops[consumer.name, default: 0] += consumer.dropped
        }
    }

    /// Hands `event` to every matching consumer. Never blocks (beyond the hub's short lock). Any thread.
    public func publish(_ event: DaemonEvent) {
        lock.lock(); defer { lock.unlock() }
        for (id, consumer) in consumers where consumer.stream == nil || consumer.stream == event.stream {
            if !consumer.offer(event) { consumers[id]!.dropped += 1 }
        }
    }

    /// Counts `count` events that consumer `id` took but could not deliver (a sink whose output
    /// fails), under its name in `dropCounts`. Any thread.
    public func countDropped(_ id: Int, count: UInt64 = 1) {
        lock.lock(); defer { lock.unlock() }
        consumers[id]?.dropped += count
    }

    /// Events dropped per consumer name, live and removed consumers together, sorted by name. Any thread.
    public func dropCounts() -> [(sink: String, dropped: UInt64)] {
        lock.lock(); defer { lock.unlock() }
        var totals = retiredDrops
        for consumer in consumers.values { totals[consumer.name, default: 0] += consumer.dropped }
        return totals.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Number of live consumers. Any thread.
    public var consumerCount: Int {
        lock.lock(); defer { lock.unlock() }
        return consumers.count
    }
}

/// A bounded FIFO of events between the publisher and one consumer thread: `offer` never blocks
/// (false when full), `take` waits. Any thread.
public final class BoundedEventQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [DaemonEvent] = []
    private var head = 0
    private var closed = false
    /// Most events held.
    public let capacity: Int

    /// A queue of at most `capacity` events. Any thread.
    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Appends unless full or closed; false means dropped. Never blocks. Any thread.
    public func offer(_ event: DaemonEvent) -> Bool {
        condition.lock(); defer { condition.unlock() }
        guard !closed, items.count - head < capacity else { return false }
        items.append(event)
        condition.signal()
        return true
    }

    /// The next event, waiting for one; nil once closed and empty. Consumer thread.
    public func take() -> DaemonEvent? {
        condition.lock(); defer { condition.unlock() }
        while head == items.count && !closed { condition.wait() }
        guard head < items.count else { return nil }
        let event = items[head]
        head += 1
        if head > 256 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return event
    }

    /// Refuses further events; `take` drains what is queued, then returns nil. Any thread.
    public func close() {
        condition.lock(); closed = true; condition.broadcast(); condition.unlock()
    }
}

/// A JSON-lines sink on its own thread: standard output (path `-`) or a file, appended to and
/// rotated by size (`FILE` → `FILE.1` → … → `FILE.N`, the oldest removed). Each line is one
/// `write(2)`, so the file always ends on a complete line. When the output fails (a full disk,
/// no descriptor left, a rotation that cannot open the new file, a directory gone), every event
/// it could not write is counted in the hub's drops under the sink's name, `health` reports the
/// failure, and the sink retries (reopening the file) with exponential backoff, at most
/// `retryCap` seconds apart, until it writes again. With `descriptors`, a reopen or a rotation
/// opens only while that leaves the runtime a free descriptor number (`DescriptorSpares.mayOpen`),
/// else it fails with EMFILE as a refused open would. Created and closed from any thread; the
/// writing happens on the sink's thread.
public final class LineSink: @unchecked Sendable {
    /// Whether a sink is writing, or since when and why it is not. Value type; any thread.
    public struct Health: Sendable, Equatable {
        /// The sink's name (`stdout`, `file`).
        public var sink: String
        /// The error of the last failed write or open, nil while the sink writes.
        public var failure: OutputError?
        /// Wall-clock time (ns since the epoch) the current failure began; 0 while healthy.
        public var failingSinceNanoseconds: Int64 = 0
        /// Events not written since the current failure began.
        public var droppedSinceFailure: UInt64 = 0
        /// Times the sink went from failing back to writing.
        public var recoveries: UInt64 = 0
        /// Whether the sink writes.
        public var isHealthy: Bool { failure == nil }
    }

    /// `stdout` or `file`, the consumer name in `/metrics`.
    public let name: String
    /// The path (`-`: standard output).
    public let path: String
    private let maxBytes: Int64
    private let keep: Int
    private let queue: BoundedEventQueue
    private let log: DaemonLog
    private var writer: JSONLinesWriter?
    private var size: Int64 = 0
    private let done = DispatchSemaphore(value: 0)
    private var subscription: Int?
    private weak var hub: EventHub?
    private let retry: Backoff
    private let descriptors: DescriptorSpares?
    /// Sink thread only: the retry attempt and when the next one may be made (monotonic ns).
    private var attempt = 0
    private var nextRetryNanoseconds: UInt64 = 0
    /// Files rotated so far and the health (sink thread writes, others read under `lock`).
    private let lock = NSLock()
    private var rotationCount = 0
    private var state: Health

    /// Opens the output (a file is appended to, created 0644) and starts the sink's thread,
    /// subscribed to `hub`. Throws `OutputError` naming the path if the first open fails (the
    /// daemon then refuses to start). `retryBase`/`retryCap`: the reopen backoff after a
    /// failure, seconds. `descriptors`: the daemon's spare-descriptor policy, nil for none. Any thread.
    public init(name: String, path: String, maxBytes: Int64 = .max, keep: Int = 0, queueCapacity: Int,
                hub: EventHub, log: DaemonLog, retryBase: Double = 0.25, retryCap: Double = 5,
                descriptors: DescriptorSpares? = nil) throws {
        self.name = name
        self.path = path
        self.maxBytes = maxBytes
        self.keep = keep
        self.log = log
        retry = Backoff(base: retryBase, cap: retryCap)
        self.descriptors = descriptors
        state = Health(sink: name)
        queue = BoundedEventQueue(capacity: queueCapacity)
        writer = try JSONLinesWriter(path: path, append: true)
        size = currentSize()
        self.hub = hub
        let queue = self.queue
        subscription = hub.subscribe(name: name) { queue.offer($0) }
        let thread = Thread { [self] in run() }
        thread.name = "netnet-sink-\(name)"
        thread.start()
    }

    /// Files rotated since start. Any thread.
    public var rotations: Int {
        lock.lock(); defer { lock.unlock() }
        return rotationCount
    }

    /// Whether the sink writes, or why not. Any thread.
    public var health: Health {
        lock.lock(); defer { lock.unlock() }
        return state
    }

    /// Unsubscribes, writes what is queued, closes the file and waits for the thread. Any thread, once.
    public func close() {
        if let subscription { hub?.unsubscribe(subscription) }
        queue.close()
        done.wait()
    }

    private func currentSize() -> Int64 {
        guard path != "-" else { return 0 }
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : 0
    }

    private func run() {
        while let event = queue.take() {
            write(event)
        }
        do { try writer?.close() } catch { log.error("\(name) sink: \(error)") }
        done.signal()
    }

    /// Writes one event, or counts it as dropped while the output fails. Sink thread.
    private func write(_ event: DaemonEvent) {
        if writer == nil {
            // Failing: retry only when the backoff allows; until then the event is lost, counted.
            guard WallClock.monotonicNanoseconds() >= nextRetryNanoseconds else { return drop() }
            do {
                writer = try openWriter(append: true)
                size = currentSize()
            } catch let error as OutputError {
                return fail(error)
            } catch {
                return fail(OutputError(operation: "open", path: path, code: EIO))
            }
        }
        do {
            if path != "-" && size > 0 && size + Int64(event.line.count) > maxBytes { try rotate() }
            guard let writer else { return drop() }
            try writer.writeLine(event.line)
            size += Int64(event.line.count)
            recovered()
        } catch let error as OutputError {
            fail(error)
        } catch {
            fail(OutputError(operation: "write", path: path, code: EIO))
        }
    }

    private func drop() {
        if let subscription { hub?.countDropped(subscription) }
        lock.lock(); state.droppedSinceFailure += 1; lock.unlock()
    }

    /// The output failed for this event: close it, count the event, schedule the next try.
    private func fail(_ error: OutputError) {
        try? writer?.close()
        writer = nil
        let delay = retry.bound(attempt: attempt)
        attempt += 1
        nextRetryNanoseconds = WallClock.monotonicNanoseconds() + UInt64(delay * 1e9)
        lock.lock()
        let first = state.failure == nil
        let changed = state.failure != error
        if first { state.failingSinceNanoseconds = WallClock.nowNanoseconds(); state.droppedSinceFailure = 0 }
        state.failure = error
        lock.unlock()
        drop()
        if first {
            log.error("\(name) sink: \(error); events are dropped (counted in netnet_events_dropped_total{sink=\"\(name)\"}) and it retries, at most \(ConfigParser.formatNumber(retry.cap)) s apart")
        } else if changed {
            log.error("\(name) sink: still failing: \(error)")
        }
    }

    private func recovered() {
        guard attempt > 0 else { return }
        attempt = 0
        lock.lock()
        let dropped = state.droppedSinceFailure
        let since = state.failingSinceNanoseconds
        state.failure = nil
        state.failingSinceNanoseconds = 0
        state.droppedSinceFailure = 0
        state.recoveries += 1
        lock.unlock()
        let seconds = Double(WallClock.nowNanoseconds() - since) / 1e9
        log.info("\(name) sink: writing again after \(String(format: "%.1f", seconds)) s; \(dropped) events were dropped")
    }

    /// Closes the file, shifts the rotated ones, opens a fresh `FILE`. A failed open leaves the
    /// sink without a writer (thrown, so the event is counted and retried). Sink thread.
    private func rotate() throws {
        try? writer?.close()
        writer = nil
        let fm = FileManager.default
        if keep > 0 {
            try? fm.removeItem(atPath: "\(path).\(keep)")
            if keep > 1 {
                for k in stride(from: keep - 1, through: 1, by: -1) where fm.fileExists(atPath: "\(path).\(k)") {
                    try? fm.moveItem(atPath: "\(path).\(k)", toPath: "\(path).\(k + 1)")
                }
            }
            // A file that cannot be moved aside is not written past its size: the sink fails
            // (counted, retried) rather than grow it without bound.
            if rename(path, "\(path).1") != 0 && errno != ENOENT {
                throw OutputError(operation: "rename", path: path, code: errno)
            }
            writer = try openWriter(append: true)
        } else {
            writer = try openWriter(append: false)
        }
        size = currentSize()
        lock.lock(); rotationCount += 1; lock.unlock()
    }

    /// The output, opened unless the descriptor policy says an open now would take the runtime's
    /// last free number: that, like a refused open, throws EMFILE (and a refused one relieves).
    /// Standard output opens nothing. Sink thread.
    private func openWriter(append: Bool) throws -> JSONLinesWriter {
        guard path != "-" else { return try JSONLinesWriter(path: path, append: append) }
        if let descriptors, !descriptors.mayOpen() { throw OutputError(operation: "open", path: path, code: EMFILE) }
        do {
            return try JSONLinesWriter(path: path, append: append)
        } catch let error as OutputError where error.code == EMFILE || error.code == ENFILE {
            descriptors?.relieve()
            throw error
        }
    }
}
