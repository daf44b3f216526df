import Foundation
import NetnetEngine
import NetnetKernels
import NetnetMedia
import NetnetRing
import NetnetScene
import NetnetTracker

/// What `netnet annotate` was asked to do. Value type.
public struct AnnotateOptions: Sendable {
    /// Input: a path, a URL, or "-" for standard input.
    public var input: String
    /// Annotated video output ("-" for standard output, which needs `videoFormat`), or nil.
    public var videoOutput: String?
    /// The video output's container by FFmpeg muxer name (`--format`: "matroska", "mpegts", "mp4",
    /// …); nil: from the output's extension.
    public var videoFormat: String?
    /// FFmpeg options for opening the input (`--input-option KEY=VALUE`: demuxer, protocol and
    /// format-context options, e.g. `rtsp_transport`, `probesize`); a key FFmpeg does not take
    /// ends the open with `InputOptionError`.
    public var inputOptions: [String: String] = [:]
    /// JSON lines output ("-" for standard output), or nil.
    public var jsonOutput: String?
    /// Object events (`netnet.event/1` lines; "-" for standard output), or nil. The same path as
    /// `jsonOutput` writes both kinds of line to that one output, in order.
    public var eventsOutput: String?
    /// Minimum score reported and drawn.
    public var threshold: Float = 0.5
    /// Run detection on every Nth frame; the frames between get the tracker's predictions (or,
    /// with `track` off, the last detections).
    public var every: Int = 1
    /// Track detections (`track_id`, docs/json-lines.md); `--no-track` turns it off.
    public var track: Bool = true
    /// How it tracks (`--track-option NAME=VALUE`).
    public var tracking = TrackerSettings()
    /// Lines, zones and masks (`--scene FILE`), or nil; checked against the input's frame size.
    public var scene: Scene?
    /// Where the scene's counts go at the end (`--counts FILE`, a `netnet.counts/1` document
    /// written atomically; `-` for standard output), or nil. Needs `scene`.
    public var countsOutput: String?
    /// Back-pressure policy; nil picks `block` for files and pipes (standard input, `pipe:`, a
    /// FIFO: their writer waits) and `latest` for live network inputs.
    public var policy: BackPressurePolicy?
    /// Video encoder.
    public var codec: String = "libx264"
    /// Encoder quality (x264 CRF).
    public var crf: Int = 23
    /// The encoder preset (libx264/libx265; ignored by encoders without one).
    public var preset: String = "veryfast"
    /// libx264/libx265 parameters after the preset (nil: `VideoWriterOptions.automaticEncoderParams`).
    public var encoderParams: String?
    /// Stream id written in the JSON lines.
    public var streamID: String = "0"
    /// The stream's record counter (`seq` of its frame and event lines); nil: a fresh one from 0.
    /// `annotate --spool` passes the spool's `SequenceStore` counter, so seqs go on across runs.
    public var sequence: StreamSequence?
    /// Where every frame and event line also goes (the spool of `--sink`s), nil for none.
    public var recordSink: RecordSink?
    /// Slots in the ring between the stages.
    public var slots: Int = 8
    /// FFmpeg decoder threads (0: FFmpeg's automatic count).
    public var decoderThreads: Int = 0
    /// Encoder threads (0: the encoder's automatic count).
    public var encoderThreads: Int = 0
    /// The arithmetic of the network's convolutions (bf16 needs AVX512_BF16).
    public var precision: Precision = .fp32
    /// The GEMM library (nil: oneDNN, or OpenBLAS where oneDNN cannot run).
    public var gemm: GEMMLibrary?
    /// Which 3×3 convolutions run as Winograd (`auto`: the measured rule).
    public var convolution: ConvolutionAlgorithm = .auto
    /// Inference workers: detectors that each take the next frame, in parallel, each on its share
    /// of the GEMM threads (0: `AnnotateJob.automaticWorkers`).
    public var inferenceWorkers: Int = 0
    /// The largest frame (width × height) the input may have; a larger one ends the run with an
    /// error naming its size, before its picture is allocated. <= 0: no limit.
    public var maxFramePixels: Int = VideoSourceOptions.defaultMaxFramePixels
    /// The switch that interrupts the input's open and reads (e.g. flipped by a signal handler
    /// while `AnnotateJob.init` is still opening a URL); nil: the job's own.
    public var interrupter: Interrupter?
    /// Creates options for `input`.
    public init(input: String) { self.input = input }
}

/// Why an annotate run failed when no lower layer reported it. Value type; any thread.
public enum AnnotateError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The input ended without a single decodable video frame (every packet or frame was corrupt,
    /// or there were none); `decodeErrors` counts the skipped ones.
    case noDecodableFrame(input: String, decodeErrors: Int)
    /// The input's video stream gives no picture size (0×0), so no video can be written.
    case noPictureSize(input: String)

    /// One line naming the input.
    public var description: String {
        switch self {
        case let .noDecodableFrame(input, errors):
            return "\(input): no decodable video frame" + (errors > 0 ? " (\(errors) corrupt packets or frames skipped)" : "")
        case let .noPictureSize(input):
            return "\(input): the video stream has no picture size (0x0); cannot annotate it"
        }
    }
}

/// What an annotate run did, for the summary line and the tests.
public struct AnnotateSummary: Sendable {
    /// Frames decoded from the input.
    public var framesDecoded = 0
    /// Frames run through the network.
    public var framesInferred = 0
    /// Frames written (JSON lines and/or video).
    public var framesWritten = 0
    /// Detections over all written frames.
    public var detections = 0
    /// Object events (`object_start`, `object_end`) over the run, written or not.
    public var objectEvents = 0
    /// Frames dropped by the `latest` policy.
    public var dropped = 0
    /// Corrupt packets or frames skipped by the decoder.
    public var decodeErrors = 0
    /// Wall-clock seconds from open to the last frame written.
    public var seconds = 0.0
    /// Whether the run stopped early on a signal.
    public var interrupted = false
    /// The policy that ran.
    public var policy: BackPressurePolicy = .block
    /// Audio packets dropped because the input read far more audio than video ahead (over 1024
    /// packets; a badly interleaved input), rather than stalling the pipeline.
    public var audioPacketsDropped = 0
    /// The scene's counts at the end (nil without a scene).
    public var counts: SceneCounts?
}

/// The offline-annotation pipeline, `netnet annotate`: a reader thread (demux, decode,
/// preprocess), one or more inference threads ("workers", each with its own `Detector`, taking
/// frames in turn) and a writer thread (JSON lines, draw, encode, mux), joined by a `StageRing`
/// of preallocated frame slots and, for the audio packets copied to the output, a second ring.
/// The ring hands frames to the writer in frame order whichever worker finishes first.
///
/// The stages are the shared ones (`FrameReader`, `InferenceStep`, `FrameRecorder`, FrameStages.swift);
/// this type is their `annotate` driver: one input, every frame reported, a `StageRing` between.
///
/// Ownership: `reader` (and its source) belongs to the reader thread, `steps[i]` to inference
/// thread i, `videoWriter`, `jsonWriter` and `progress` to the writer thread; slots change hands
/// only through the rings, which synchronise. `run()` is called once, from any thread, and
/// blocks until the job ends; `requestStop()` may be called from any thread (a signal handler's).
public final class AnnotateJob: @unchecked Sendable {
    /// The options the job runs with.
    public let options: AnnotateOptions
    /// The back-pressure policy in force (the option, or the input's default).
    public let policy: BackPressurePolicy
    /// Frames the input says it has (for progress), if known.
    public let expectedFrames: Int?

    private let source: VideoSource
    private let reader: FrameReader
    private let steps: [InferenceStep]
    private let filter: DetectionFilter
    private let videoWriter: VideoWriter?
    private let jsonWriter: JSONLinesWriter?
    private let eventsWriter: JSONLinesWriter?
    private let ring: StageRing<FrameSlot>
    private let audioRing: StageRing<AudioPacket>?
    private let progress: ProgressReporter
    private let lock = NSLock()
    private var stopRequested = false
    private var failure: Error?
    private var summary = AnnotateSummary()
    private let warn: @Sendable (String) -> Void

    /// Opens the input and the outputs; throws a one-line error naming what failed.
    public init(options: AnnotateOptions, model: Model, quiet: Bool, warn: @escaping @Sendable (String) -> Void) throws {
        self.options = options
        self.warn = warn
        var sourceOptions = VideoSourceOptions(url: options.input)
        sourceOptions.decoderThreads = options.decoderThreads
        sourceOptions.onWarning = warn
        sourceOptions.maxFramePixels = options.maxFramePixels
        sourceOptions.formatOptions = options.inputOptions
        if let interrupter = options.interrupter { sourceOptions.interrupter = interrupter }
        source = try VideoSource(options: sourceOptions)
        // A pipe's writer waits for us, so blocking loses nothing; only a live network source
        // goes on sending while we are busy.
        policy = options.policy ?? (source.isLive && !source.isPipe ? .latest : .block)
        expectedFrames = source.isLive ? nil : source.estimatedFrameCount
        try options.scene?.check(width: source.width, height: source.height)
        let d = model.description
        reader = FrameReader(source: source, model: d, sampling: FrameSampling(every: options.every))
        filter = DetectionFilter(threshold: options.threshold)
        let workers = options.inferenceWorkers > 0
            ? options.inferenceWorkers
            : Self.automaticWorkers(policy: policy, multiplyAccumulates: NetworkPlan(d).multiplyAccumulates)
        if workers > 1 {
            // Each worker gets its share of the threads; the kernels' loops and the GEMMs both
            // read these process-wide counts, so set them before any detector plans its primitives.
            let perWorker = max(1, BLASThreads.current / workers)
            BLASThreads.set(perWorker)
            KernelThreads.set(perWorker)
        }
        do {
            var made: [InferenceStep] = []
            for _ in 0..<workers {
                made.append(try InferenceStep(model: model, precision: options.precision, gemm: options.gemm,
                                              convolution: options.convolution))
            }
            steps = made
            if let reason = made[0].gemmFallback { warn(reason) }
        } catch {
            throw error.prefixed("--precision \(options.precision.rawValue): ")
        }
        ring = StageRing(slots: (0..<max(options.slots, 2 + workers)).map { _ in FrameSlot(model: d) },
                         stageCount: 2, policy: policy)
        if let path = options.videoOutput {
            if source.width == 0 || source.height == 0 {
                // Probing found no picture size (a stream with no decodable frame, or one whose
                // only frame is over the size limit): decoding tells which, naming the input.
                let probe = VideoFrame()
                guard try source.nextFrame(into: probe, audioSink: nil) else {
                    throw AnnotateError.noDecodableFrame(input: options.input, decodeErrors: source.decodeErrors)
                }
                throw AnnotateError.noPictureSize(input: options.input)
            }
            var writerOptions = VideoWriterOptions(path: path)
            writerOptions.format = options.videoFormat
            writerOptions.codec = options.codec
            writerOptions.crf = options.crf
            writerOptions.preset = options.preset
            writerOptions.encoderParams = options.encoderParams
            writerOptions.encoderThreads = options.encoderThreads
            videoWriter = try VideoWriter(options: writerOptions, source: source)
            // Lossless (`block`): audio is never thinned like frames. The reader drops a packet
            // only when the ring is full (see `readerLoop`), which never blocks it.
            audioRing = source.hasAudio
                ? StageRing(slots: (0..<1024).map { _ in AudioPacket() }, stageCount: 1, policy: .block)
                : nil
        } else {
            videoWriter = nil
            audioRing = nil
        }
        jsonWriter = try options.jsonOutput.map { try JSONLinesWriter(path: $0) }
        eventsWriter = options.eventsOutput == nil ? nil
            : options.eventsOutput == options.jsonOutput ? jsonWriter : try JSONLinesWriter(path: options.eventsOutput!)
        if let path = options.countsOutput, path != "-" { try AtomicFile.checkWritable(path) }
        progress = ProgressReporter(total: expectedFrames, quiet: quiet)
    }

    /// The inference workers `inferenceWorkers = 0` picks: 2 for a file (`block`) on a machine
    /// with at least 2 cores when the network is small (under 12 G multiply-accumulates a frame: width 0.5 and below),
    /// else 1. A small network splits poorly over threads (the default model: 10.5 ms a frame on
    /// one thread, 9.3 on two), so two single-threaded workers on separate frames do nearly twice
    /// the work of one two-threaded one, and no thread spins at a barrier while decoding and
    /// encoding want the core. A large one splits well, and two would double its memory; a live
    /// input (`latest`) wants one frame's latency, not throughput. Pure; any thread.
    public static func automaticWorkers(policy: BackPressurePolicy, multiplyAccumulates: Int,
                                        processors: Int = KernelThreads.onlineProcessors) -> Int {
        policy == .block && processors >= 2 && multiplyAccumulates < smallNetworkMultiplyAccumulates ? 2 : 1
    }

    /// Below this many multiply-accumulates a frame, `automaticWorkers` counts a network as small.
    public static let smallNetworkMultiplyAccumulates = 12_000_000_000

    /// Asks the job to stop reading; frames in flight are finished and the outputs closed. Any thread.
    public func requestStop() {
        lock.lock()
        stopRequested = true
        lock.unlock()
        source.interrupt()
    }

    private var shouldStop: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopRequested
    }

    private func fail(_ error: Error) {
        lock.lock()
        if failure == nil { failure = error }
        lock.unlock()
        ring.cancel()
        audioRing?.cancel()
    }

    /// Runs the pipeline to the end of the input (or a stop request, or an error) and returns what
    /// it did; throws the first error that ended it early (the outputs are still closed properly).
    public func run() throws -> AnnotateSummary {
        let started = WallClock.monotonicNanoseconds()
        let done = DispatchGroup()
        func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
            done.enter()
            let thread = Thread {
                body()
                done.leave()
            }
            thread.name = name
            thread.stackSize = 1 << 22
            thread.start()
        }
        start("netnet-reader") { [self] in readerLoop() }
        for worker in steps.indices {
            start(steps.count == 1 ? "netnet-inference" : "netnet-inference-\(worker)") { [self] in
                inferenceLoop(steps[worker])
            }
        }
        start("netnet-writer") { [self] in writerLoop() }
        done.wait()
        progress.finish()
        do {
            try videoWriter?.finish()
            try jsonWriter?.close()
            if eventsWriter !== jsonWriter { try eventsWriter?.close() }
            try writeCounts()
        } catch {
            fail(error)
        }
        lock.lock()
        defer { lock.unlock() }
        summary.seconds = Double(WallClock.monotonicNanoseconds() - started) / 1e9
        summary.dropped = ring.droppedCount
        summary.decodeErrors = source.decodeErrors
        summary.framesDecoded = source.framesDecoded
        summary.interrupted = stopRequested
        summary.policy = policy
        if let failure { throw failure }
        return summary
    }

    // MARK: stages

    private func readerLoop() {
        var audioDropped = 0
        let audioSink: ((AudioPacket) -> Void)? = audioRing.map { audio in
            { packet in
                // Full ring: the input runs over 1024 packets of audio ahead of its video. Drop
                // (counted) rather than wait, since the writer may itself be waiting for video.
                // One slot of slack covers the packet the writer may hold.
                guard audio.depths[0] < audio.capacity - 1, let slot = audio.acquire() else {
                    audioDropped += 1
                    return
                }
                packet.move(to: slot)
                audio.submit(slot)
            }
        }
        defer {
            lock.lock()
            summary.audioPacketsDropped = audioDropped
            lock.unlock()
        }
        while !shouldStop {
            guard let slot = ring.acquire() else { return }
            do {
                guard try reader.read(into: slot, audioSink: audioSink) else {
                    ring.release(slot)
                    if source.framesDecoded == 0 && !shouldStop {
                        // Writing "0 frames" and exiting 0 would hide a broken input.
                        fail(AnnotateError.noDecodableFrame(input: options.input, decodeErrors: source.decodeErrors))
                        return
                    }
                    break
                }
                ring.submit(slot)
            } catch {
                ring.release(slot)
                if shouldStop { break }
                fail(error)
                return
            }
        }
        ring.finish()
        audioRing?.finish()
    }

    /// One inference worker: takes the next frame (the ring hands each frame to one worker and
    /// passes them on in frame order) and runs its step on it (the network on sampled frames only;
    /// the writer's recorder gives the others the last detections, in frame order).
    private func inferenceLoop(_ step: InferenceStep) {
        while let (slot, dropped) = ring.next(stage: 1) {
            slot.dropped = dropped
            step.run(slot, filter: filter)
            if slot.inferred { lock.lock(); summary.framesInferred += 1; lock.unlock() }
            ring.complete(slot, stage: 1)
        }
    }

    private func writerLoop() {
        var written = 0, detections = 0, events = 0
        var recorder = FrameRecorder(stream: options.streamID, sequence: options.sequence, tracking: options.track ? options.tracking : nil, scene: options.scene)
        var eventLine: [UInt8] = []
        // The scene over the video, with the counts as they stand after each frame.
        var drawing = videoWriter.flatMap { writer in
            options.scene.map { SceneDrawing(scene: $0, width: writer.width, height: writer.height) }
        }
        let recordSink = options.recordSink
        var frameLine: [UInt8] = []
        func write(_ numbered: [FrameRecorder.NumberedEvent]) throws {
            events += numbered.count
            guard eventsWriter != nil || recordSink != nil else { return }
            for (seq, event) in numbered {
                eventLine.removeAll(keepingCapacity: true)
                event.appendJSONLine(seq: seq, to: &eventLine)
                try eventsWriter?.writeLine(eventLine)
                recordSink?.accept(kind: .event, stream: options.streamID, seq: seq, line: eventLine)
            }
        }
        while let (slot, _) = ring.next(stage: 2) {
            let (seq, record, found) = recorder.record(slot)   // tracks; predicted or carried boxes on frames not inferred
            do {
                if let jsonWriter { try jsonWriter.write(record, seq: seq) }
                if let recordSink {
                    frameLine.removeAll(keepingCapacity: true)
                    record.appendJSONLine(seq: seq, to: &frameLine)
                    recordSink.accept(kind: .frame, stream: options.streamID, seq: seq, line: frameLine)
                }
                try write(found)
                if let videoWriter {
                    if let audioRing {
                        while audioRing.depths.first ?? 0 > 0, let (packet, _) = audioRing.next(stage: 1) {
                            try videoWriter.writeAudio(packet)
                            audioRing.complete(packet, stage: 1)
                        }
                    }
                    let boxes = record.detections.indices.map {
                        DrawnBox(record.detections[$0], track: $0 < record.tracks.count ? record.tracks[$0] : .untracked, withScore: true)
                    }
                    try videoWriter.write(slot.frame, boxes: boxes, overlay: drawing?.overlay(counts: slot.counts))
                }
            } catch {
                ring.complete(slot, stage: 2)
                fail(error)
                return
            }
            written += 1
            detections += slot.detections.count
            ring.complete(slot, stage: 2)
            progress.update(frames: written)
        }
        // The input has ended (or the run stops): the objects still in view end with it.
        do { try write(recorder.finish()) } catch { fail(error) }
        // The audio read after the last video frame still belongs in the file.
        if let videoWriter, let audioRing {
            while let (packet, _) = audioRing.next(stage: 1) {
                do { try videoWriter.writeAudio(packet) } catch { fail(error); break }
                audioRing.complete(packet, stage: 1)
            }
        }
        lock.lock()
        summary.framesWritten = written
        summary.detections = detections
        summary.objectEvents = events
        summary.counts = recorder.counts
        lock.unlock()
    }

    /// Writes the counts document to `countsOutput` (after the run, even a stopped one).
    private func writeCounts() throws {
        guard let path = options.countsOutput, let counts = summary.counts else { return }
        lock.lock(); let frames = summary.framesWritten; lock.unlock()
        let bytes = CountsDocument.render(stream: options.streamID, scene: options.scene?.file, counts: counts, frames: frames,
                                          timeNanoseconds: WallClock.nowNanoseconds())
        if path == "-" {
            try AtomicFile.writeAll(bytes, to: STDOUT_FILENO, path: "-")
        } else {
            try AtomicFile.write(bytes, to: path)
        }
    }
}
