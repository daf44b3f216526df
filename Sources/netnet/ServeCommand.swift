import ArgumentParser
import Foundation
import NetnetDaemon
import NetnetEngine
import NetnetHTTP
import NetnetKernels
import NetnetMedia
import NetnetPipeline
import NetnetService

/// `netnet serve`: the long-running service on camera feeds (docs/operations.md).
struct ServeCommand: AsyncParsableCommand {
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

    func run() async throws {
        if let checkConfig {
            let parsed = reportingErrors { try ConfigParser.load(path: checkConfig) }
            let modelPath = Daemon.modelPath(parsed, configPath: checkConfig)
            let model = reportingErrors { try DefaultModel.load(modelPath, quiet: true) }
            let enabled = parsed.enabledStreams.count
            reportingErrors { try ConfigParser.checkClasses(parsed, file: checkConfig, modelClasses: model.description.classes) }
            if parsed.precision == .bf16 {
                reportingErrors {
                    do { try OneDNNRuntime.checkBF16Support() } catch { throw CommandFailure("\(checkConfig): precision = bf16: \(error)") }
                }
            }
            let spool = reportingErrors { try Daemon.spoolDirectory(parsed, configPath: checkConfig) }
            _ = reportingErrors { try Daemon.sinkSpecs(parsed, configPath: checkConfig) }
            let sinks = parsed.sinks.isEmpty ? "" : ", sinks \(parsed.sinks.map { "\($0.name) (\($0.type.rawValue))" }.joined(separator: ", ")), spool \(spool ?? "")"
            print("\(checkConfig): OK: \(parsed.streams.count) streams (\(enabled) enabled), listen \(parsed.listenHost):\(parsed.listenPort), model \(modelPath ?? "default"), precision \(parsed.precision.rawValue)\(sinks)")
            return
        }
        let daemon = Daemon(configPath: config!) { path in try DefaultModel.load(path, quiet: true) }
        do {
            try await daemon.run()
        } catch let error as ExitCode {
            throw error
        } catch {
            exitWithError("\(error)")
        }
    }
}
