import Foundation
import Logging
import NetnetDaemon
import NetnetDelivery
import NetnetEngine
import NetnetHTTP
import NetnetKernels
import NetnetMedia
import NetnetPipeline
import NetnetSpool
import ServiceLifecycle

/// Why the daemon could not start (a broken configuration, a model that does not load, a port
/// already taken): one line naming what and where. Value type; any thread.
public struct DaemonStartError: Error, CustomStringConvertible, Sendable {
    /// The line to print.
    public let description: String
    /// An error with `description`. Pure.
    public init(_ description: String) { self.description = description }
}

/// `netnet serve`'s composition root: loads the configuration and the model, then runs four
/// services in one `ServiceGroup`, started in this order and stopped in reverse:
/// 1. `SinkService`: the JSON lines sinks (standard output, the rotated file); closed last, so
///    every event the pipelines publish while draining is written.
/// 2. `HTTPServer`: the API; it stops after the pipelines have drained.
/// 3. `PipelineService`: the `Supervisor` (readers, the shared inference stage), started once the
///    port is bound; on shutdown the readers stop and the frames waiting are inferred.
/// 4. `ControlService`: signals (through `SignalTrap`), reloads, `STATUS=` and the watchdog on a
///    thread of its own; it ends on SIGTERM/SIGINT, which shuts the group down gracefully.
/// `run` is called once; it returns when everything has drained (the process then exits 0).
public final class Daemon: Sendable {
    /// The configuration file it runs.
    public let configPath: String
    private let loadModel: @Sendable (String?) throws -> Model

    /// A daemon for `configPath`; `loadModel` loads a model file (nil: the bundled default). Any thread.
    public init(configPath: String, loadModel: @escaping @Sendable (String?) throws -> Model) {
        self.configPath = configPath
        self.loadModel = loadModel
    }

    /// The model a configuration names, relative paths taken from the configuration's folder; nil
    /// for the default model. Pure.
    public static func modelPath(_ config: DaemonConfig, configPath: String) -> String? {
        guard let model = config.effectiveModel else { return nil }
        if model.hasPrefix("/") { return model }
        let folder = URL(fileURLWithPath: configPath).deletingLastPathComponent()
        return folder.appendingPathComponent(model).standardized.path
    }

    /// Starts the services and returns once a stop signal has drained them; throws a
    /// `DaemonStartError` (or the trap's install error) when it cannot start.
    public func run() async throws {
        let control = ControlState()
        // Signals first, before the pipelines start their threads (SignalTrap's rule).
        let trap = try SignalTrap.install { event in control.signal(event) }
        defer { trap.remove() }
        // Spares before anything else opens, so they get low numbers: below whatever limit a
        // squeeze leaves, releasing one gives the runtime a number it can open (DescriptorSpares).
        let descriptors = DescriptorSpares()
        _ = ProcessFigures.startTime   // read now, while descriptors are plentiful, and kept
        let config = try ConfigParser.load(path: configPath)
        let log = DaemonLog(level: config.logLevel)
        // Hummingbird's and the service group's loggers (swift-log), and FFmpeg's own messages,
        // all go to this log: one format, journal priorities, redacted.
        DaemonLogHandler.bootstrap(log)
        FFmpegLog.setLevel(.error)
        FFmpegLog.route { message in log.log(LogLevel(message.severity), message.line) }
        // Descriptors: the soft limit up to the hard one, then a reserve for the runtime, the
        // streams and the sinks that HTTP clients can never take (DescriptorBudget).
        let (limit, refused) = DescriptorBudget.raiseSoftLimit()
        if let refused { log.warning("cannot raise the file descriptor limit above \(limit): \(String(cString: strerror(refused))); set LimitNOFILE= (docs/operations.md)") }
        let budget: DescriptorBudget
        do { budget = try DescriptorBudget.make(config: config, limit: limit) } catch { throw DaemonStartError("\(configPath): \(error)") }
        let modelPath = Self.modelPath(config, configPath: configPath)
        let model = try loadModel(modelPath)
        try ConfigParser.checkClasses(config, file: configPath, modelClasses: model.description.classes)
        if !ConfigParser.isLoopback(host: config.listenHost) && config.authToken == nil {
            // Only with allow_unauthenticated = true (the parser refuses otherwise).
            log.warning("listen = \(config.listenHost):\(config.listenPort) is not a loopback address and the HTTP API has no authentication (allow_unauthenticated = true): anyone who can reach the port can read every stream's events and snapshots")
        }
        log.info("file descriptors: limit \(budget.limit), \(budget.reserve) reserved for the daemon and \(config.streams.count) streams, up to \(budget.connections) HTTP connections, \(descriptors.held) spares held")
        descriptors.startWatching { [count = descriptors.count] held, before in
            if held < before {
                log.warning("file descriptors: no free descriptor number below the limit; \(count - held) of \(count) spares released for the runtime, and the sinks and streams open only while \(DescriptorSpares.openHeadroom) are free (docs/operations.md, \"File descriptors\")")
            } else if held == count {
                log.info("file descriptors: room again, \(held) spares held")
            }
        }
        defer { descriptors.stopWatching() }
        log.info("model \(modelPath ?? "default"): \(model.description.network.rawValue) width \(ModelDescription.formatWidth(model.description.width)), \(model.description.classes.count) classes")
        if config.inferenceThreads > 0 { BLASThreads.set(config.inferenceThreads) }

        let hub = EventHub()
        var sinks: [LineSink] = []
        do {
            if config.stdoutSink {
                sinks.append(try LineSink(name: "stdout", path: "-", queueCapacity: config.sinkQueue, hub: hub, log: log,
                                          descriptors: descriptors))
            }
            if let path = config.jsonLinesPath {
                sinks.append(try LineSink(name: "file", path: path, maxBytes: config.jsonLinesMaxBytes, keep: config.jsonLinesKeep,
                                          queueCapacity: config.sinkQueue, hub: hub, log: log, descriptors: descriptors))
            }
        } catch {
            for sink in sinks { sink.close() }
            throw error
        }
        if control.stopRequested {
            for sink in sinks { sink.close() }
            log.info("stopped before start")
            return
        }
        let supervisor: Supervisor
        let delivery: Delivery?
        do {
            let state = CountsStore.stateDirectory(config: config)
            var counts: CountsStore?
            if let state {
                counts = try CountsStore(stateDirectory: state, log: log, descriptors: descriptors)
            } else if config.enabledStreams.contains(where: { $0.scene != nil }) {
                log.warning("no state_directory (and no $STATE_DIRECTORY): scene counts start from zero at every start (docs/scenes.md, \"Counts\")")
            }
            let spoolDirectory = try Self.spoolDirectory(config, configPath: configPath)
            if let spoolDirectory {
                do { try FileManager.default.createDirectory(atPath: spoolDirectory, withIntermediateDirectories: true) } catch {
                    throw DaemonStartError("spool_dir \(spoolDirectory): cannot create it: \(error.localizedDescription)")
                }
            }
            // Record seqs never repeat across restarts when a state directory (or the spool) keeps
            // the counters (docs/json-lines.md).
            let sequences = try SequenceStore(directory: state.map { $0 + "/seq" } ?? spoolDirectory.map { $0 + "/seq" },
                                              warn: { [log] in log.warning($0) })
            delivery = try spoolDirectory.map { try Self.openDelivery(config, directory: $0, configPath: configPath, sequences: sequences,
                                                                     hub: hub, log: log) }
            do {
                supervisor = try Supervisor(config: config, model: model, hub: hub, log: log, descriptors: descriptors, counts: counts,
                                            sequences: sequences)
            } catch {
                delivery?.close()
                throw error
            }
        } catch {
            for sink in sinks { sink.close() }
            throw error
        }
        let sinkService = SinkService(sinks: sinks, delivery: delivery)
        let server = HTTPServer(host: config.listenHost, port: config.listenPort, sources: .init(
            supervisor: { supervisor },
            ready: { control.isReady },
            reloads: { control.reloads },
            sseQueue: config.sinkQueue,
            snapshot: { supervisor.snapshotJPEG(stream: $0) },
            sinks: { [sinks] in sinks.map(\.health) },
            access: HTTPAccess(token: config.authToken, metricsPublic: config.metricsPublic),
            sseHeartbeat: config.sseHeartbeat,
            live: LiveFrames(supervisor: supervisor, settings: config.live, log: log),
            moreMetrics: { delivery?.metricsText() ?? "" }),
            limits: HTTPLimits(maxConnections: budget.connections, headerTimeout: config.httpHeaderTimeout,
                               idleTimeout: config.httpIdleTimeout, descriptorReserve: budget.reserve,
                               sendBuffer: config.httpSendBuffer > 0 ? config.httpSendBuffer : nil),
            descriptors: descriptors)
        let notifier = SystemdNotifier()
        let pipelines = PipelineService(supervisor: supervisor, server: server, control: control, notifier: notifier,
                                        log: log, listenHost: config.listenHost, streams: config.enabledStreams.count)
        let loop = ControlService(control: control, supervisor: supervisor, notifier: notifier, log: log, config: config,
                                  configPath: configPath, modelPath: modelPath, model: model.description, budget: budget)
        // Through DaemonLogHandler (bootstrapped above); the service group logs at debug and trace.
        let logger = Logger(label: "netnet-services")
        let group = ServiceGroup(configuration: .init(services: [
            .init(service: sinkService),
            .init(service: server),
            .init(service: pipelines),
            .init(service: loop, successTerminationBehavior: .gracefullyShutdownGroup),
        ], logger: logger))
        do {
            try await group.run()
        } catch let error as HTTPServerError {
            throw DaemonStartError(error.description)
        }
        log.info("stopped")
    }
}

extension Daemon {
    /// Where the `[sink]` sections' spool lives: `spool_dir`, else `spool/` under the state
    /// directory; nil without sinks. Throws `DaemonStartError` when there are sinks and neither.
    /// Pure apart from reading `$STATE_DIRECTORY`.
    public static func spoolDirectory(_ config: DaemonConfig, configPath: String) throws -> String? {
        guard let first = config.sinks.first else { return nil }
        if let directory = config.spoolDirectory { return directory }
        if let state = CountsStore.stateDirectory(config: config) { return state + "/spool" }
        throw DaemonStartError("\(configPath):\(first.line): [sink \(first.name)] needs a spool on disk: set spool_dir or state_directory in [global] (systemd's StateDirectory= sets $STATE_DIRECTORY)")
    }

    /// The sinks' specs, checked as far as can be without connecting (`--check-config` too).
    /// Throws `DaemonStartError` naming the section. Any thread.
    public static func sinkSpecs(_ config: DaemonConfig, configPath: String) throws -> [SinkSpec] {
        try config.sinks.map { sink in
            do { return try SinkSpec(config: sink) } catch {
                throw DaemonStartError("\(configPath):\(sink.line): [sink \(sink.name)] \(error)")
            }
        }
    }

    /// Opens the spool in `directory` for the sinks and subscribes it to every record of `hub`
    /// (it never refuses one: the spool is the lossless consumer); its `gap` lines are
    /// published to the hub's other consumers (stdout, the file, SSE) from a queue of their own.
    static func openDelivery(_ config: DaemonConfig, directory: String, configPath: String, sequences: SequenceStore,
                             hub: EventHub, log: DaemonLog) throws -> Delivery {
        let specs = try sinkSpecs(config, configPath: configPath)
        let gapQueue = DispatchQueue(label: "netnet-gap-lines")
        let delivery: Delivery
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let configuration = SpoolConfiguration(segmentBytes: Delivery.segmentBytes(maxBytes: config.spoolMaxBytes),
                                                   maxBytes: config.spoolMaxBytes, fsyncInterval: config.spoolFsync)
            delivery = try Delivery(directory: directory, sinks: specs, configuration: configuration, sequences: sequences,
                                    warn: { [log] in log.warning($0) },
                                    onGap: { record in
                                        // Not on the caller's thread: it may be inside the hub's publish.
                                        gapQueue.async {
                                            hub.publish(DaemonEvent(kind: .status, stream: record.stream, seq: record.seq,
                                                                    line: record.line, alreadySpooled: true))
                                        }
                                    })
        } catch {
            throw DaemonStartError("spool_dir \(directory): \(error)")
        }
        _ = hub.subscribe(name: "spool") { [delivery] event in
            guard !event.alreadySpooled else { return true }
            let kind: RecordKind = switch event.kind {
            case .frame: .frame
            case .event: .event
            case .status: .status
            }
            delivery.accept(kind: kind, stream: event.stream, seq: event.seq, line: event.line)
            return true
        }
        log.info("spool \(directory): \(delivery.spool.figures().records) records held; sinks \(specs.map(\.name).joined(separator: ", "))")
        return delivery
    }
}

/// What the signal handler, the control loop and the HTTP handlers share. Thread-safe.
final class ControlState: @unchecked Sendable {
    private let lock = NSLock()
    private let wake = DispatchSemaphore(value: 0)
    private var stopping = false
    private var reloadWanted = false
    private var ready = false
    private var applied: UInt64 = 0
    private var rejected: UInt64 = 0

    /// The trap thread: records the signal and wakes the control loop.
    func signal(_ event: SignalTrap.Event) {
        lock.withLock {
            switch event {
            case .stop: stopping = true
            case .hangup: reloadWanted = true
            }
        }
        wake.signal()
    }

    var stopRequested: Bool { lock.withLock { stopping } }
    var isReady: Bool { lock.withLock { ready } }
    func setReady(_ value: Bool) { lock.withLock { ready = value } }
    var reloads: (applied: UInt64, rejected: UInt64) { lock.withLock { (applied, rejected) } }
    func countReload(applied ok: Bool) { lock.withLock { if ok { applied += 1 } else { rejected += 1 } } }

    /// Waits up to `seconds` for a signal; returns (stop, reload) and clears the reload request.
    func wait(_ seconds: Double) -> (stop: Bool, reload: Bool) {
        _ = wake.wait(timeout: .now() + seconds)
        return lock.withLock {
            defer { reloadWanted = false }
            return (stopping, reloadWanted)
        }
    }

    /// Wakes the control loop without a signal (the group is shutting down for another reason).
    func stopLoop() {
        lock.withLock { stopping = true }
        wake.signal()
    }
}

/// Runs blocking work on a thread of its own and returns its result to the awaiting task, so no
/// cooperative thread ever blocks on a pipeline, a sink or a semaphore.
func onOwnThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// The sinks as a service: nothing to start (their threads run from creation); on shutdown they
/// write what they hold and close. First in the group, so last to stop.
final class SinkService: Service, @unchecked Sendable {
    private let sinks: [LineSink]
    private let delivery: Delivery?
    init(sinks: [LineSink], delivery: Delivery?) {
        self.sinks = sinks
        self.delivery = delivery
    }

    func run() async throws {
        try? await gracefulShutdown()
        await onOwnThread("netnet-sinks-close") { [self] in close() }
    }

    /// Closes every sink (flushes first); the delivery sinks get up to 2 s to acknowledge what
    /// is spooled, and the rest stays in the spool for the next start. Any thread.
    func close() {
        for sink in sinks { sink.close() }
        if let delivery {
            _ = delivery.drain(timeout: 2)
            delivery.close()
        }
    }
}

/// The pipelines as a service: starts the supervisor once the HTTP port is bound, says READY=1,
/// and on shutdown drains them (readers stop, the frames waiting are inferred and published).
final class PipelineService: Service, @unchecked Sendable {
    private let supervisor: Supervisor
    private let server: HTTPServer
    private let control: ControlState
    private let notifier: SystemdNotifier
    private let log: DaemonLog
    private let listenHost: String
    private let streams: Int

    init(supervisor: Supervisor, server: HTTPServer, control: ControlState, notifier: SystemdNotifier, log: DaemonLog,
         listenHost: String, streams: Int) {
        self.supervisor = supervisor
        self.server = server
        self.control = control
        self.notifier = notifier
        self.log = log
        self.listenHost = listenHost
        self.streams = streams
    }

    func run() async throws {
        let port: Int
        do {
            port = try await server.boundPort()
        } catch {
            control.stopLoop()
            throw error
        }
        supervisor.start()
        control.setReady(true)
        log.info("listening on http://\(listenHost.contains(":") ? "[\(listenHost)]" : listenHost):\(port), \(streams) streams")
        notifier.notify("READY=1\nSTATUS=listening on port \(port), \(streams) streams starting\nMAINPID=\(getpid())")
        try? await gracefulShutdown()
        // Drain: readers stop, the frames waiting are inferred, the sinks (still open) write them.
        notifier.notify("STOPPING=1\nSTATUS=stopping")
        log.info("stopping: draining the pipelines")
        control.setReady(false)
        control.stopLoop()
        await onOwnThread("netnet-drain") { [supervisor] in supervisor.stop() }
    }
}

/// The control loop as a service, on a thread of its own: signals, reloads (SIGHUP), `STATUS=`
/// every 5 s and `WATCHDOG=1` while the pipelines make progress. Returns on a stop signal, which
/// shuts the group down gracefully.
final class ControlService: Service, @unchecked Sendable {
    private let control: ControlState
    private let supervisor: Supervisor
    private let notifier: SystemdNotifier
    private let log: DaemonLog
    private var config: DaemonConfig
    private let configPath: String
    private let modelPath: String?
    private let model: ModelDescription
    private let budget: DescriptorBudget

    init(control: ControlState, supervisor: Supervisor, notifier: SystemdNotifier, log: DaemonLog, config: DaemonConfig,
         configPath: String, modelPath: String?, model: ModelDescription, budget: DescriptorBudget) {
        self.control = control
        self.supervisor = supervisor
        self.notifier = notifier
        self.log = log
        self.config = config
        self.configPath = configPath
        self.modelPath = modelPath
        self.model = model
        self.budget = budget
    }

    func run() async throws {
        // A shutdown or cancellation for another reason (a failing service) ends the loop too.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await onOwnThread("netnet-control") { [self] in loop() }
            } onGracefulShutdown: { [control] in
                control.stopLoop()
            }
        } onCancel: { [control] in
            control.stopLoop()
        }
    }

    private func loop() {
        let watchdogPeriod = notifier.watchdogInterval.map { max($0 / 2, 0.05) }
        let tick = min(watchdogPeriod ?? 1, 1)
        var lastStatus = 0.0, lastInferred = supervisor.framesInferred, lastStatusTime = supervisor.uptimeSeconds
        var lastWatchdog = 0.0
        var stuck = false
        while true {
            let (stop, reload) = control.wait(tick)
            if stop { return }
            if reload { self.reload() }
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
    }

    /// SIGHUP: applies a valid new configuration's streams; an invalid one keeps the running one.
    private func reload() {
        notifier.notify("RELOADING=1\nSTATUS=reloading \(configPath)")
        do {
            let newConfig = try ConfigParser.load(path: configPath)
            try ConfigParser.checkClasses(newConfig, file: configPath, modelClasses: model.classes)
            // The HTTP cap is fixed at start: more streams must still fit beside it.
            var sized = newConfig
            sized.httpMaxConnections = budget.connections
            do { _ = try DescriptorBudget.make(config: sized, limit: budget.limit) } catch { throw DaemonStartError("\(configPath): \(error)") }
            let newModel = Daemon.modelPath(newConfig, configPath: configPath)
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
                                     ("http_idle_timeout", "\(config.httpIdleTimeout)", "\(newConfig.httpIdleTimeout)"),
                                     ("http_send_buffer", "\(config.httpSendBuffer)", "\(newConfig.httpSendBuffer)"),
                                     ("state_directory", config.stateDirectory ?? "", newConfig.stateDirectory ?? ""),
                                     ("auth_token_file", config.authToken ?? "", newConfig.authToken ?? ""),
                                     ("metrics_public", "\(config.metricsPublic)", "\(newConfig.metricsPublic)"),
                                     ("spool_dir", config.spoolDirectory ?? "", newConfig.spoolDirectory ?? ""),
                                     ("spool_max_bytes", "\(config.spoolMaxBytes)", "\(newConfig.spoolMaxBytes)"),
                                     ("spool_fsync", "\(config.spoolFsync)", "\(newConfig.spoolFsync)"),
                                     ("[sink] sections", config.sinks == newConfig.sinks ? "" : "old", "")] where old != new {
                log.warning("reload: \(name) changed; it takes effect at the next restart")
            }
            log.setLevel(newConfig.logLevel)
            let result = supervisor.apply(newConfig)
            config = newConfig
            control.countReload(applied: true)
            log.info("reload: \(configPath): added [\(result.added.joined(separator: ", "))], removed [\(result.removed.joined(separator: ", "))], changed [\(result.changed.joined(separator: ", "))], unchanged [\(result.unchanged.joined(separator: ", "))]")
        } catch {
            control.countReload(applied: false)
            log.error("reload rejected, the running configuration stays: \(error)")
        }
        notifier.notify("READY=1\nSTATUS=\(supervisor.streamStats().count) streams")
    }
}

extension LogLevel {
    /// netnet's level for an FFmpeg message's severity (the same four words). Pure.
    init(_ severity: FFmpegLog.Severity) {
        switch severity {
        case .error: self = .error
        case .warning: self = .warning
        case .info: self = .info
        case .debug: self = .debug
        }
    }
}
