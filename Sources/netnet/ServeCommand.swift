import ArgumentParser
import Foundation
import NetnetDaemon
import NetnetEngine
import NetnetHTTP
import NetnetKernels
import NetnetMedia
import NetnetPipeline

/// `netnet serve`: the long-running service on camera feeds (docs/operations.md).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the detection service on the camera streams of a configuration file.",
        discussion: """
            Reads the configuration (INI, docs/configuration.md), loads one model shared by all streams, \
            starts one reader per stream and one inference thread that serves the streams in turn (the \
            newest frame of each; older waiting frames are dropped and counted). Streams that fail to open, \
            stall or end are reconnected with exponential backoff and jitter. Events (netnet.frame/1 and \
            netnet.status/1 JSON lines, docs/json-lines.md) go to standard output, a rotated JSON lines \
            file and GET /api/events (Server-Sent Events); GET /healthz, /readyz, /metrics, /api/streams \
            and /api/streams/ID/snapshot.jpg report on the service. Under systemd (Type=notify) it \
            sends READY=1, STATUS= and WATCHDOG=1. SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the \
            configuration (streams added, removed or changed; an invalid file keeps the old one).
            """)

    @Option(help: ArgumentHelp("Run the service with this configuration file.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Check this configuration file (and that its model loads), print a summary and exit: 0 when valid, 1 otherwise.", valueName: "file"))
    var checkConfig: String?

    func validate() throws {
        guard (config == nil) != (checkConfig == nil) else {
            throw ValidationError("give either --config FILE or --check-config FILE")
        }
    }

    func run() throws {
        if let checkConfig {
            let parsed = reportingErrors { try ConfigParser.load(path: checkConfig) }
            let modelPath = reportingErrors { try ServeCommand.modelPath(parsed, configPath: checkConfig) }
            let model = reportingErrors { try DefaultModel.load(modelPath, quiet: true) }
            let enabled = parsed.enabledStreams.count
            reportingErrors { try ConfigParser.checkClasses(parsed, file: checkConfig, modelClasses: model.description.classes) }
            if parsed.precision == .bf16 {
                reportingErrors {
                    do { try OneDNNRuntime.checkBF16Support() } catch { throw CommandFailure("\(checkConfig): precision = bf16: \(error)") }
                }
            }
            print("\(checkConfig): OK: \(parsed.streams.count) streams (\(enabled) enabled), listen \(parsed.listenHost):\(parsed.listenPort), model \(modelPath ?? "default"), precision \(parsed.precision.rawValue)")
            return
        }
        try Daemon(configPath: config!).run()
    }

    /// The model the configuration names, relative paths taken from the configuration's folder;
    /// nil for the default model.
    static func modelPath(_ config: DaemonConfig, configPath: String) throws -> String? {
        guard let model = config.effectiveModel else { return nil }
        if model.hasPrefix("/") { return model }
        let folder = URL(fileURLWithPath: configPath).deletingLastPathComponent()
        return folder.appendingPathComponent(model).standardized.path
    }
}

/// The running service: owns the supervisor, the sinks, the HTTP server and the systemd
/// notifications. `run` is called once on the main thread and returns when a stop signal has
/// drained everything (the process then exits 0).
final class Daemon: @unchecked Sendable {
    let configPath: String
    private let wake = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var stopRequested = false
    private var reloadRequested = false
    private var ready = false
    private var reloadsApplied: UInt64 = 0
    private var reloadsRejected: UInt64 = 0
    private var supervisor: Supervisor?

    init(configPath: String) { self.configPath = configPath }

    func run() throws {
        // Signals first, before any other thread starts (SignalTrap's rule).
        let trap = reportingErrors {
            try SignalTrap.install { [self] event in
                lock.withLock {
                    switch event {
                    case .stop: stopRequested = true
                    case .hangup: reloadRequested = true
                    }
                }
                wake.signal()
            }
        }
        defer { trap.remove() }
        var config = reportingErrors { try ConfigParser.load(path: configPath) }
        let log = DaemonLog(level: config.logLevel)
        FFmpegLog.setLevel(.error)
        // Descriptors: the soft limit up to the hard one, then a reserve for the runtime, the
        // streams and the sinks that HTTP clients can never take (DescriptorBudget).
        let (limit, refused) = DescriptorBudget.raiseSoftLimit()
        if let refused { log.warning("cannot raise the file descriptor limit above \(limit): \(String(cString: strerror(refused))); set LimitNOFILE= (docs/operations.md)") }
        let budget = reportingErrors {
            do { return try DescriptorBudget.make(config: config, limit: limit) } catch { throw CommandFailure("\(configPath): \(error)") }
        }
        let modelPath = reportingErrors { try ServeCommand.modelPath(config, configPath: configPath) }
        let model = reportingErrors { try DefaultModel.load(modelPath, quiet: true) }
        reportingErrors { try ConfigParser.checkClasses(config, file: configPath, modelClasses: model.description.classes) }
        if !ConfigParser.isLoopback(host: config.listenHost) {
            log.warning("listen = \(config.listenHost):\(config.listenPort) is not a loopback address and the HTTP API has no authentication: anyone who can reach the port can read every stream's events and snapshots")
        }
        log.info("file descriptors: limit \(budget.limit), \(budget.reserve) reserved for the daemon and \(config.streams.count) streams, up to \(budget.connections) HTTP connections")
        log.info("model \(modelPath ?? "default"): \(model.description.network.rawValue) width \(ModelDescription.formatWidth(model.description.width)), \(model.description.classes.count) classes")
        if config.inferenceThreads > 0 { BLASThreads.set(config.inferenceThreads) }
        let notifier = SystemdNotifier()

        let hub = EventHub()
        var sinks: [LineSink] = []
        if config.stdoutSink {
            sinks.append(reportingErrors { try LineSink(name: "stdout", path: "-", queueCapacity: config.sinkQueue, hub: hub, log: log) })
        }
        if let path = config.jsonLinesPath {
            sinks.append(reportingErrors {
                try LineSink(name: "file", path: path, maxBytes: config.jsonLinesMaxBytes, keep: config.jsonLinesKeep,
                             queueCapacity: config.sinkQueue, hub: hub, log: log)
            })
        }
        if lock.withLock({ stopRequested }) {
            for sink in sinks { sink.close() }
            log.info("stopped before start")
            return
        }
        let supervisor = reportingErrors { try Supervisor(config: config, model: model, hub: hub, log: log) }
        lock.withLock { self.supervisor = supervisor }
        let server = HTTPServer(host: config.listenHost, port: config.listenPort, sources: .init(
            supervisor: { supervisor },
            ready: { [self] in lock.withLock { ready } },
            reloads: { [self] in lock.withLock { (reloadsApplied, reloadsRejected) } },
            sseQueue: config.sinkQueue,
            snapshot: { supervisor.snapshotJPEG(stream: $0) },
            sinks: { [sinks] in sinks.map(\.health) }),
            limits: HTTPLimits(maxConnections: budget.connections, headerTimeout: config.httpHeaderTimeout,
                               idleTimeout: config.httpIdleTimeout, descriptorReserve: budget.reserve))
        let port: Int
        do {
            port = try server.start()
        } catch {
            for sink in sinks { sink.close() }
            exitWithError("\(error)")
        }
        supervisor.start()
        lock.withLock { ready = true }
        log.info("listening on http://\(config.listenHost.contains(":") ? "[\(config.listenHost)]" : config.listenHost):\(port), \(config.enabledStreams.count) streams")
        notifier.notify("READY=1\nSTATUS=listening on port \(port), \(config.enabledStreams.count) streams starting\nMAINPID=\(getpid())")

        // The main loop: signals, reloads, STATUS= and the watchdog.
        let watchdogPeriod = notifier.watchdogInterval.map { max($0 / 2, 0.05) }
        let tick = min(watchdogPeriod ?? 1, 1)
        var lastStatus = 0.0, lastInferred = supervisor.framesInferred, lastStatusTime = supervisor.uptimeSeconds
        var lastWatchdog = 0.0
        var stuck = false
        while true {
            _ = wake.wait(timeout: .now() + tick)
            let (stop, reload) = lock.withLock { () -> (Bool, Bool) in
                defer { reloadRequested = false }
                return (stopRequested, reloadRequested)
            }
            if stop { break }
            if reload {
                notifier.notify("RELOADING=1\nSTATUS=reloading \(configPath)")
                do {
                    let newConfig = try ConfigParser.load(path: configPath)
                    try ConfigParser.checkClasses(newConfig, file: configPath, modelClasses: model.description.classes)
                    // The HTTP cap is fixed at start: more streams must still fit beside it.
                    var sized = newConfig
                    sized.httpMaxConnections = budget.connections
                    do { _ = try DescriptorBudget.make(config: sized, limit: budget.limit) } catch { throw CommandFailure("\(configPath): \(error)") }
                    let newModel = try ServeCommand.modelPath(newConfig, configPath: configPath)
                    if newModel != modelPath {
                        log.warning("reload: the model changed (\(newModel ?? "default")); a model change needs a restart, streams keep using \(modelPath ?? "default")")
                    }
                    for (name, old, new) in [("listen", "\(config.listenHost):\(config.listenPort)", "\(newConfig.listenHost):\(newConfig.listenPort)"),
                                             ("stdout", "\(config.stdoutSink)", "\(newConfig.stdoutSink)"),
                                             ("json_lines", config.jsonLinesPath ?? "", newConfig.jsonLinesPath ?? ""),
                                             ("json_lines_max_bytes", "\(config.jsonLinesMaxBytes)", "\(newConfig.jsonLinesMaxBytes)"),
                                             ("json_lines_keep", "\(config.jsonLinesKeep)", "\(newConfig.jsonLinesKeep)"),
                                             ("inference_threads", "\(config.inferenceThreads)", "\(newConfig.inferenceThreads)"),
                                             ("precision", config.precision.rawValue, newConfig.precision.rawValue),
                                             ("gemm", config.gemm?.rawValue ?? "", newConfig.gemm?.rawValue ?? ""),
                                             ("sink_queue", "\(config.sinkQueue)", "\(newConfig.sinkQueue)"),
                                             ("http_max_connections", "\(config.httpMaxConnections)", "\(newConfig.httpMaxConnections)"),
                                             ("http_header_timeout", "\(config.httpHeaderTimeout)", "\(newConfig.httpHeaderTimeout)"),
                                             ("http_idle_timeout", "\(config.httpIdleTimeout)", "\(newConfig.httpIdleTimeout)")] where old != new {
                        log.warning("reload: \(name) changed; it takes effect at the next restart")
                    }
                    log.setLevel(newConfig.logLevel)
                    let result = supervisor.apply(newConfig)
                    config = newConfig
                    lock.withLock { reloadsApplied += 1 }
                    log.info("reload: \(configPath): added [\(result.added.joined(separator: ", "))], removed [\(result.removed.joined(separator: ", "))], changed [\(result.changed.joined(separator: ", "))], unchanged [\(result.unchanged.joined(separator: ", "))]")
                } catch {
                    lock.withLock { reloadsRejected += 1 }
                    log.error("reload rejected, the running configuration stays: \(error)")
                }
                notifier.notify("READY=1\nSTATUS=\(supervisor.streamStats().count) streams")
            }
            let now = supervisor.uptimeSeconds
            if let watchdogPeriod, now - lastWatchdog >= watchdogPeriod * 0.9 {
                // Only while the pipelines make progress: a hung thread lets systemd restart us.
                if supervisor.isProgressing(within: max(notifier.watchdogInterval!, 2)) {
                    notifier.notify("WATCHDOG=1")
                    lastWatchdog = now
                    if stuck { log.info("watchdog: the pipelines make progress again") }
                    stuck = false
                } else if !stuck {
                    stuck = true
                    log.error("watchdog: a pipeline thread is not making progress; not pinging systemd")
                }
            }
            if now - lastStatus >= 5 {
                let inferred = supervisor.framesInferred
                let fps = Double(inferred - lastInferred) / max(now - lastStatusTime, 0.001)
                lastInferred = inferred
                lastStatusTime = now
                lastStatus = now
                let states = supervisor.streamStats().map { $0.snapshot().state }
                let streaming = states.filter { $0 == .streaming }.count
                notifier.notify("STATUS=\(states.count) streams, \(streaming) streaming, \(String(format: "%.1f", fps)) fps")
            }
        }

        // Drain: readers stop, the frames waiting are inferred, the sinks write what they hold.
        notifier.notify("STOPPING=1\nSTATUS=stopping")
        log.info("stopping: draining the pipelines")
        lock.withLock { ready = false }
        supervisor.stop()
        server.stop()
        for sink in sinks { sink.close() }
        log.info("stopped")
    }
}
