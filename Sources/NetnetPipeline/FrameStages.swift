import Foundation
import NetnetEngine
import NetnetKernels
import NetnetMedia
import NetnetScene
import NetnetTracker

// The stages a frame goes through, shared by both drivers: `annotate` (`AnnotateJob`, one input,
// a `StageRing`) and `serve` (the daemon's `Supervisor`, many streams, a `LatestMailbox` each and
// one inference stage serving them in turn). Reader → inference → record → sinks; each stage here
// exists once and the drivers only decide how slots travel between the threads.

/// One frame's trip through a pipeline: the decoded picture, the network input prepared from it,
/// when it was read, and what inference found. Allocated once per ring or mailbox slot and reused
/// for every frame; it belongs to whichever stage holds it (the ring or mailbox hands it over).
public final class FrameSlot {
    /// The decoded picture (a reference to the decoder's buffers).
    public let frame = VideoFrame()
    /// The network input prepared from `frame` (only when `sampled`).
    public let input: AlignedBuffer
    /// Whether the network runs on this frame (`FrameSampling`); set by the reader.
    public var sampled = false
    /// The input's frame rate, if it says (for the tracker's times); set by the reader.
    public var frameRate: Double?
    /// Wall-clock time the reader read the frame, ns since the Unix epoch: the record's `time`.
    public var readNanoseconds: Int64 = 0
    /// Monotonic time the reader read the frame, for end-to-end latency.
    public var readMonotonicNanoseconds: UInt64 = 0
    /// Frames dropped (by the `latest` policy) since the previous frame of this stream that
    /// reached the record stage; set by the driver when the frame leaves its ring or mailbox.
    public var dropped = 0
    /// Whether inference ran on this frame.
    public var inferred = false
    /// Forward pass plus post-processing, ms; nil when not inferred.
    public var inferenceMilliseconds: Double?
    /// The detections inference found (empty when not inferred: the recorder carries them).
    public var detections: [Detection] = []
    /// Frames read before this one, after the stream's previous sampled frame, that are not
    /// inferred (`serve` hands only sampled frames to its shared inference stage; these ride
    /// along so their lines are recorded in frame order). Empty in `annotate`, whose ring
    /// carries every frame.
    public var between: [FrameFacts] = []
    /// The scene's counts once this frame is recorded (nil without a scene), for drawing.
    public var counts: SceneCounts?

    /// A slot whose network input holds `inputCount` floats. Any thread.
    public init(inputCount: Int) { input = AlignedBuffer(count: inputCount) }

    /// A slot sized for `model`'s input. Any thread.
    public convenience init(model: ModelDescription) { self.init(inputCount: 3 * model.inputSize * model.inputSize) }
}

/// Which frames go through the network: `every = N` (`--every N`, a stream's `every`) runs it on
/// frame 0 and every N-th frame after it (the frame index counts every decoded frame). A frame in
/// between is not inferred: its record holds the tracker's predictions (or, with tracking off,
/// the last inferred frame's detections; `FrameRecorder`), in `annotate` and `serve` alike. Value type.
public struct FrameSampling: Sendable, Equatable {
    /// N: one frame in N is inferred (≥ 1).
    public let every: Int
    /// Every N-th frame; `every` below 1 counts as 1.
    public init(every: Int) { self.every = max(1, every) }
    /// Whether frame `index` (0-based) goes through the network. Pure.
    public func isSampled(frame index: Int) -> Bool { index % every == 0 }
}

extension Normalisation {
    /// The input normalisation a model file's header names (channel order, mean, std). Pure.
    public init(_ description: ModelDescription) {
        self.init(order: description.normalisation.order == "rgb" ? .rgb : .bgr,
                  mean: description.normalisation.mean, std: description.normalisation.std)
    }
}

extension InputPreparer {
    /// A preparer for `model`'s input size and normalisation. Any thread; then one thread at a time.
    public convenience init(model: ModelDescription) {
        self.init(inputSize: model.inputSize, normalisation: Normalisation(model))
    }
}

extension DrawnBox {
    /// The box drawn for `detection`: its label, its track (`person #12`) when it has one, and its
    /// score with two decimals when `withScore` (annotated video; snapshots show no score). A
    /// tracked box takes its track's colour, an untracked one its class's; a predicted one
    /// (`origin: tracker`) is dashed. Pure.
    public init(_ detection: Detection, track: TrackTag = .untracked, withScore: Bool) {
        var label = detection.label
        if let id = track.trackID { label += " #\(id)" }
        if withScore { label += " \(String(format: "%.2f", detection.score))" }
        self.init(x1: detection.box[0], y1: detection.box[1], x2: detection.box[2], y2: detection.box[3],
                  label: label, classIndex: track.trackID ?? detection.classIndex, dashed: track.origin == .tracker)
    }
}

/// The reader stage: decodes the next frame of a `VideoSource` into a slot, stamps when it was
/// read, and prepares the network input when the frame is sampled. Owns its `InputPreparer`; one
/// thread at a time (the reader thread), the source too while it reads.
public final class FrameReader {
    /// The input it reads.
    public let source: VideoSource
    /// Which frames are prepared for the network.
    public let sampling: FrameSampling
    private let preparer: InputPreparer

    /// A reader of `source` for `model`'s input, preparing the frames `sampling` picks. Any thread.
    public init(source: VideoSource, model: ModelDescription, sampling: FrameSampling) {
        self.source = source
        self.sampling = sampling
        preparer = InputPreparer(model: model)
    }

    /// Reads the next frame into `slot` (audio packets met on the way go to `audioSink`): stamps
    /// its read time and `sampled`, and prepares its input if sampled. Returns false at the end of
    /// the input; throws `MediaError` (a read, decode or size-limit failure). Reader thread.
    public func read(into slot: FrameSlot, audioSink: ((AudioPacket) -> Void)?) throws -> Bool {
        guard try source.nextFrame(into: slot.frame, audioSink: audioSink) else { return false }
        slot.readMonotonicNanoseconds = WallClock.monotonicNanoseconds()
        slot.readNanoseconds = WallClock.nowNanoseconds()
        slot.sampled = sampling.isSampled(frame: slot.frame.index)
        slot.frameRate = source.frameRate
        slot.inferred = false
        slot.inferenceMilliseconds = nil
        slot.detections = []
        if slot.sampled { try preparer.prepare(frame: slot.frame, into: slot.input.pointer) }
        return true
    }
}

/// What inference keeps of a frame's detections: those at or above `threshold` and, when
/// `classes` is not empty, only those classes (a stream's `classes`). Value type.
public struct DetectionFilter: Sendable, Equatable {
    /// The lowest score kept.
    public var threshold: Float
    /// Labels kept; empty keeps every class.
    public var classes: Set<String>
    /// A filter keeping scores ≥ `threshold` of `classes` (empty: all). Pure.
    public init(threshold: Float, classes: Set<String> = []) {
        self.threshold = threshold
        self.classes = classes
    }
}

/// The inference stage: one `Detector` run on sampled slots. Owns the detector; one thread at a
/// time (an inference thread). Several steps may share a `Model`.
public final class InferenceStep {
    /// The detector it runs.
    public let detector: Detector
    private let inputCount: Int

    /// A step running `model` at `precision` on `gemm` (nil: the default library) with
    /// `convolution`'s Winograd rule. Throws the detector's one-line error (bf16 without
    /// AVX512_BF16, oneDNN refusing). Any thread.
    public init(model: Model, precision: Precision, gemm: GEMMLibrary?, convolution: ConvolutionAlgorithm = .auto) throws(OneDNNError) {
        detector = try Detector(model: model, convolution: convolution, precision: precision, gemm: gemm)
        inputCount = 3 * model.description.inputSize * model.description.inputSize
    }

    /// Why the detector runs on OpenBLAS instead of oneDNN, if it does: a warning to show once.
    public var gemmFallback: String? { detector.gemmFallback }

    /// Runs the network on `slot` if it is sampled and keeps what `filter` passes, with the time it
    /// took; a slot not sampled comes out not inferred, with no detections. Inference thread.
    public func run(_ slot: FrameSlot, filter: DetectionFilter) {
        guard slot.sampled else {
            slot.inferred = false
            slot.inferenceMilliseconds = nil
            slot.detections = []
            return
        }
        let start = WallClock.monotonicNanoseconds()
        detector.input.update(from: slot.input.pointer, count: inputCount)
        detector.forward()
        var detections = detector.detections(threshold: filter.threshold, imageWidth: slot.frame.width,
                                             imageHeight: slot.frame.height)
        if !filter.classes.isEmpty { detections.removeAll { !filter.classes.contains($0.label) } }
        slot.detections = detections
        slot.inferenceMilliseconds = Double(WallClock.monotonicNanoseconds() - start) / 1e6
        slot.inferred = true
    }
}

/// The record stage of one stream: turns its frames, in stream order, into `FrameRecord`s with
/// their `seq` from the stream's `StreamSequence` (the one counter a stream's frame, event and
/// status lines share: increasing, unique across reconnects, reloads and — with a `SequenceStore`
/// on disk — restarts), and the tracker's starts and ends into `ObjectEvent`s numbered from the
/// same counter right after the frame they follow.
/// With tracking on (the default) it runs the stream's `Tracker`: each detection gets its track
/// (`track_id`), and a frame not inferred (`FrameSampling`) gets the tracks' predicted boxes
/// (`origin: tracker`). With tracking off, a frame not inferred carries the last inferred frame's
/// detections. The slot keeps what the record says, for drawing. When the frame index goes back
/// (a reconnect) or `finish` is called (the stream ended), the open objects end (`stream_end`)
/// and the next frame starts a new tracker whose ids go on. Value type; one thread at a time (the
/// writer or inference thread, or under its driver's lock).
public struct FrameRecorder: Sendable {
    /// An object event with its `seq` (from the stream's one counter).
    public typealias NumberedEvent = (seq: Int, event: ObjectEvent)
    /// A frame's line number and record, and the events it caused (after the frame's line).
    public typealias Output = (seq: Int, record: FrameRecord, events: [NumberedEvent])

    /// The stream id the records carry.
    public let stream: String
    /// The stream's record counter (shared with its status lines).
    public let sequence: StreamSequence
    /// The `seq` the next record gets (if no status line takes it first).
    public var nextSeq: Int { sequence.peek }
    /// The tracker's settings, or nil with tracking off.
    public let tracking: TrackerSettings?
    /// The scene whose rules run over the tracks (masks drop detections first), or nil.
    public let scene: Scene?
    /// The scene's counts so far (nil without a scene): crossings and entries since counting
    /// began (carried from `init`'s `counts`), objects in the zones now.
    public private(set) var counts: SceneCounts?
    private var tracker: Tracker?
    private var rules: SceneRules?
    private let firstTrackID: Int
    private var lastFacts: FrameFacts?
    private var carried: [Detection] = []
    private var labels: [Int: String] = [:]

    /// A recorder for `stream` numbering its records from `sequence` (nil: a fresh counter from
    /// 0, in memory), whose first track gets id `firstTrackID`, tracking with `tracking` (nil:
    /// off). Pure.
    /// With `scene`, its masks drop detections before tracking and its lines and zones turn the
    /// confirmed tracks into `cross`, `enter`, `leave` and `loiter` events (tracking must be on);
    /// its counts go on from `counts` (a restart's or reload's, `SceneCounts.carried(to:)`).
    public init(stream: String, sequence: StreamSequence? = nil, firstTrackID: Int = 1,
                tracking: TrackerSettings? = TrackerSettings(), scene: Scene? = nil, counts: SceneCounts? = nil) {
        self.stream = stream
        self.sequence = sequence ?? StreamSequence(stream: stream)
        self.firstTrackID = firstTrackID
        self.tracking = tracking
        self.scene = scene
        rules = scene.map(SceneRules.init)
        self.counts = scene.map { counts?.carried(to: $0) ?? SceneCounts(scene: $0) }
    }

    /// The id the stream's next confirmed track gets (ids go on across reconnects and reloads).
    public var nextTrackID: Int { tracker?.nextID ?? pendingTrackID }
    private var pendingTrackID: Int { retiredNextID ?? firstTrackID }
    private var retiredNextID: Int?

    /// The next record, from `slot`'s frame, read time, drops and inference (see the type); the
    /// slot's detections become the record's (predicted or carried on a frame not inferred).
    public mutating func record(_ slot: FrameSlot) -> Output {
        let output = record(FrameFacts(slot), inference: slot.inferred ? (slot.detections, slot.inferenceMilliseconds) : nil)
        slot.detections = output.record.detections
        slot.counts = counts
        return output
    }

    /// The next record for a frame with `facts`, inferred with these detections and time, or not
    /// inferred (nil: the tracker's predictions, or the carried detections with tracking off).
    /// A frame index that goes back without `finish` first ends the open objects here: their
    /// `stream_end` events come first in `events`.
    public mutating func record(_ facts: FrameFacts, inference: (detections: [Detection], milliseconds: Double?)?) -> Output {
        var events: [ObjectEvent] = []
        var detections: [Detection]
        var tags: [TrackTag] = []
        if let tracking {
            if let last = lastFacts, facts.index <= last.index { events += finishEvents() }
            if tracker == nil {
                tracker = Tracker(settings: tracking, frameRate: facts.frameRate ?? 0, firstID: pendingTrackID)
            }
            let time = facts.pts ?? Double(facts.index) / tracker!.frameRate
            let trackEvents: [TrackEvent]
            if let inference {
                detections = inference.detections
                if let scene, !scene.masks.isEmpty {
                    detections.removeAll { scene.isMasked(Scene.anchor(x1: $0.box[0], y1: $0.box[1], x2: $0.box[2], y2: $0.box[3])) }
                }
                for detection in detections { labels[detection.classIndex] = detection.label }
                let inputs = detections.map {
                    TrackerInput(box: TrackBox(x1: $0.box[0], y1: $0.box[1], x2: $0.box[2], y2: $0.box[3]), score: $0.score,
                                 classIndex: $0.classIndex)
                }
                let (boxes, found) = tracker!.update(frame: facts.index, time: time, stamp: facts.readNanoseconds, detections: inputs)
                trackEvents = found
                tags = [TrackTag](repeating: .untracked, count: detections.count)
                for box in boxes {
                    guard let i = box.inputIndex else { continue }
                    tags[i] = TrackTag(trackID: box.trackID, origin: .detector, stationary: box.stationary, estimate: box.estimate)
                }
            } else {
                let (boxes, found) = tracker!.update(frame: facts.index, time: time, stamp: facts.readNanoseconds, detections: nil)
                trackEvents = found
                detections = boxes.map {
                    Detection(classIndex: $0.classIndex, label: labels[$0.classIndex] ?? "", score: $0.score,
                              box: [$0.box.x1, $0.box.y1, $0.box.x2, $0.box.y2])
                }
                tags = boxes.map { TrackTag(trackID: $0.trackID, origin: .tracker, stationary: $0.stationary, estimate: $0.estimate) }
            }
            lastFacts = facts
            for event in trackEvents where event.isStart { events.append(number(event, at: facts, reason: .lost)) }
            if rules != nil { events += sceneEvents(detections: detections, tags: tags, at: facts, time: time) }
            for event in trackEvents where !event.isStart {
                if case let .ended(summary) = event { events += leaving(summary, at: facts) }
                events.append(number(event, at: facts, reason: .lost))
            }
        } else {
            if let inference { carried = inference.detections }
            detections = carried
        }
        let record = FrameRecord(stream: stream, frame: facts.index, pts: facts.pts,
                                 timeNanoseconds: facts.readNanoseconds, width: facts.width, height: facts.height,
                                 dropped: facts.dropped, inferenceMilliseconds: inference?.milliseconds,
                                 inferred: inference != nil, detections: detections, tracks: tags)
        let seq = sequence.take()
        return (seq, record, events.map { numbered($0) })
    }

    /// The stream ended (or stopped, or reconnects): every open object ends (`stream_end`, decided
    /// on the last recorded frame), and the next record starts a new tracker whose ids go on.
    public mutating func finish() -> [NumberedEvent] {
        finishEvents().map { numbered($0) }
    }

    private mutating func finishEvents() -> [ObjectEvent] {
        guard var ending = tracker, let last = lastFacts else { tracker = nil; lastFacts = nil; return [] }
        var events: [ObjectEvent] = []
        for event in ending.finish() {
            if case let .ended(summary) = event { events += leaving(summary, at: last) }
            events.append(number(event, at: last, reason: .streamEnd))
        }
        retiredNextID = ending.nextID
        tracker = nil
        lastFacts = nil
        rules = scene.map(SceneRules.init)
        return events
    }

    /// The scene rules' events for this frame's confirmed tracks.
    private mutating func sceneEvents(detections: [Detection], tags: [TrackTag], at facts: FrameFacts, time: Double) -> [ObjectEvent] {
        var objects: [SceneObject] = []
        var byTrack: [Int: Detection] = [:]
        for (i, detection) in detections.enumerated() {
            guard i < tags.count, let id = tags[i].trackID else { continue }
            byTrack[id] = detection
            objects.append(SceneObject(trackID: id, label: detection.label,
                                       position: Scene.anchor(x1: detection.box[0], y1: detection.box[1], x2: detection.box[2], y2: detection.box[3])))
        }
        guard let found = rules?.update(frame: facts.index, time: time, objects: objects), !found.isEmpty else { return [] }
        for event in found { counts?.apply(event) }
        return found.map { event in
            let detection = byTrack[event.trackID]!
            return ObjectEvent(stream: stream, frame: facts, kind: ObjectEventKind(event.kind), trackID: event.trackID,
                               classIndex: detection.classIndex, label: detection.label, score: detection.score,
                               box: detection.box, scene: event)
        }
    }

    /// The `leave` events of a track that ended inside zones (before its `object_end`).
    private mutating func leaving(_ summary: TrackSummary, at facts: FrameFacts) -> [ObjectEvent] {
        guard let found = rules?.end(trackID: summary.trackID), !found.isEmpty else { return [] }
        for event in found { counts?.apply(event) }
        let box = summary.lastBox
        return found.map {
            ObjectEvent(stream: stream, frame: facts, kind: ObjectEventKind($0.kind), trackID: summary.trackID,
                        classIndex: summary.classIndex, label: labels[summary.classIndex] ?? "", score: summary.lastScore,
                        box: [box.x1, box.y1, box.x2, box.y2], scene: $0)
        }
    }

    private func numbered(_ event: ObjectEvent) -> NumberedEvent {
        (sequence.take(), event)
    }

    private mutating func number(_ event: TrackEvent, at facts: FrameFacts, reason: ObjectEndReason) -> ObjectEvent {
        let object: ObjectEvent
        switch event {
        case let .started(trackID, classIndex, box, score):
            object = ObjectEvent(stream: stream, frame: facts, kind: .objectStart, trackID: trackID, classIndex: classIndex,
                                 label: labels[classIndex] ?? "", score: score, box: [box.x1, box.y1, box.x2, box.y2])
        case let .ended(summary):
            let life = ObjectLife(reason: reason, firstFrame: summary.firstFrame, lastFrame: summary.lastFrame,
                                  firstNanoseconds: summary.firstStamp, lastNanoseconds: summary.lastStamp,
                                  duration: summary.duration, bestScore: summary.bestScore, bestFrame: summary.bestFrame,
                                  bestBox: [summary.bestBox.x1, summary.bestBox.y1, summary.bestBox.x2, summary.bestBox.y2])
            let box = summary.lastBox
            object = ObjectEvent(stream: stream, frame: facts, kind: .objectEnd, trackID: summary.trackID,
                                 classIndex: summary.classIndex, label: labels[summary.classIndex] ?? "",
                                 score: summary.lastScore, box: [box.x1, box.y1, box.x2, box.y2], life: life)
        }
        return object
    }
}

extension TrackEvent {
    /// Whether it is a track's start (`object_start`).
    var isStart: Bool { if case .started = self { true } else { false } }
}
