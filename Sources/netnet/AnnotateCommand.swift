import ArgumentParser
import Foundation
import NetnetEngine
import NetnetMedia
import NetnetPipeline
import NetnetRing
import NetnetKernels
import NetnetScene
import NetnetTracker
import NetnetDelivery
import NetnetSpool

/// `netnet annotate`: detect on every frame of a video; write an annotated video and/or JSON lines.
struct AnnotateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "annotate",
        abstract: "Detect objects in a video; write an annotated video and/or per-frame JSON lines.",
        discussion: """
            INPUT is anything FFmpeg opens: a file (mp4, mkv, avi, ts, mov…), a URL (rtsp://, http(s)://, \
            udp://, tcp://) or - for standard input. Stages run on their own threads (read+decode+preprocess, \
            inference, write) joined by ring buffers of preallocated frame slots. --policy block (default for \
            files and pipes: standard input, pipe:N, a FIFO) never drops a frame; latest (default for network \
            streams; give it for a pipe fed by a live source) drops frames that wait for inference while a newer \
            one is ready, and counts each drop in the JSON lines' "dropped". \
            JSON lines: one object per written frame, schema netnet.frame/1 (docs/json-lines.md). \
            --events: a line per object that appears (object_start) or ends (object_end), schema \
            netnet.event/1; give it the --json path to have both in one file. \
            --output - --format FMT writes the annotated video to standard output, e.g. \
            `netnet annotate in.mp4 --output - --format matroska | ffplay -` (a pipe wants a streamable \
            container: matroska, webm, mpegts, nut, flv; mp4 and mov are written fragmented); progress \
            and the summary stay on standard error. --input-option KEY=VALUE passes an option to FFmpeg's \
            open of INPUT (rtsp_transport=udp, probesize=5000000, …); a key FFmpeg does not take is an error. \
            SIGINT/SIGTERM stop reading, finish the frames in flight and close the outputs properly \
            (exit status 130/143); a second signal exits at once.
            """)

    @Argument(help: "Input file, URL, or - for standard input.")
    var input: String

    @Option(name: [.short, .long], help: "Annotated video to write; the container follows the extension (or --format). - for standard output, with --format.")
    var output: String?

    @Option(help: "Container of --output by FFmpeg muxer name (matroska, webm, mpegts, nut, flv, mp4, mov, …); needed for --output -.")
    var format: String?

    @Option(name: .customLong("input-option"), help: "An FFmpeg option for opening INPUT, KEY=VALUE (repeatable; demuxer, protocol or format options: rtsp_transport=udp, probesize=5000000, …).")
    var inputOptions: [String] = []

    @Option(help: "JSON lines to write, one object per frame (- for standard output).")
    var json: String?

    @Option(help: "Object events to write, netnet.event/1 lines (- for standard output; the --json path: both in one file).")
    var events: String?

    @Option(help: "Model file (default: the bundled default model).")
    var model: String?

    @OptionGroup var precision: PrecisionOptions

    @Option(help: "Minimum score to report and draw, in [0, 1].")
    var threshold: Float = 0.5

    @Option(help: "Run detection on every Nth frame; the frames between get the tracker's predicted boxes (\"inferred\": false, \"origin\": \"tracker\"; with --no-track, the last detections).")
    var every: Int = 1

    @Flag(help: "Do not track: no track ids (\"track_id\": null), and --every carries the last detections.")
    var noTrack = false

    @Option(help: "Scene file: lines, zones and masks whose events (cross, enter, leave, loiter) go to --events (docs/scenes.md).")
    var scene: String?

    @Option(help: "Write the scene's counts at the end, a netnet.counts/1 document (- for standard output; needs --scene).")
    var counts: String?

    @Option(name: .customLong("track-option"), help: ArgumentHelp(
        "A tracker setting, NAME=VALUE (repeatable; docs/tracking.md).",
        discussion: "NAME: " + TrackerSettingKey.allCases.map(\.rawValue).joined(separator: ", ") + "."))
    var trackOptions: [String] = []

    @Option(help: "Back-pressure policy: block (never drop) or latest (drop stale frames). Default: block for files and pipes, latest for network streams.",
            transform: choice("--policy", wording: "got"))
    var policy: BackPressurePolicy?

    @Option(help: "Largest frame accepted, in pixels (width × height); a larger one is an error, not an allocation. Default: 8192×8192, which covers 8K.")
    var maxFramePixels: Int = VideoSourceOptions.defaultMaxFramePixels

    @Option(help: "Video encoder for --output.")
    var codec: String = "libx264"

    @Option(help: "Encoder quality (x264/x265 CRF: lower is better, 0–51).")
    var crf: Int = 23

    @Option(help: "Encoder speed/size trade-off (libx264/libx265 presets: ultrafast, superfast, veryfast, faster, fast, medium, slow, …).")
    var preset: String = "veryfast"

    @Option(help: ArgumentHelp(
        "libx264/libx265 parameters applied after the preset, key=value:key=value (FFmpeg's -x264-params); \"\" for none.",
        discussion: "Default: me=dia:subme=1 with libx264 at the veryfast preset (a cheaper motion search: a third less encoder CPU on vtest.avi, 0.2 dB lower PSNR), none otherwise.",
        valueName: "params"))
    var encoderParams: String?

    @Option(help: "FFmpeg decoder threads (0: automatic).")
    var decoderThreads: Int = 0

    @Option(help: "Encoder threads (0: automatic).")
    var encoderThreads: Int = 0

    @Option(help: "GEMM threads for inference: oneDNN's OpenMP team or OpenBLAS's pool (default: all cores).")
    var inferenceThreads: Int?

    @Option(help: ArgumentHelp(
        "Inference workers: detectors that run on separate frames in parallel, the inference threads split between them (0: automatic).",
        discussion: "Automatic: 2 for files on 2 or more cores when the network is small (under 12 GMAC a frame, like the default model), else 1."))
    var inferenceWorkers: Int = 0

    @Option(help: "Stream id written in the JSON lines.")
    var streamId: String = "0"

    @Flag(name: [.short, .long], help: "No progress line and no summary.")
    var quiet = false

    // Durable delivery (docs/delivery.md).
    @Option(name: .customLong("sink"), help: "Also deliver every record to URL: mqtt://[USER@]HOST[:PORT]/TOPIC-PREFIX[?qos=1&lines=frame,event,status&password_file=PATH], mqtts:// for TLS; or an HTTP webhook: http(s)://[USER@]HOST[:PORT]/PATH[?lines=…&password_file=PATH&ca_file=PATH] (repeatable; needs --spool).")
    var sinks: [String] = []

    @Option(help: "The spool directory the --sink records wait in until acknowledged (and the stream's seq counter); records left at the end go out on the next run with the same spool.")
    var spool: String?

    @Option(help: "At the end, wait this many seconds at most for the sinks to acknowledge what is spooled.")
    var drainTimeout: Double = 30

    @Option(help: "The spool's size cap in bytes (spool_max_bytes); when full, the oldest records are dropped and a gap status line names them.")
    var spoolMaxBytes: UInt64 = 1 << 30

    @Option(help: "Seconds between fdatasyncs of the spool (spool_fsync; 0: every record).")
    var spoolFsync: Double = 0.5

    func validate() throws {
        guard output != nil || json != nil || events != nil else { throw ValidationError("give --output FILE, --json FILE, --events FILE, or more than one") }
        if format != nil && output == nil { throw ValidationError("--format names the container of --output: give --output too") }
        if output == "-" {
            guard format != nil else {
                throw ValidationError("--output - writes the video to standard output: give its container with --format (matroska, mpegts, nut, flv, mp4)")
            }
            for (flag, path) in [("--json", json), ("--events", events), ("--counts", counts)] where path == "-" {
                throw ValidationError("--output - and \(flag) - both write to standard output")
            }
        }
        _ = try parsedInputOptions()
        if events != nil && noTrack { throw ValidationError("--events needs tracking: drop --no-track") }
        if scene != nil && noTrack { throw ValidationError("--scene needs tracking: drop --no-track") }
        if let counts {
            guard scene != nil else { throw ValidationError("--counts needs --scene FILE") }
            if counts == "-" && (json == "-" || events == "-") { throw ValidationError("--counts - and another output both write to standard output") }
            if counts != "-" && [output, json, events].contains(counts) { throw ValidationError("--counts names the same file as another output: \(counts)") }
        }
        _ = try trackerSettings()
        if let events, events == output { throw ValidationError("--events and --output name the same file \(events)") }
        guard threshold.isFinite, (0...1).contains(threshold) else { throw ValidationError("--threshold must be in [0, 1], got \(threshold)") }
        guard every >= 1 else { throw ValidationError("--every must be at least 1, got \(every)") }
        guard maxFramePixels >= 1 else { throw ValidationError("--max-frame-pixels must be at least 1, got \(maxFramePixels)") }
        guard (0...51).contains(crf) else { throw ValidationError("--crf must be in 0…51, got \(crf)") }
        if let encoderParams, let problem = VideoWriterOptions.encoderParamsProblem(encoderParams, codec: codec) {
            throw ValidationError("--encoder-params '\(encoderParams)': \(problem)")
        }
        guard decoderThreads >= 0, encoderThreads >= 0 else { throw ValidationError("thread counts must be at least 0") }
        if let inferenceThreads, inferenceThreads < 1 { throw ValidationError("--inference-threads must be at least 1") }
        let cores = KernelThreads.onlineProcessors
        guard (0...cores).contains(inferenceWorkers) else {
            throw ValidationError("--inference-workers must be 0 (automatic) to \(cores) (the cores here), got \(inferenceWorkers)")
        }
        if let output, output == input, output != "-" { throw ValidationError("--output would overwrite the input \(input)") }
        if !sinks.isEmpty && spool == nil { throw ValidationError("--sink needs --spool DIR (where records wait until the sink acknowledges them)") }
        if spool != nil && sinks.isEmpty { throw ValidationError("--spool is the --sink records' queue: give --sink URL too") }
        _ = try sinkSpecs()
        guard drainTimeout.isFinite, drainTimeout >= 0 else { throw ValidationError("--drain-timeout must be at least 0, got \(drainTimeout)") }
        guard spoolFsync.isFinite, spoolFsync >= 0 else { throw ValidationError("--spool-fsync must be at least 0, got \(spoolFsync)") }
        if let problem = SpoolConfiguration(segmentBytes: Delivery.segmentBytes(maxBytes: spoolMaxBytes), maxBytes: spoolMaxBytes).problem {
            throw ValidationError("--spool-max-bytes: \(problem)")
        }
    }

    /// The `--sink`s, named `mqtt`, `mqtt-2`, … and `http`, `http-2`, … in order (their spool
    /// cursors' names; `SinkURL.defaultNames`).
    func sinkSpecs() throws -> [SinkSpec] {
        try zip(sinks, SinkURL.defaultNames(sinks)).map { url, name in
            do { return try SinkURL.parse(url, name: name) } catch {
                throw ValidationError("--sink \(error)")
            }
        }
    }

    /// The tracker's settings: the defaults with each `--track-option` applied in order.
    func trackerSettings() throws -> TrackerSettings {
        var settings = TrackerSettings()
        for option in trackOptions {
            do { try settings.apply(option) } catch { throw ValidationError("--track-option: \(error.description)") }
        }
        return settings
    }

    /// The `--input-option`s as FFmpeg's options dictionary; one not KEY=VALUE, or a key given
    /// twice, is a usage error.
    func parsedInputOptions() throws -> [String: String] {
        var options: [String: String] = [:]
        for option in inputOptions {
            guard let equals = option.firstIndex(of: "="), equals != option.startIndex else {
                throw ValidationError("--input-option '\(option)' is not KEY=VALUE")
            }
            let key = String(option[..<equals])
            guard options.updateValue(String(option[option.index(after: equals)...]), forKey: key) == nil else {
                throw ValidationError("--input-option \(key) is given twice")
            }
        }
        return options
    }

    /// The scene file at `path`, parsed; a missing, unreadable or broken file is one line naming it.
    static func loadScene(_ path: String) throws -> Scene { try loadSceneFile(path) }

    func run() throws {
        let job: AnnotateJob
        let trapBox = TrapBox()
        // Flipped by the first stop signal, so that an open still in progress (a URL that does not
        // answer) is cut short rather than waited out.
        let interrupter = Interrupter()
        // Signals first, before the pipeline's threads start (SignalTrap's rule).
        let trap = reportingErrors {
            try SignalTrap.install { event in
                if case let .stop(signal) = event {
                    trapBox.signal = signal
                    interrupter.interrupt()
                    trapBox.job?.requestStop()
                }
            }
        }
        defer { trap.remove() }
        FFmpegLog.setLevel(.error)
        // FFmpeg's own messages (corrupt packets, …) in netnet's style, redacted, not raw.
        FFmpegLog.route { message in
            FileHandle.standardError.write(Data("netnet: \(message.severity.rawValue): \(message.line)\n".utf8))
        }
        let loaded = reportingErrors { try DefaultModel.load(model, quiet: quiet) }
        var options = AnnotateOptions(input: input)
        options.videoOutput = output
        options.videoFormat = format
        options.inputOptions = try parsedInputOptions()
        options.jsonOutput = json
        options.eventsOutput = events
        options.countsOutput = counts
        options.threshold = threshold
        options.every = every
        options.track = !noTrack
        options.tracking = try trackerSettings()
        if let scene { options.scene = reportingErrors { try Self.loadScene(scene) } }
        options.policy = policy
        options.codec = codec
        options.crf = crf
        options.preset = preset
        options.encoderParams = encoderParams
        options.streamID = streamId
        options.decoderThreads = decoderThreads
        options.encoderThreads = encoderThreads
        options.precision = precision.value
        options.gemm = precision.library
        options.convolution = precision.defaultConvolution
        options.inferenceWorkers = inferenceWorkers
        options.maxFramePixels = maxFramePixels
        options.interrupter = interrupter
        if let inferenceThreads { BLASThreads.set(inferenceThreads) }
        let delivery = try spool.map { directory in try openDelivery(directory) }
        if let delivery {
            options.sequence = delivery.sequence
            options.recordSink = delivery.delivery
        }
        do {
            job = try AnnotateJob(options: options, model: loaded, quiet: quiet) { message in
                FileHandle.standardError.write(Data("netnet: warning: \(message)\n".utf8))
            }
        } catch {
            // A stop signal during the open: the open was interrupted on purpose, so the run ends
            // with the signal's status (130/143), not as a failure.
            let line = (error as? InputOptionError).map { "--input-option \($0.keysLine)" } ?? "\(error)"
            FileHandle.standardError.write(Data("netnet: \(line)\n".utf8))
            if let signal = trapBox.signal { throw ExitCode(128 + signal) }
            throw ExitCode(1)
        }
        trapBox.job = job
        if trap.stopRequested { job.requestStop() }
        let summary = reportingErrors { try job.run() }
        if !quiet {
            let line = Summary(frames: summary.framesWritten, detections: summary.detections, seconds: summary.seconds,
                               dropped: summary.dropped, decodeErrors: summary.decodeErrors).line
            FileHandle.standardError.write(Data((line + (summary.interrupted ? " (stopped by signal)" : "") + "\n").utf8))
            if let counts = summary.counts { FileHandle.standardError.write(Data(CountsSummary.lines(counts).utf8)) }
        }
        if summary.audioPacketsDropped > 0 {
            FileHandle.standardError.write(Data("netnet: warning: \(summary.audioPacketsDropped) audio packets dropped (input interleaved over 1024 packets apart)\n".utf8))
        }
        if let delivery { finishDelivery(delivery.delivery, interrupted: summary.interrupted) }
        if summary.interrupted, let signal = trapBox.signal { throw ExitCode(128 + signal) }
    }

    /// The spool in `directory` with the `--sink`s' runners, and the stream's seq counter kept in
    /// `DIRECTORY/seq` (so a second run on the same spool goes on numbering).
    private func openDelivery(_ directory: String) throws -> (delivery: Delivery, sequence: StreamSequence) {
        let warn: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("netnet: warning: \($0)\n".utf8)) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let sequences = try SequenceStore(directory: directory + "/seq", warn: warn)
            let configuration = SpoolConfiguration(segmentBytes: Delivery.segmentBytes(maxBytes: spoolMaxBytes), maxBytes: spoolMaxBytes, fsyncInterval: spoolFsync)
            let delivery = try Delivery(directory: directory, sinks: try sinkSpecs(), configuration: configuration, sequences: sequences,
                                        warn: warn, onGap: { record in
                                            FileHandle.standardError.write(Data("netnet: warning: gap: ".utf8) + Data(record.line))
                                        })
            return (delivery, sequences.sequence(for: streamId))
        } catch {
            FileHandle.standardError.write(Data("netnet: --spool \(directory): \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// Waits (up to `--drain-timeout`) for the sinks, says what is left, closes the spool.
    private func finishDelivery(_ delivery: Delivery, interrupted: Bool) {
        let left = delivery.drain(timeout: interrupted ? min(drainTimeout, 2) : drainTimeout)
        let figures = delivery.spool.figures()
        var line = "sinks: "
        line += delivery.runners.map { runner in
            let f = runner.figures
            return "\(f.sink) delivered \(f.delivered), redelivered \(f.redelivered), dropped \(figures.dropped[f.sink] ?? 0)"
                + (f.rejected > 0 ? ", refused \(f.rejected)" : "")
        }.joined(separator: "; ")
        line += left == 0 ? "; nothing left spooled" : "; \(left) records still spooled (they go out on the next run with --spool \(spool ?? ""))"
        FileHandle.standardError.write(Data("netnet: \(line)\n".utf8))
        delivery.close()
    }
}

/// Hands the job to the signal handler, which runs on the trap's thread.
final class TrapBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storedJob: AnnotateJob?
    private var storedSignal: Int32?
    var job: AnnotateJob? {
        get { lock.lock(); defer { lock.unlock() }; return storedJob }
        set { lock.lock(); storedJob = newValue; lock.unlock() }
    }
    var signal: Int32? {
        get { lock.lock(); defer { lock.unlock() }; return storedSignal }
        set { lock.lock(); storedSignal = newValue; lock.unlock() }
    }
}
