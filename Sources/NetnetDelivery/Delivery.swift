import Foundation
import NetnetDaemon
import NetnetEngine
import NetnetPipeline
import NetnetSpool

/// One configured sink: its name (the spool cursor's), the kinds it sends, and how to make its
/// transport. Value type; any thread.
public struct SinkSpec: Sendable {
    /// `[sink NAME]`, or `mqtt`, `mqtt-2`, …, `http`, `http-2`, … for `annotate --sink`.
    public var name: String
    /// `lines = frame,event,status` (default all three).
    public var lines: Set<RecordKind>
    /// What it is, and where.
    public var kind: Kind

    /// The sink's protocol. Value type.
    public enum Kind: Sendable, Equatable {
        /// An MQTT broker.
        case mqtt(MQTTSettings)
        /// An HTTP webhook.
        case http(WebhookSettings)
    }

    /// A spec. Pure.
    public init(name: String, lines: Set<RecordKind> = Set(RecordKind.allCases), kind: Kind) {
        self.name = name
        self.lines = lines
        self.kind = kind
    }

    /// The spec of a `[sink NAME]` section (already checked by the configuration parser): its
    /// URL read as `annotate --sink` reads one, then the section's keys over it. Throws
    /// `SinkURL.Problem` for what only this module can tell. Pure.
    public init(config: SinkConfig) throws(SinkURL.Problem) {
        var spec = try SinkURL.parse(config.url, name: config.name)
        spec.lines = config.lines
        switch spec.kind {
        case var .mqtt(settings):
            if let topic = config.topic { settings.topic = topic }
            if let qos = config.qos { settings.qos = Int32(qos) }
            if let clientID = config.clientID { settings.clientID = clientID }
            if let username = config.username { settings.username = username }
            if let password = config.password { settings.password = password }
            if let caFile = config.caFile { settings.caFile = caFile }
            spec.kind = .mqtt(settings)
        case var .http(settings):
            if let username = config.username { settings.username = username }
            if let password = config.password { settings.password = password }
            if let caFile = config.caFile { settings.caFile = caFile }
            spec.kind = .http(settings)
        }
        self = spec
    }

    func makeTransport() -> SinkTransport {
        switch kind {
        case let .mqtt(settings): MQTTTransport(settings: settings)
        case let .http(settings): WebhookTransport(settings: settings)
        }
    }
}

/// The durable delivery of the pipeline's records (docs/delivery.md): every record the pipeline
/// writes is appended to the spool (the only thing on the record path: a buffer copy, a
/// `write(2)` per 64 KiB, an `fdatasync` only with `spool_fsync = 0`); a timer thread syncs the
/// spool every `spool_fsync` seconds; one `SinkRunner` thread per sink reads after its cursor,
/// sends, and moves the cursor on acknowledgement. When the cap (`spool_max_bytes`) deletes
/// records a sink had not acknowledged, a `gap` status line names each lost seq range (per
/// stream and sink); it is appended to the spool like any record and handed to `onGap`.
/// Any thread; `close` once.
public final class Delivery: RecordSink, @unchecked Sendable {
    /// The spool.
    public let spool: Spool
    /// One runner per sink.
    public private(set) var runners: [SinkRunner] = []
    private let sequences: SequenceStore
    private let warn: @Sendable (String) -> Void
    private let onGap: @Sendable (DeliveryRecord) -> Void
    private let fsyncInterval: Double
    /// The kinds some sink sends: the others are never spooled (with `lines = event, status`
    /// everywhere, frames do not touch the disk).
    private let wanted: Set<RecordKind>
    /// Spool index → (stream, seq) of the records held, for naming a gap's seqs (guarded by `mapLock`).
    private let mapLock = NSLock()
    private var mapBase: UInt64 = 0
    private var mapEntries: [(stream: Int32, seq: Int64)] = []
    private var streamIDs: [String: Int32] = [:]
    private var streamNames: [String] = []
    private var appendFailure: SpoolError?
    private var appendFailures: UInt64 = 0
    private let timer = NSCondition()
    private var closing = false
    private let timerDone = DispatchSemaphore(value: 0)

    /// Opens (or creates) the spool in `directory` for `sinks` with `configuration` (its
    /// `fsyncInterval` is `spool_fsync`), reports what the open repaired through `warn` (a torn
    /// tail cut, a corrupt record skipped), starts the spool's sync timer and one runner per sink.
    /// `sequences` numbers the gap lines (in the stream they are about). Throws `SpoolError`.
    /// Any thread.
    public init(directory: String, sinks: [SinkSpec], configuration: SpoolConfiguration, sequences: SequenceStore,
                warn: @escaping @Sendable (String) -> Void, onGap: @escaping @Sendable (DeliveryRecord) -> Void = { _ in }) throws(SpoolError) {
        // The timer syncs on time; the spool's own due-check in `append` is only a backstop, so
        // the record path does not `fdatasync` (except with 0: every record, by definition).
        var spoolConfiguration = configuration
        if configuration.fsyncInterval > 0 { spoolConfiguration.fsyncInterval = configuration.fsyncInterval * 4 }
        spool = try Spool(directory: directory, sinks: sinks.map(\.name), configuration: spoolConfiguration)
        fsyncInterval = configuration.fsyncInterval
        wanted = sinks.reduce(into: Set<RecordKind>()) { $0.formUnion($1.lines) }
        self.sequences = sequences
        self.warn = warn
        self.onGap = onGap
        for warning in spool.warnings { warn(warning.description) }
        loadMap()
        for gap in spool.takeGaps() {
            warn("spool: sink \(gap.sink) lost records \(gap.first)…\(gap.last) of the spool (\(gap.cause)); their seqs cannot be named")
        }
        let thread = Thread { [self] in timerLoop() }
        thread.name = "netnet-spool-sync"
        thread.start()
        runners = sinks.map { spec in
            SinkRunner(name: spec.name, lines: spec.lines, spool: spool, transport: spec.makeTransport(), warn: warn)
        }
    }

    /// Reads back the (stream, seq) of every record held after the lowest cursor.
    private func loadMap() {
        let lowest = spool.sinks.compactMap { try? spool.cursor(sink: $0) }.min() ?? spool.figures().nextIndex
        guard let sink = spool.sinks.first(where: { (try? spool.cursor(sink: $0)) == lowest }) else {
            mapBase = spool.figures().nextIndex
            return
        }
        mapBase = lowest
        var from = lowest
        while let entries = try? spool.read(sink: sink, from: from, max: 4096), let last = entries.last {
            for entry in entries {
                while mapBase + UInt64(mapEntries.count) < entry.index { mapEntries.append((-1, -1)) }   // lost ones
                let record = DeliveryRecord(payload: entry.payload)
                mapEntries.append(record.map { (streamID($0.stream), Int64($0.seq)) } ?? (-1, -1))
            }
            from = last.index + 1
        }
    }

    private func streamID(_ stream: String) -> Int32 {
        if let id = streamIDs[stream] { return id }
        let id = Int32(streamNames.count)
        streamIDs[stream] = id
        streamNames.append(stream)
        return id
    }

    /// Appends a record to the spool (see the type), unless no sink sends its kind. A failing
    /// spool (disk full) drops the record, counted in `appendFailures` and warned once per kind
    /// of error. Any thread.
    public func accept(kind: RecordKind, stream: String, seq: Int, line: [UInt8]) {
        guard wanted.contains(kind) else { return }
        append(DeliveryRecord(kind: kind, stream: stream, seq: seq, line: line))
    }

    private func append(_ record: DeliveryRecord) {
        let payload = record.encoded()
        mapLock.lock()
        let index: UInt64
        do throws(SpoolError) {
            index = try spool.append(payload)
        } catch {
            appendFailures += 1
            let first = appendFailure != error
            appendFailure = error
            mapLock.unlock()
            if first { warn("\(error); records are not spooled (the sinks will not get them)") }
            return
        }
        if index < mapBase + UInt64(mapEntries.count) || mapEntries.isEmpty {
            // Indices reused after damage in the newest segment, or an empty map: start over here.
            if index < mapBase || mapEntries.isEmpty { mapEntries.removeAll(); mapBase = index }
            else { mapEntries.removeSubrange(Int(index - mapBase)...) }
        }
        while mapBase + UInt64(mapEntries.count) < index { mapEntries.append((-1, -1)) }
        mapEntries.append((streamID(record.stream), Int64(record.seq)))
        let gaps = spool.takeGaps()
        let lines = gaps.isEmpty ? [] : gapRecords(gaps)
        mapLock.unlock()
        for line in lines {
            onGap(line)
            append(line)
        }
    }

    /// The `gap` status lines for `gaps`: per sink and stream, each run of consecutive lost seqs.
    /// Under `mapLock`.
    private func gapRecords(_ gaps: [SpoolGap]) -> [DeliveryRecord] {
        var records: [DeliveryRecord] = []
        for gap in gaps {
            var lost: [Int32: [Int64]] = [:]
            var unknown: UInt64 = 0
            for index in gap.first...gap.last {
                guard index >= mapBase, index - mapBase < UInt64(mapEntries.count) else { unknown += 1; continue }
                let entry = mapEntries[Int(index - mapBase)]
                if entry.stream < 0 { unknown += 1 } else { lost[entry.stream, default: []].append(entry.seq) }
            }
            if unknown > 0 { warn("spool: sink \(gap.sink) lost \(unknown) records whose seqs are unknown") }
            for (id, seqs) in lost.sorted(by: { $0.key < $1.key }) {
                let stream = streamNames[Int(id)]
                for run in Self.runs(seqs.sorted()) {
                    let seq = sequences.sequence(for: stream).take()
                    let line = GapRecord(stream: stream, seq: seq, timeNanoseconds: WallClock.nowNanoseconds(), sink: gap.sink,
                                         firstSeq: Int(run.lowerBound), lastSeq: Int(run.upperBound)).jsonLine()
                    records.append(DeliveryRecord(kind: .status, stream: stream, seq: seq, line: line))
                }
            }
        }
        // Forget what every sink has passed.
        let lowest = spool.sinks.compactMap { try? spool.cursor(sink: $0) }.min() ?? mapBase
        if lowest > mapBase {
            let drop = Int(min(UInt64(mapEntries.count), lowest - mapBase))
            mapEntries.removeFirst(drop)
            mapBase += UInt64(drop)
        }
        return records
    }

    /// Consecutive runs of sorted numbers. Pure.
    static func runs(_ sorted: [Int64]) -> [ClosedRange<Int64>] {
        var runs: [ClosedRange<Int64>] = []
        for n in sorted {
            if let last = runs.last, n == last.upperBound + 1 { runs[runs.count - 1] = last.lowerBound...n }
            else if let last = runs.last, last.contains(n) { continue }
            else { runs.append(n...n) }
        }
        return runs
    }

    /// The sync timer: `flush` every `spool_fsync` (0.5 s with 0, where `append` syncs itself),
    /// and the map trimmed as the sinks acknowledge. Its own thread.
    private func timerLoop() {
        let interval = fsyncInterval > 0 ? fsyncInterval : 0.5
        while true {
            timer.lock()
            if !closing { _ = timer.wait(until: Date(timeIntervalSinceNow: interval)) }
            let stop = closing
            timer.unlock()
            if stop { break }
            do throws(SpoolError) { try spool.flush() } catch {}
            mapLock.lock()
            let lines = gapRecords(spool.takeGaps())
            mapLock.unlock()
            for line in lines { onGap(line); append(line) }
        }
        timerDone.signal()
    }

    /// The segment size for a cap: an eighth of it (so the cap drops an eighth at a time), at
    /// least 64 KiB and at most 8 MiB, never above the cap. Pure.
    public static func segmentBytes(maxBytes: UInt64) -> UInt64 {
        min(maxBytes, max(64 << 10, min(8 << 20, maxBytes / 8)))
    }

    /// Records appended since open that a failing spool refused. Any thread.
    public var refusedRecords: UInt64 {
        mapLock.lock(); defer { mapLock.unlock() }
        return appendFailures
    }

    /// Waits until every sink has acknowledged every record, or `timeout` seconds; returns the
    /// records still unacknowledged by the sink furthest behind. Any thread.
    public func drain(timeout: Double) -> UInt64 {
        try? spool.flush()
        let deadline = WallClock.monotonicNanoseconds() + UInt64(max(0, timeout) * 1e9)
        while true {
            let left = spool.figures().pending.values.max() ?? 0
            if left == 0 || WallClock.monotonicNanoseconds() >= deadline { return left }
            usleep(20_000)
        }
    }

    /// Stops the runners (what is unacknowledged stays spooled for the next start), the timer,
    /// and closes the spool. Any thread, once.
    public func close() {
        for runner in runners { runner.stop() }
        timer.lock(); closing = true; timer.broadcast(); timer.unlock()
        timerDone.wait()
        do throws(SpoolError) { try spool.close() } catch { warn("\(error)") }
    }

    /// The `/metrics` families of the spool and the sinks (docs/delivery.md), with HELP and TYPE
    /// lines (sink names are ids: nothing to escape). Any thread; reads figures under locks only.
    public func metricsText() -> String {
        let figures = spool.figures()
        let sinks = runners.map(\.figures)
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        func perSink(_ name: String, _ type: String, _ help: String, _ value: (SinkFigures) -> String) {
            family(name, type, help)
            for s in sinks { out += "\(name){sink=\"\(s.sink)\"} \(value(s))\n" }
        }
        family("netnet_spool_bytes", "gauge", "Bytes of spool segments on disk.")
        out += "netnet_spool_bytes \(figures.totalBytes)\n"
        family("netnet_spool_records", "gauge", "Records held in the spool (not yet passed by every sink).")
        out += "netnet_spool_records \(figures.records)\n"
        let age = figures.oldestAppendTime.map { max(0, Double(WallClock.nowNanoseconds()) - Double($0)) / 1e9 } ?? 0
        family("netnet_spool_oldest_record_age_seconds", "gauge", "Age of the oldest record held in the spool (0 when it is empty).")
        out += "netnet_spool_oldest_record_age_seconds \(String(format: "%.3f", age))\n"
        family("netnet_spool_refused_total", "counter", "Records the spool could not take (disk full or failing); no sink gets them.")
        out += "netnet_spool_refused_total \(refusedRecords)\n"
        family("netnet_spool_dropped_total", "counter", "Records the spool cap (spool_max_bytes) deleted before the sink acknowledged them; named in gap lines.")
        for s in sinks { out += "netnet_spool_dropped_total{sink=\"\(s.sink)\"} \(figures.dropped[s.sink] ?? 0)\n" }
        family("netnet_spool_pending", "gauge", "Records spooled that the sink has not acknowledged yet.")
        for s in sinks { out += "netnet_spool_pending{sink=\"\(s.sink)\"} \(figures.pending[s.sink] ?? 0)\n" }
        perSink("netnet_sink_connected", "gauge", "1 while the sink is connected (MQTT) or its last request succeeded (HTTP).") { $0.connected ? "1" : "0" }
        perSink("netnet_sink_in_flight", "gauge", "Records sent and not yet acknowledged.") { "\($0.inFlight)" }
        perSink("netnet_sink_delivered_total", "counter", "Records acknowledged by the sink (or passed over by its lines filter).") { "\($0.delivered)" }
        perSink("netnet_sink_redelivered_total", "counter", "Records sent again: in flight at a disconnect, or replayed from the spool after a restart.") { "\($0.redelivered)" }
        perSink("netnet_sink_rejected_total", "counter", "Records the far end refused for good (too large, refused topic, HTTP 4xx).") { "\($0.rejected)" }
        perSink("netnet_sink_reconnects_total", "counter", "Connections after the first.") { "\($0.reconnects)" }
        return out
    }
}

/// A `gap` status line (schema `netnet.status/1`, `state: "gap"`): sink `sink` will never get
/// stream `stream`'s records `first_seq…last_seq` (all of them lost: the spool's cap deleted them
/// before the sink acknowledged them). Value type; any thread.
public struct GapRecord: Sendable, Equatable {
    public var stream: String
    public var seq: Int
    public var timeNanoseconds: Int64
    public var sink: String
    public var firstSeq: Int
    public var lastSeq: Int

    /// The JSON line, newline included: the status keys (`previous`, `attempt`, `retry_in` null,
    /// `reconnects` 0), then `sink`, `first_seq`, `last_seq`, `lost`. Pure.
    public func jsonLine() -> [UInt8] {
        var bytes: [UInt8] = []
        StatusRecord.appendLine(stream: stream, seq: seq, timeNanoseconds: timeNanoseconds, state: "gap", previous: nil,
                                reason: "spool cap: sink \(sink) lost seq \(firstSeq)…\(lastSeq)", attempt: nil, retryIn: nil,
                                reconnects: 0, extra: { bytes in
            JSONText.appendRaw(", \"sink\": ", to: &bytes)
            JSONText.appendString(sink, to: &bytes)
            JSONText.appendRaw(", \"first_seq\": ", to: &bytes)
            JSONText.appendInt(firstSeq, to: &bytes)
            JSONText.appendRaw(", \"last_seq\": ", to: &bytes)
            JSONText.appendInt(lastSeq, to: &bytes)
            JSONText.appendRaw(", \"lost\": ", to: &bytes)
            JSONText.appendInt(lastSeq - firstSeq + 1, to: &bytes)
        }, to: &bytes)
        return bytes
    }
}
