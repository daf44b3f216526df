import Foundation
import NetnetEngine
import NetnetKernels
import NetnetMedia
import NetnetPipeline
import NetnetRing
import NetnetScene
import NetnetTracker

/// One stream as the shared inference stage sees it: its `latest` mailbox (NetnetRing), its
/// record stage (`FrameRecorder`: `seq`, carried detections), its counters and its last inferred
/// frame for snapshots. Everything but the snapshot is guarded by `Scheduler.condition`.
final class Mailbox {
    let config: StreamConfig
    let stats: StreamStats
    let slots = LatestMailbox<FrameSlot>()
    let filter: DetectionFilter
    var recorder: FrameRecorder
    /// The stream's record counter (the recorder's; status lines take from it too). Any thread.
    let sequence: StreamSequence
    /// The last inferred frame (a second reference, no copy) and its detections, for snapshots.
    /// Guarded by `snapshotLock`, never by the scheduler's lock, so a snapshot never holds up a reader.
    let snapshotLock = NSLock()
    let snapshotFrame = VideoFrame()
    var snapshotDetections: [Detection] = []
    var snapshotTracks: [TrackTag] = []
    /// The scene's counts after that frame (nil without a scene), drawn on the snapshot.
    var snapshotCounts: SceneCounts?
    /// +1 per inferred frame put here, so the live view encodes each frame once (LiveFrames.swift).
    var snapshotGeneration: UInt64 = 0
    init(config: StreamConfig, stats: StreamStats, carried: StreamNumbering = StreamNumbering()) {
        self.config = config
        self.stats = stats
        filter = DetectionFilter(threshold: config.threshold, classes: Set(config.classes))
        sequence = carried.sequence ?? StreamSequence(stream: config.id)
        recorder = FrameRecorder(stream: config.id, sequence: sequence,
                                 firstTrackID: carried.trackID, tracking: config.track ? config.tracking : nil,
                                 scene: config.track ? config.scene : nil, counts: carried.counts)
        let counts = recorder.counts
        stats.update { $0.counts = counts }
    }

    /// Copies the recorder's counts into the stats (for the API, `/metrics` and the state file).
    /// Under `Scheduler.condition`, where the recorder is.
    func publishCounts() {
        guard let counts = recorder.counts else { return }
        stats.update { $0.counts = counts }
    }
}

/// Where a stream's numbering stands: its record counter (`seq` of frame, event and status
/// lines; the `SequenceStore`'s, so it goes on across reloads and restarts), the next track id and
/// the scene's counts. A stream restarted by a reload goes on from its old numbering; a stream
/// started with the daemon, from the counts in the state directory. Value type.
struct StreamNumbering: Sendable {
    var sequence: StreamSequence?
    var trackID = 1
    var counts: SceneCounts?
}

/// The one inference stage all streams share: one thread owning the `Detector`, serving the
/// streams' mailboxes round-robin (each turn takes the next stream after the last one served that
/// has a frame ready, so a fast camera cannot starve a slow one). Publishes a `netnet.frame/1`
/// line per frame (the frames between `every` ones ride with the next sampled one and are
/// recorded first, with the tracker's predictions) and the `netnet.event/1` lines they cause. Created and stopped from any thread; the detector is used only on
/// the inference thread.
final class Scheduler: @unchecked Sendable {
    let condition = NSCondition()
    private var mailboxes: [Mailbox] = []
    private var next = 0
    private var stopping = false
    private let step: InferenceStep
    private let hub: EventHub
    private let model: ModelDescription
    /// The stream whose frame the inference thread is working on (guarded by `condition`).
    private var inFlight: Mailbox?
    private let done = DispatchSemaphore(value: 0)
    private var heartbeat: UInt64 = WallClock.monotonicNanoseconds()
    private var inferredTotal: UInt64 = 0

    init(model: Model, hub: EventHub, precision: Precision, gemm: GEMMLibrary?) throws {
        do {
            step = try InferenceStep(model: model, precision: precision, gemm: gemm)
        } catch {
            throw error.prefixed("precision = \(precision.rawValue): ")
        }
        self.hub = hub
        self.model = model.description
    }

    /// A new frame slot for a stream's reader (made only in the first frames after connecting).
    func makeSlot() -> FrameSlot { FrameSlot(model: model) }

    /// Why the inference stage runs on OpenBLAS instead of oneDNN, if it does (`Detector.gemmFallback`).
    var gemmFallback: String? { step.gemmFallback }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "netnet-inference"
        thread.stackSize = 1 << 22
        thread.start()
    }

    func add(_ mailbox: Mailbox) {
        condition.lock(); mailboxes.append(mailbox); condition.unlock()
    }

    /// Takes the stream out of the rotation; returns once inference has finished any frame of it
    /// in flight, so its recorder's `nextSeq` is final.
    func remove(_ mailbox: Mailbox) {
        condition.lock()
        mailboxes.removeAll { $0 === mailbox }
        if next >= mailboxes.count { next = 0 }
        while inFlight === mailbox { condition.wait() }
        condition.unlock()
    }

    /// Reader thread: hands over `filled`; returns a free slot to fill next, or nil when there is
    /// none yet (the reader then makes one: only in the first frames after connecting).
    func post(_ mailbox: Mailbox, _ filled: FrameSlot) -> FrameSlot? {
        condition.lock()
        let (free, dropped) = mailbox.slots.post(filled)
        if dropped, let stale = free {
            // The stale frame gets no line; the frames read before it still do, first, and the
            // first line after it counts it (and the drops it carried).
            let lost = stale.dropped + 1
            if filled.between.isEmpty { filled.dropped += lost } else { filled.between[0].dropped += lost }
            if !stale.between.isEmpty { filled.between.insert(contentsOf: stale.between, at: 0) }
            stale.between.removeAll(keepingCapacity: true)
        }
        mailbox.stats.update {
            if dropped { $0.framesDropped += 1 }
            $0.queueDepth = 1
        }
        condition.broadcast()   // the inference thread, and a `remove` may wait here too
        condition.unlock()
        return free
    }

    /// Reader thread, once connected: inference may keep its slot for the reader again.
    func attach(_ mailbox: Mailbox) {
        condition.lock(); mailbox.slots.attach(); condition.unlock()
    }

    /// Reader thread, when the connection ends: the free slots go; a frame still waiting is
    /// inferred, and inference lets go of its slot after it.
    func detach(_ mailbox: Mailbox) {
        condition.lock(); mailbox.slots.detach(); condition.unlock()
    }

    /// Reader thread, after `detach`: once the stream's last frame is recorded, records the
    /// frames read after it (`trailing`, not inferred) and ends the stream's open objects
    /// (`object_end`, `stream_end`), publishing their lines. The next connection's tracker starts afresh.
    func endConnection(_ mailbox: Mailbox, trailing: [FrameFacts]) {
        condition.lock()
        while mailbox.slots.hasReady || inFlight === mailbox { condition.wait() }
        var outputs = trailing.map { mailbox.recorder.record($0, inference: nil) }
        let ended = mailbox.recorder.finish()
        mailbox.publishCounts()
        condition.unlock()
        if !ended.isEmpty {
            if outputs.isEmpty { publish(events: ended, stream: mailbox.config.id) } else { outputs[outputs.count - 1].events += ended }
        }
        for output in outputs { publish(output) }
    }

    /// Where a mailbox's numbering stands (final once the stream is `remove`d).
    func next(of mailbox: Mailbox) -> StreamNumbering {
        condition.lock(); defer { condition.unlock() }
        return StreamNumbering(sequence: mailbox.sequence,
                               trackID: mailbox.recorder.nextTrackID, counts: mailbox.recorder.counts)
    }

    /// Ends the thread after the frames already waiting are inferred and published; waits for it.
    func stop() {
        condition.lock(); stopping = true; condition.broadcast(); condition.unlock()
        done.wait()
    }

    /// Monotonic ns of the inference loop's last turn, and frames inferred so far.
    func progress() -> (heartbeat: UInt64, inferred: UInt64) {
        condition.lock(); defer { condition.unlock() }
        return (heartbeat, inferredTotal)
    }

    private func run() {
        while true {
            condition.lock()
            var chosen: Mailbox?
            while true {
                heartbeat = WallClock.monotonicNanoseconds()
                let count = mailboxes.count
                for k in 0..<count {
                    let index = (next + k) % count
                    if mailboxes[index].slots.hasReady {
                        chosen = mailboxes[index]
                        next = (index + 1) % count
                        break
                    }
                }
                if chosen != nil || stopping { break }
                _ = condition.wait(until: Date(timeIntervalSinceNow: 0.5))
            }
            guard let mailbox = chosen else {
                condition.unlock()
                break
            }
            // The ready frame becomes ours; our previous one becomes the reader's spare.
            // Drops were counted into the slot (or the frames riding with it) by `post`.
            let (slot, _) = mailbox.slots.take()!
            inFlight = mailbox
            condition.unlock()
            mailbox.stats.update { $0.queueDepth = 0 }
            infer(slot, mailbox: mailbox)
        }
        done.signal()
    }

    /// Publishes a frame's line, then its events' lines.
    private func publish(_ output: FrameRecorder.Output) {
        var line: [UInt8] = []
        line.reserveCapacity(256 + 96 * output.record.detections.count)
        output.record.appendJSONLine(seq: output.seq, to: &line)
        hub.publish(DaemonEvent(kind: .frame, stream: output.record.stream, seq: output.seq, line: line))
        publish(events: output.events, stream: output.record.stream)
    }

    private func publish(events: [FrameRecorder.NumberedEvent], stream: String) {
        for (seq, event) in events {
            var line: [UInt8] = []
            event.appendJSONLine(seq: seq, to: &line)
            hub.publish(DaemonEvent(kind: .event, stream: stream, seq: seq, line: line))
        }
    }

    private func infer(_ slot: FrameSlot, mailbox: Mailbox) {
        if !slot.between.isEmpty {
            condition.lock()
            let predicted = slot.between.map { mailbox.recorder.record($0, inference: nil) }
            condition.unlock()
            slot.between.removeAll(keepingCapacity: true)
            for output in predicted { publish(output) }
        }
        step.run(slot, filter: mailbox.filter)
        condition.lock()
        let output = mailbox.recorder.record(slot)
        mailbox.publishCounts()
        condition.unlock()
        publish(output)
        let record = output.record
        mailbox.snapshotLock.lock()
        try? mailbox.snapshotFrame.reference(slot.frame)
        mailbox.snapshotDetections = record.detections
        mailbox.snapshotTracks = record.tracks
        mailbox.snapshotCounts = slot.counts
        mailbox.snapshotGeneration &+= 1
        mailbox.snapshotLock.unlock()
        let endToEnd = Double(WallClock.monotonicNanoseconds() - slot.readMonotonicNanoseconds) / 1e9
        let now = WallClock.nowNanoseconds()
        let inferenceSeconds = (slot.inferenceMilliseconds ?? 0) / 1e3
        mailbox.stats.update {
            $0.framesInferred += 1
            $0.inference.observe(inferenceSeconds)
            $0.endToEnd.observe(endToEnd)
            $0.lastFrameNanoseconds = now
        }
        condition.lock()
        inferredTotal += 1
        mailbox.slots.finished(slot)
        inFlight = nil
        condition.broadcast()
        condition.unlock()
    }
}

/// Settings every stream reader shares (from `[global]`). Value type; any thread.
public struct ReaderSettings: Sendable, Equatable {
    /// Seconds without a frame before the connection counts as stalled.
    public var stallTimeout: Double
    /// Seconds an open may take.
    public var openTimeout: Double
    /// Reconnect delays.
    public var backoff: Backoff

    /// The settings from a configuration. Any thread.
    public init(config: DaemonConfig) {
        stallTimeout = config.stallTimeout
        openTimeout = config.openTimeout
        backoff = Backoff(base: config.backoffBase, cap: config.backoffCap)
    }
}

/// One stream's reader: a thread per connection that connects, decodes, prepares every Nth frame
/// into the stream's mailbox and, when the connection fails, stalls or ends, schedules the next
/// attempt after an exponential backoff with full jitter and ends. While it backs off a stream has
/// no thread and no frame buffers, only its counters: a shared timer queue starts the next
/// attempt's thread. Every state change is logged, counted and published as a `netnet.status/1`
/// event. Created, stopped and queried from any thread; the `VideoSource` and `InputPreparer`
/// live on the connection's thread only.
final class StreamWorker: @unchecked Sendable {
    let config: StreamConfig
    let stats: StreamStats
    let mailbox: Mailbox
    private let settings: ReaderSettings
    private let scheduler: Scheduler
    private let hub: EventHub
    private let log: DaemonLog
    private let model: ModelDescription
    private let random: @Sendable () -> Double
    private let descriptors: DescriptorSpares?
    private let interrupter = Interrupter()
    private let condition = NSCondition()
    private var stopping = false
    private var stopReason = "stopped"
    private var heartbeat = WallClock.monotonicNanoseconds()
    private var blockingBound: Double
    /// A connection thread exists (guarded by `condition`).
    private var connectionRunning = false
    /// The scheduled next attempt while backing off (guarded by `condition`).
    private var pending: DispatchWorkItem?
    /// Attempt threads run one after another (each starts after the previous has ended), so
    /// these two need no lock.
    private var attempt = 0
    private var first = true
    private let done = DispatchSemaphore(value: 0)

    /// Where backoff delays wait: one queue for every stream; its items only start a thread.
    private static let timers = DispatchQueue(label: "netnet-backoff")

    init(config: StreamConfig, settings: ReaderSettings, model: Model, scheduler: Scheduler, hub: EventHub,
         log: DaemonLog, carried: StreamNumbering = StreamNumbering(), random: @escaping @Sendable () -> Double,
         descriptors: DescriptorSpares?) {
        self.config = config
        self.descriptors = descriptors
        self.settings = settings
        self.scheduler = scheduler
        self.hub = hub
        self.log = log
        self.random = random
        stats = StreamStats(id: config.id, url: Redaction.redact(config.url))
        mailbox = Mailbox(config: config, stats: stats, carried: carried)
        self.model = model.description
        blockingBound = max(settings.openTimeout, settings.stallTimeout)
    }

    func start() {
        scheduler.add(mailbox)
        launch()
    }

    /// Starts a connection thread unless stopping. Any thread (the timer queue, `start`).
    private func launch() {
        condition.lock()
        guard !stopping else { condition.unlock(); return }
        connectionRunning = true
        pending = nil
        heartbeat = WallClock.monotonicNanoseconds()
        condition.unlock()
        let thread = Thread { [self] in connectionThread() }
        thread.name = "netnet-reader-\(config.id)"
        thread.stackSize = 1 << 22
        thread.start()
    }

    private func connectionThread() {
        FFmpegLog.setThreadStream(config.id)   // FFmpeg's messages from this thread: `stream ID: …`
        let delay = connect()
        condition.lock()
        connectionRunning = false
        guard !stopping, let delay else {
            condition.unlock()
            finishStop()
            return
        }
        let item = DispatchWorkItem { [self] in launch() }
        pending = item
        heartbeat = WallClock.monotonicNanoseconds()
        condition.unlock()
        Self.timers.asyncAfter(deadline: .now() + delay, execute: item)
    }

    /// Asks the reader to end (`reason` goes into the `stopped` event) without waiting: a blocked
    /// open or read returns within about 0.1 s, a pending retry is cancelled. Any thread.
    func requestStop(reason: String) {
        condition.lock()
        guard !stopping else { condition.unlock(); return }
        stopping = true
        stopReason = reason
        let running = connectionRunning
        pending?.cancel()
        pending = nil
        condition.broadcast()
        condition.unlock()
        interrupter.interrupt()
        if !running { finishStop() }
    }

    /// Waits until the reader has ended (after `requestStop`). Any thread, once.
    func waitStopped() {
        done.wait()
        scheduler.remove(mailbox)
    }

    /// `requestStop` then `waitStopped`. Any thread, once.
    func stop(reason: String) {
        requestStop(reason: reason)
        waitStopped()
    }

    private func finishStop() {
        condition.lock()
        let why = stopReason
        condition.unlock()
        transition(.stopped, reason: why)
        done.signal()
    }

    /// Whether the reader is making progress: a connection thread is never inside one blocking
    /// call (open, read) longer than its bound; a stream backing off has no thread and is. Any thread.
    func isProgressing(now: UInt64) -> Bool {
        condition.lock(); defer { condition.unlock() }
        return !connectionRunning || stopping || Double(now &- heartbeat) / 1e9 < blockingBound + 10
    }

    private var isStopping: Bool {
        condition.lock(); defer { condition.unlock() }
        return stopping
    }

    private func beat() {
        condition.lock(); heartbeat = WallClock.monotonicNanoseconds(); condition.unlock()
    }

    private func transition(_ state: StreamState, reason: String? = nil, attempt: Int? = nil, retryIn: Double? = nil,
                            reconnect: Bool = false) {
        beat()
        // The reason may quote a URL or an FFmpeg message: status lines and the API never show credentials.
        let reason = reason.map(Redaction.redact)
        let now = WallClock.nowNanoseconds()
        let (previous, reconnects) = stats.update { s -> (StreamState?, UInt64) in
            let previous = s.transitions.isEmpty ? nil : s.state
            if reconnect { s.reconnects += 1 }
            s.state = state
            s.transitions[state.rawValue, default: 0] += 1
            s.stateSinceNanoseconds = now
            if let reason, state != .streaming { s.lastError = reason }
            return (previous, s.reconnects)
        }
        let record = StatusRecord(stream: config.id, seq: mailbox.sequence.take(), timeNanoseconds: now, state: state, previous: previous, reason: reason,
                                  attempt: attempt, retryIn: retryIn, reconnects: reconnects)
        var message = "stream \(config.id): \(state.rawValue)"
        if let reason { message += " (\(reason))" }
        if let retryIn { message += ", retry \(attempt.map { "#\($0 + 1)" } ?? "") in \(String(format: "%.2f", retryIn)) s" }
        log.log(state == .streaming || state == .connecting || state == .stopped ? .info : .warning, message)
        hub.publish(DaemonEvent(kind: .status, stream: config.id, seq: record.seq, line: record.jsonLine()))
    }

    /// One connection, from `connecting` to its end; returns the backoff delay before the next
    /// attempt (after publishing `backing_off`), or nil when stopping. Connection thread.
    private func connect() -> Double? {
        transition(.connecting, reason: nil, reconnect: !first)
        first = false
        interrupter.reset()
        if isStopping { return nil }
        var options = VideoSourceOptions(url: config.url)
        options.openTimeout = settings.openTimeout
        options.readTimeout = settings.stallTimeout
        options.interrupter = interrupter
        options.decoderThreads = 1
        options.formatOptions = config.inputOptions
        let streamID = config.id
        let log = self.log
        options.onWarning = { log.debug("stream \(streamID): \($0)") }
        var reason: String
        var stalled = false
        var failed = false   // a read or decode error, not the input's end
        do {
            // A connection keeps its descriptors: without room for them and one for the runtime
            // the attempt fails as a refused open would, and backs off.
            if let descriptors, !descriptors.mayOpen() {
                throw MediaError("\(Redaction.redact(config.url)): \(String(cString: strerror(EMFILE)))", code: -EMFILE)
            }
            let source: VideoSource
            do {
                source = try VideoSource(options: options)
            } catch let error as MediaError where error.code == -EMFILE || error.code == -ENFILE {
                descriptors?.relieve()
                throw error
            }
            beat()
            // A scene drawn for another camera (a point outside this one's frame) cannot apply.
            if config.track { try config.scene?.check(width: source.width, height: source.height) }
            // Frame memory exists from here to the end of the connection only.
            let reader = FrameReader(source: source, model: model, sampling: FrameSampling(every: config.every))
            scheduler.attach(mailbox)
            // Frames read since the last sampled one: they ride with the next (`FrameSlot.between`).
            var notInferred: [FrameFacts] = []
            defer {
                scheduler.detach(mailbox)
                scheduler.endConnection(mailbox, trailing: notInferred)
            }
            var slot: FrameSlot?
            var streamingSince: UInt64?
            var lastDecoded = 0, lastErrors = 0
            // A file (or finite HTTP file) is played at its frame rate, like a camera, instead of
            // being decoded as fast as the CPU allows; live inputs set their own pace.
            let paced = !source.isLive
            var pacingOrigin: (clock: UInt64, pts: Double)?
            reason = "ended"
            do {
                while !isStopping {
                    let current = slot ?? scheduler.makeSlot()
                    slot = current
                    guard try reader.read(into: current, audioSink: nil) else { break }
                    if paced, let pts = current.frame.ptsSeconds {
                        if let origin = pacingOrigin {
                            let due = Double(origin.clock) / 1e9 + (pts - origin.pts)
                            let wait = due - Double(WallClock.monotonicNanoseconds()) / 1e9
                            // A jump (pts going back, a gap over 10 s) restarts the pacing.
                            if wait > 10 || pts < origin.pts { pacingOrigin = (WallClock.monotonicNanoseconds(), pts) }
                            else if wait > 0 { waitInterruptibly(seconds: wait) }
                            if isStopping { break }
                        } else {
                            pacingOrigin = (WallClock.monotonicNanoseconds(), pts)
                        }
                    }
                    let now = WallClock.monotonicNanoseconds()
                    beat()
                    if streamingSince == nil {
                        streamingSince = now
                        transition(.streaming, reason: nil)
                    }
                    let decoded = source.framesDecoded, errors = source.decodeErrors
                    stats.update {
                        $0.framesDecoded += UInt64(decoded - lastDecoded)
                        $0.decodeErrors += UInt64(errors - lastErrors)
                    }
                    lastDecoded = decoded
                    lastErrors = errors
                    current.dropped = 0
                    guard current.sampled else {
                        notInferred.append(FrameFacts(current))
                        continue
                    }
                    swap(&current.between, &notInferred)
                    notInferred.removeAll(keepingCapacity: true)
                    slot = scheduler.post(mailbox, current)
                }
            } catch {
                reason = "\(error)"
                failed = true
                stalled = (error as? MediaError)?.kind == .timedOut
            }
            // A connection that delivered frames for a while earns a fresh backoff.
            if let since = streamingSince, Double(WallClock.monotonicNanoseconds() - since) / 1e9 >= max(settings.backoff.cap, 10) {
                attempt = 0
            }
            if streamingSince != nil && failed && !stalled { attempt = 0 }
        } catch {
            reason = "\(error)"
        }
        if isStopping { return nil }
        if stalled { transition(.stalled, reason: reason) }
        let delay = settings.backoff.delay(attempt: attempt, unit: random())
        transition(.backingOff, reason: reason, attempt: attempt, retryIn: delay)
        attempt += 1
        return delay
    }

    private func waitInterruptibly(seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        while !stopping && Date() < deadline {
            heartbeat = WallClock.monotonicNanoseconds()
            _ = condition.wait(until: min(deadline, Date(timeIntervalSinceNow: 1)))
        }
        condition.unlock()
    }
}

/// The daemon's pipelines: one reader per enabled stream, one shared inference thread, the event
/// hub. `apply` adds, removes and restarts streams for a reloaded configuration without touching
/// the others. All methods may be called from any thread; `apply` and `stop` are serialised.
public final class Supervisor: @unchecked Sendable {
    /// Where events go (sinks and SSE clients subscribe here).
    public let hub: EventHub
    private let model: Model
    private let log: DaemonLog
    private let scheduler: Scheduler
    private let random: @Sendable () -> Double
    private let descriptors: DescriptorSpares?
    private let countsStore: CountsStore?
    private let sequences: SequenceStore
    private let saver = NSCondition()
    private var saverStopping = false
    private var saverRunning = false
    private let saverDone = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private let applyLock = NSLock()
    private var workers: [StreamWorker] = []
    private var settings: ReaderSettings
    private var removedStats: [String: StreamStats] = [:]
    private var stopped = false
    private let started = WallClock.monotonicNanoseconds()

    /// A supervisor for `config`'s enabled streams sharing `model`; nothing runs before `start`.
    /// `random` gives the backoff jitter (uniform in [0, 1)); `descriptors`, the daemon's
    /// spare-descriptor policy, makes a connection attempt wait for descriptor room (nil: none);
    /// `counts` keeps the scene counts across restarts (streams start from what it holds, and
    /// a thread writes them back once a second while they change; nil: memory only).
    /// `sequences` gives each stream its record counter (nil: in memory, from 0).
    /// Throws one line if the inference stage cannot run in `config.precision` (bf16 on a CPU
    /// without it). Any thread.
    public init(config: DaemonConfig, model: Model, hub: EventHub, log: DaemonLog,
                random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
                descriptors: DescriptorSpares? = nil, counts: CountsStore? = nil,
                sequences: SequenceStore? = nil) throws {
        self.descriptors = descriptors
        self.sequences = try sequences ?? SequenceStore(directory: nil)
        countsStore = counts
        self.model = model
        self.hub = hub
        self.log = log
        self.random = random
        settings = ReaderSettings(config: config)
        scheduler = try Scheduler(model: model, hub: hub, precision: config.precision, gemm: config.gemm)
        if let reason = scheduler.gemmFallback { log.warning(reason) }
        workers = config.enabledStreams.map { makeWorker($0, carried: kept($0)) }
    }

    /// A stream's numbering when it starts afresh: zero, with the counts the store kept.
    private func kept(_ stream: StreamConfig) -> StreamNumbering {
        let sequence = sequences.sequence(for: stream.id)
        guard stream.track, let scene = stream.scene, let countsStore else { return StreamNumbering(sequence: sequence) }
        return StreamNumbering(sequence: sequence, counts: countsStore.load(stream: stream.id, scene: scene))
    }

    private func makeWorker(_ stream: StreamConfig, carried: StreamNumbering = StreamNumbering()) -> StreamWorker {
        StreamWorker(config: stream, settings: settings, model: model, scheduler: scheduler, hub: hub, log: log,
                     carried: carried, random: random, descriptors: descriptors)
    }

    /// Starts the inference thread and every reader. Any thread, once.
    public func start() {
        scheduler.start()
        lock.lock(); let current = workers; lock.unlock()
        for worker in current { worker.start() }
        if countsStore != nil {
            saver.lock(); saverRunning = true; saver.unlock()
            let thread = Thread { [self] in saveCountsLoop() }
            thread.name = "netnet-counts"
            thread.start()
        }
    }

    /// The counts thread: once a second, each stream's counts that changed go to the store.
    private func saveCountsLoop() {
        while true {
            saver.lock()
            if !saverStopping { _ = saver.wait(until: Date(timeIntervalSinceNow: 1)) }
            let stopping = saverStopping
            saver.unlock()
            if stopping { break }
            lock.lock(); let current = workers; lock.unlock()
            for worker in current { saveCounts(of: worker) }
        }
        saverDone.signal()
    }

    private func saveCounts(of worker: StreamWorker) {
        guard let countsStore, let counts = worker.stats.snapshot().counts else { return }
        countsStore.save(stream: worker.config.id, scene: worker.config.scene?.file, counts: counts)
    }

    /// What a reload changed, by stream id. Value type.
    public struct ReloadResult: Sendable, Equatable {
        /// Streams started.
        public var added: [String] = []
        /// Streams stopped.
        public var removed: [String] = []
        /// Streams restarted with new settings.
        public var changed: [String] = []
        /// Streams left running as they were.
        public var unchanged: [String] = []
    }

    /// Applies a new configuration's streams: removed or disabled streams stop, new ones start,
    /// changed ones restart; the others keep running untouched. Global reader settings
    /// (timeouts, backoff) apply to streams started from now on. Any thread.
    @discardableResult
    public func apply(_ config: DaemonConfig) -> ReloadResult {
        applyLock.lock(); defer { applyLock.unlock() }
        var result = ReloadResult()
        let newSettings = ReaderSettings(config: config)
        lock.lock()
        guard !stopped else { lock.unlock(); return result }
        let current = workers
        lock.unlock()
        let wanted = config.enabledStreams
        let wantedByID = Dictionary(uniqueKeysWithValues: wanted.map { ($0.id, $0) })
        var keep: [String: StreamWorker] = [:]
        var carried: [String: StreamNumbering] = [:]
        let settingsChanged = newSettings != settings
        settings = newSettings
        for worker in current {
            if let new = wantedByID[worker.config.id], new.sameSettings(as: worker.config), !settingsChanged {
                keep[worker.config.id] = worker
                result.unchanged.append(worker.config.id)
            } else {
                let isChange = wantedByID[worker.config.id] != nil
                worker.stop(reason: isChange ? "configuration changed" : "removed by reload")
                saveCounts(of: worker)
                if isChange {
                    result.changed.append(worker.config.id)
                    carried[worker.config.id] = scheduler.next(of: worker.mailbox)   // seqs and track ids go on
                } else {
                    result.removed.append(worker.config.id)
                }
                lock.lock(); removedStats[worker.config.id] = worker.stats; lock.unlock()
            }
        }
        var next: [StreamWorker] = []
        var fresh: [StreamWorker] = []
        for stream in wanted {
            if let worker = keep[stream.id] {
                next.append(worker)
            } else {
                let worker = makeWorker(stream, carried: carried[stream.id] ?? kept(stream))
                if !result.changed.contains(stream.id) { result.added.append(stream.id) }
                next.append(worker)
                fresh.append(worker)
            }
        }
        lock.lock()
        workers = next
        for worker in next { removedStats[worker.config.id] = nil }
        lock.unlock()
        for worker in fresh { worker.start() }
        return result
    }

    /// Stops the readers (each within about 0.1 s), lets the inference thread finish the frames
    /// already waiting, and returns when every pipeline thread has ended. Any thread; idempotent.
    public func stop() {
        applyLock.lock(); defer { applyLock.unlock() }
        lock.lock()
        if stopped { lock.unlock(); return }
        stopped = true
        let current = workers
        lock.unlock()
        // Interrupt all at once (no thread each), then wait for each.
        for worker in current { worker.requestStop(reason: "daemon stopping") }
        for worker in current { worker.waitStopped() }
        scheduler.stop()
        saver.lock()
        saverStopping = true
        let running = saverRunning
        saver.broadcast()
        saver.unlock()
        if running { saverDone.wait() }
        // The last counts, after the open objects left their zones.
        for worker in current { saveCounts(of: worker) }
    }

    /// The running streams' stats, in configuration order. Any thread.
    public func streamStats() -> [StreamStats] {
        lock.lock(); defer { lock.unlock() }
        return workers.map(\.stats)
    }

    /// The running streams' configurations, in order. Any thread.
    public func streamConfigs() -> [StreamConfig] {
        lock.lock(); defer { lock.unlock() }
        return workers.map(\.config)
    }

    /// Whether every pipeline thread makes progress: the inference loop turned within the last
    /// `seconds`, and no reader sits in a blocking call longer than its bound. Any thread.
    public func isProgressing(within seconds: Double) -> Bool {
        let now = WallClock.monotonicNanoseconds()
        let (beat, _) = scheduler.progress()
        guard Double(now &- beat) / 1e9 < seconds else { return false }
        lock.lock(); let current = workers; lock.unlock()
        return current.allSatisfy { $0.isProgressing(now: now) }
    }

    /// The latest inferred frame of stream `id` as JPEG with its detections outlined, or nil when the
    /// stream is unknown or has no inferred frame yet. Encodes on the calling thread (a few ms at
    /// 1080p): call it from a thread that may block, not from Swift's cooperative pool. Any thread.
    public func snapshotJPEG(stream id: String) -> [UInt8]? {
        guard let picture = mailbox(forStream: id)?.latestPicture() else { return nil }
        // The scene the stream runs with (none when tracking is off), with its counts at that frame.
        var drawing = picture.scene.map { SceneDrawing(scene: $0, width: picture.frame.width, height: picture.frame.height) }
        do {
            return try SnapshotEncoder().jpeg(picture.frame, boxes: picture.boxes, overlay: drawing?.overlay(counts: picture.counts))
        } catch {
            log.warning("stream \(id): snapshot: \(error)")
            return nil
        }
    }

    /// The running stream `id`'s mailbox (for its snapshot frame), or nil. Any thread.
    func mailbox(forStream id: String) -> Mailbox? {
        lock.withLock { workers.first { $0.config.id == id }?.mailbox }
    }

    /// Frames inferred so far, all streams. Any thread.
    public var framesInferred: UInt64 { scheduler.progress().inferred }

    /// Seconds since the supervisor was created. Any thread.
    public var uptimeSeconds: Double { Double(WallClock.monotonicNanoseconds() - started) / 1e9 }
}
