import Foundation
import NetnetEngine
import NetnetMedia
import NetnetPipeline
import NetnetScene
import NetnetTracker

/// A configuration problem, with the file and (when it is about one line) the line:
/// `netnet.conf:12: unknown key 'treshold' in [stream cam1]`. Value type; any thread.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file as given.
    public var file: String
    /// 1-based line number, or nil for problems with the whole file (cannot read it, no streams).
    public var line: Int?
    /// What is wrong.
    public var message: String

    /// An error about `file` (at `line`, if given). Any thread.
    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// `FILE:LINE: message` or `FILE: message`, credentials masked (`Redaction`): a message
    /// may quote a URL from the file.
    public var description: String {
        if let line { return Redaction.redact("\(file):\(line): \(message)") }
        return Redaction.redact("\(file): \(message)")
    }
}

/// Log verbosity, least to most verbose. Value type; any thread.
public enum LogLevel: String, Sendable, CaseIterable, Comparable {
    case error, warning, info, debug

    var rank: Int { LogLevel.allCases.firstIndex(of: self)! }
    /// Orders by verbosity: error < warning < info < debug.
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rank < b.rank }
}

/// One `[stream ID]` section: a camera feed. Value type; any thread.
public struct StreamConfig: Sendable, Equatable {
    /// The stream's identifier (the section name): `[A-Za-z0-9_.-]`, 1 to 64 characters.
    public var id: String
    /// What FFmpeg opens: `rtsp://`, `rtsps://`, `http://`, `https://`, `tcp://`, `udp://`,
    /// `rtmp://`, `srt://`, `file:` URLs or an absolute path.
    public var url: String
    /// The model file; nil: the global `model`. All enabled streams share one model.
    public var model: String?
    /// Minimum score reported, in [0, 1].
    public var threshold: Float = 0.5
    /// Run detection on every Nth decoded frame (1…1000); the others are decoded and skipped.
    public var every: Int = 1
    /// Class labels to report; empty: all.
    public var classes: [String] = []
    /// Whether the stream runs.
    public var enabled: Bool = true
    /// Whether detections are tracked (`track_id`, docs/json-lines.md); `track = false` turns it off.
    public var track: Bool = true
    /// How it tracks: the `track_NAME` keys (`TrackerSettingKey`), defaults otherwise.
    public var tracking = TrackerSettings()
    /// The stream's scene (`scene = FILE`: lines, zones, masks), read with the configuration.
    public var scene: Scene?
    /// `username`: put into the URL with the password of `password_file` (nil: none).
    public var username: String?
    /// `password_file` as written (nil: none); the password it holds is in `url` and nowhere else.
    public var passwordFile: String?
    /// `input_options`: FFmpeg options for opening `url` (`rtsp_transport = udp`, …), passed as
    /// `VideoSourceOptions.formatOptions`; a key FFmpeg does not take fails the connection.
    public var inputOptions: [String: String] = [:]
    /// Line of the section header (for messages).
    public var line: Int = 0
    /// Line of each key set in the section (for messages about a value found wrong later).
    public var keyLines: [String: Int] = [:]

    /// A stream with the defaults above. Any thread.
    public init(id: String, url: String) {
        self.id = id
        self.url = url
    }

    /// Whether two configurations run the same way (the header line does not count). Any thread.
    public func sameSettings(as other: StreamConfig) -> Bool {
        var a = self, b = other
        a.line = 0
        b.line = 0
        a.keyLines = [:]
        b.keyLines = [:]
        return a == b
    }
}

/// The whole configuration file (docs/configuration.md). Value type; any thread.
public struct DaemonConfig: Sendable, Equatable {
    /// HTTP listen address, host and port: `127.0.0.1:8080`, `[::1]:8080`; port 0 picks a free port.
    public var listenHost = "127.0.0.1"
    /// HTTP port (0…65535).
    public var listenPort = 8080
    /// Log level.
    public var logLevel: LogLevel = .info
    /// The model file; nil: the bundled default model.
    public var model: String?
    /// Write every event (frame and status) as a JSON line on standard output.
    public var stdoutSink = false
    /// JSON lines file for every event, or nil.
    public var jsonLinesPath: String?
    /// Rotate the JSON lines file when it would grow past this many bytes (64 KiB … 1 TiB).
    public var jsonLinesMaxBytes: Int64 = 100 * 1024 * 1024
    /// Rotated files kept: `FILE.1` … `FILE.N` (0…100).
    public var jsonLinesKeep = 5
    /// Events queued per consumer (stdout, file, each SSE client) before drops (16…100000).
    public var sinkQueue = 1024
    /// Seconds without a frame before a stream counts as stalled and is reconnected (1…3600).
    public var stallTimeout = 10.0
    /// Seconds an open (connect + probe) may take (1…3600).
    public var openTimeout = 10.0
    /// First reconnect delay bound in seconds (0.1…3600).
    public var backoffBase = 1.0
    /// Largest reconnect delay bound in seconds (backoff_base…86400).
    public var backoffCap = 30.0
    /// OpenBLAS threads for inference (0: all cores).
    public var inferenceThreads = 0
    /// The arithmetic of the shared inference stage (`fp32`, or `bf16` on AVX512_BF16 CPUs).
    public var precision: Precision = .fp32
    /// The GEMM library of the inference stage (nil: oneDNN, or OpenBLAS where oneDNN cannot run).
    public var gemm: GEMMLibrary?
    /// Most HTTP connections open at once (0: automatic, sized from the descriptor limit; see
    /// `DescriptorBudget`). Connections beyond it are answered 503 and closed, and counted.
    public var httpMaxConnections = 0
    /// Seconds a new HTTP connection may take to send its first complete request head (1…3600).
    public var httpHeaderTimeout = 10.0
    /// Seconds a kept-alive HTTP connection may stay idle between a response and the next
    /// request head (1…86400). Server-Sent Events responses are not idle.
    public var httpIdleTimeout = 60.0
    /// Each HTTP connection's kernel send buffer in bytes (`SO_SNDBUF`; 0: the kernel's
    /// autotuning, up to 4 MiB a connection). Bounds what a client that never reads holds.
    public var httpSendBuffer = 131_072
    /// Seconds between the `:` comment lines of a quiet SSE response (1…3600).
    public var sseHeartbeat = 15.0
    /// The live view's pictures (`live_fps`, `live_width`): rate and width of `live.mjpeg`.
    public var live = LiveSettings()
    /// `auth_token_file` as written (nil: the API needs no token).
    public var authTokenFile: String?
    /// The bearer token every `/api/*` request (and `/metrics`, unless `metricsPublic`) must
    /// carry, read from `auth_token_file` (nil: none). Registered with `Redaction`.
    public var authToken: String?
    /// `metrics_public`: `/metrics` answers without the token.
    public var metricsPublic = false
    /// `allow_unauthenticated`: listening on a non-loopback address without a token is allowed.
    public var allowUnauthenticated = false
    /// Where `serve` keeps what must survive a restart (the scene counts), an absolute path; nil:
    /// `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else nothing is kept (`CountsStore.stateDirectory`).
    public var stateDirectory: String?
    /// The streams, in file order.
    public var streams: [StreamConfig] = []
    /// The `[sink NAME]` sections (durable delivery, docs/delivery.md), in file order.
    public var sinks: [SinkConfig] = []
    /// `spool_dir`: where the sinks' records wait until acknowledged, an absolute path; nil:
    /// `spool/` under the state directory.
    public var spoolDirectory: String?
    /// `spool_max_bytes`: the spool's cap (64 KiB … 1 TiB, default 1 GiB); when full, the oldest
    /// records are dropped, counted, and named in `gap` status lines.
    public var spoolMaxBytes: UInt64 = 1 << 30
    /// `spool_fsync`: seconds between `fdatasync`s of the spool (0 … 60, default 0.5; 0: every
    /// record). What a power cut can lose is at most this window.
    public var spoolFsync = 0.5

    /// Most `[sink NAME]` sections a file may have (each is a thread and a connection).
    public static let maxSinks = 16

    /// Most `[stream ID]` sections a file may have (enabled or not): the one inference thread
    /// serves them in turn, and each connected stream holds its own frames and descriptors.
    public static let maxStreams = 256

    /// Defaults, no streams. Any thread.
    public init() {}

    /// The enabled streams, in file order. Any thread.
    public var enabledStreams: [StreamConfig] { streams.filter(\.enabled) }

    /// The model every enabled stream uses: the first stream's own `model`, else the global one
    /// (nil: the default model). `validate` guarantees they agree. Any thread.
    public var effectiveModel: String? {
        enabledStreams.compactMap(\.model).first ?? model
    }
}

/// One `[sink NAME]` section: a destination of the durable delivery (docs/delivery.md), checked
/// by the parser (its password read from `password_file`). NetnetDelivery makes the transport.
/// Value type; any thread.
public struct SinkConfig: Sendable, Equatable {
    /// The protocol (`type = mqtt|http`).
    public enum SinkType: String, Sendable, CaseIterable {
        case mqtt, http
    }

    /// The section name: its spool cursor's name and the `sink` label of its metrics.
    public var name: String
    /// `type`.
    public var type: SinkType
    /// `url`: `mqtt://HOST[:PORT]` or `mqtts://…` for MQTT; the `http(s)://` URL POSTed to for a webhook.
    public var url: String
    /// `topic` (MQTT): the template, `{stream}`, `{schema}`, `{host}` replaced; nil: `netnet/{stream}/{schema}`.
    public var topic: String?
    /// `qos` (MQTT): 0 or 1; nil: 1.
    public var qos: Int?
    /// `client_id` (MQTT): the persistent session's id; nil: `netnet-HOST-NAME`.
    public var clientID: String?
    /// `username`, or nil.
    public var username: String?
    /// `password_file` as written, and the password read from it (registered with `Redaction`).
    public var passwordFile: String?
    public var password: String?
    /// `ca_file`: CA certificates for TLS (`mqtts://`, `https://`), an absolute path; nil: the system's.
    public var caFile: String?
    /// `lines = frame,event,status`: the record kinds sent (default all).
    public var lines: Set<RecordKind> = Set(RecordKind.allCases)
    /// Line of the section header.
    public var line = 0

    /// A section with its name only; the parser fills in the rest. Pure.
    public init(name: String, type: SinkType = .mqtt, url: String = "") {
        self.name = name
        self.type = type
        self.url = url
    }
}

/// Reads the INI-style configuration (docs/configuration.md): `[global]` and `[stream ID]`
/// sections, `key = value` lines, `#` or `;` comments on their own lines. Unknown sections or keys,
/// repeated keys, out-of-range values, duplicate stream ids and bad URLs are rejected with the
/// file and line. Stateless; any thread.
public enum ConfigParser {
    /// Reads and parses `path`. Throws `ConfigError` (a missing or unreadable file names the path
    /// and the system's reason). Any thread.
    public static func load(path: String) throws -> DaemonConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason: String
            if !FileManager.default.fileExists(atPath: path) {
                reason = "No such file or directory"
            } else {
                reason = (error as NSError).localizedFailureReason ?? "cannot be read"
            }
            throw ConfigError(file: path, line: nil, message: "cannot read the configuration: \(reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, message: "not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    static let globalKeys: [String] = ["listen", "log_level", "model", "stdout", "json_lines", "json_lines_max_bytes",
                                       "json_lines_keep", "sink_queue", "stall_timeout", "open_timeout",
                                       "backoff_base", "backoff_cap", "inference_threads", "precision", "gemm",
                                       "http_max_connections", "http_header_timeout", "http_idle_timeout", "http_send_buffer", "state_directory",
                                       "auth_token_file", "metrics_public", "allow_unauthenticated", "sse_heartbeat",
                                       "live_fps", "live_width", "spool_dir", "spool_max_bytes", "spool_fsync"]
    static let streamKeys: [String] = ["url", "model", "threshold", "every", "classes", "enabled", "track", "scene",
                                       "username", "password_file", "input_options"]
        + TrackerSettingKey.allCases.map { "track_" + $0.rawValue }
    static let sinkKeys: [String] = ["type", "url", "topic", "qos", "client_id", "username", "password_file", "ca_file", "lines"]
    static let urlSchemes: Set<String> = ["rtsp", "rtsps", "http", "https", "tcp", "udp", "rtmp", "rtmps", "srt", "file"]

    /// Parses configuration text; `file` names it in errors. Throws the first `ConfigError`. Any thread.
    /// `environment` gives `$CREDENTIALS_DIRECTORY`, where a relative `password_file` is found
    /// (systemd's `LoadCredential=`).
    public static func parse(_ text: String, file: String,
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DaemonConfig {
        var config = DaemonConfig()
        enum Section { case none, global, stream(Int), sink(Int) }
        var section = Section.none
        var seenGlobal = false
        var seenKeys: Set<String> = []
        var streamIDs: [String: Int] = [:]
        var sinkNames: [String: Int] = [:]
        var sinkKeyLines: [[String: Int]] = []
        var listenLine = 0, backoffLine = 0, authTokenLine = 0

        func fail(_ line: Int, _ message: String) -> ConfigError { ConfigError(file: file, line: line, message: message) }

        // "\r\n" is one Character in Swift: split on both.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, rawLine) in lines.enumerated() {
            let number = index + 1
            // C sees a NUL as the end of a string: a path with one would name another file.
            if rawLine.contains("\u{0}") { throw fail(number, "a NUL byte (\\0) in the line; configuration text must not contain one") }
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }

            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]") else { throw fail(number, "section header without ']': \(trimmed)") }
                let inner = trimmed.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                seenKeys = []
                if inner == "global" {
                    guard !seenGlobal else { throw fail(number, "[global] appears twice") }
                    seenGlobal = true
                    section = .global
                } else if inner.hasPrefix("stream") && inner.dropFirst(6).first?.isWhitespace == true {
                    let id = inner.dropFirst(6).trimmingCharacters(in: .whitespaces)
                    guard isValidID(id) else {
                        throw fail(number, "stream id '\(id)' must be 1 to 64 characters of A-Z a-z 0-9 _ . -")
                    }
                    if let previous = streamIDs[id] {
                        throw fail(number, "duplicate stream id '\(id)' (first defined on line \(previous))")
                    }
                    streamIDs[id] = number
                    guard config.streams.count < DaemonConfig.maxStreams else {
                        let total = lines.filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("[stream") }.count
                        throw fail(number, "\(total) streams, more than the limit of \(DaemonConfig.maxStreams) ([stream \(id)] is number \(DaemonConfig.maxStreams + 1)); one inference thread serves them all, split them over several daemons")
                    }
                    var stream = StreamConfig(id: id, url: "")
                    stream.line = number
                    config.streams.append(stream)
                    section = .stream(config.streams.count - 1)
                } else if inner == "stream" {
                    throw fail(number, "a stream section needs an id: [stream ID]")
                } else if inner.hasPrefix("sink") && inner.dropFirst(4).first?.isWhitespace == true {
                    let name = inner.dropFirst(4).trimmingCharacters(in: .whitespaces)
                    guard isValidID(name) else {
                        throw fail(number, "sink name '\(name)' must be 1 to 64 characters of A-Z a-z 0-9 _ . -")
                    }
                    if let previous = sinkNames[name] {
                        throw fail(number, "duplicate sink name '\(name)' (first defined on line \(previous))")
                    }
                    guard config.sinks.count < DaemonConfig.maxSinks else {
                        throw fail(number, "more than \(DaemonConfig.maxSinks) [sink] sections")
                    }
                    sinkNames[name] = number
                    var sink = SinkConfig(name: name)
                    sink.line = number
                    config.sinks.append(sink)
                    sinkKeyLines.append([:])
                    section = .sink(config.sinks.count - 1)
                } else if inner == "sink" {
                    throw fail(number, "a sink section needs a name: [sink NAME]")
                } else {
                    throw fail(number, "unknown section [\(inner)] (expected [global], [stream ID] or [sink NAME])")
                }
                continue
            }

            guard let equals = trimmed.firstIndex(of: "=") else {
                throw fail(number, "expected 'key = value', a [section] or a # comment: \(trimmed)")
            }
            let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
            var value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }

            switch section {
            case .none:
                throw fail(number, "'\(key)' outside a section (start with [global], [stream ID] or [sink NAME])")
            case .global:
                guard globalKeys.contains(key) else {
                    throw fail(number, "unknown key '\(key)' in [global] (known: \(globalKeys.joined(separator: ", ")))")
                }
                guard seenKeys.insert(key).inserted else { throw fail(number, "'\(key)' is set twice in [global]") }
                switch key {
                case "listen":
                    let (host, port) = try parseListen(value, line: number, file: file)
                    config.listenHost = host
                    config.listenPort = port
                    listenLine = number
                case "log_level":
                    guard let level = LogLevel(rawValue: value) else {
                        throw fail(number, "log_level must be one of error, warning, info, debug (got '\(value)')")
                    }
                    config.logLevel = level
                case "model":
                    guard !value.isEmpty else { throw fail(number, "model must not be empty") }
                    config.model = value
                case "stdout": config.stdoutSink = try parseBool(key, value, number, file)
                case "json_lines":
                    guard value.hasPrefix("/") else { throw fail(number, "json_lines must be an absolute path (got '\(value)')") }
                    config.jsonLinesPath = value
                case "json_lines_max_bytes":
                    config.jsonLinesMaxBytes = Int64(try parseSize(key, value, 65_536, 1 << 40, number, file))
                case "auth_token_file":
                    guard !value.isEmpty else { throw fail(number, "auth_token_file must not be empty") }
                    config.authTokenFile = value
                    authTokenLine = number
                case "sse_heartbeat": config.sseHeartbeat = try parseDouble(key, value, 1, 3600, number, file)
                case "live_fps": config.live.fps = try parseDouble(key, value, 0.2, 30, number, file)
                case "live_width": config.live.width = try parseInt(key, value, 64, 7680, number, file)
                case "spool_dir":
                    guard value.hasPrefix("/") else { throw fail(number, "spool_dir must be an absolute path (got '\(value)')") }
                    config.spoolDirectory = value
                case "spool_max_bytes": config.spoolMaxBytes = UInt64(try parseSize(key, value, 65_536, 1 << 40, number, file))
                case "spool_fsync": config.spoolFsync = try parseDouble(key, value, 0, 60, number, file)
                case "metrics_public": config.metricsPublic = try parseBool(key, value, number, file)
                case "allow_unauthenticated": config.allowUnauthenticated = try parseBool(key, value, number, file)
                case "state_directory":
                    guard value.hasPrefix("/") else { throw fail(number, "state_directory must be an absolute path (got '\(value)')") }
                    config.stateDirectory = value
                case "json_lines_keep": config.jsonLinesKeep = try parseInt(key, value, 0, 100, number, file)
                case "sink_queue": config.sinkQueue = try parseInt(key, value, 16, 100_000, number, file)
                case "stall_timeout": config.stallTimeout = try parseDouble(key, value, 1, 3600, number, file)
                case "open_timeout": config.openTimeout = try parseDouble(key, value, 1, 3600, number, file)
                case "backoff_base":
                    config.backoffBase = try parseDouble(key, value, 0.1, 3600, number, file)
                    backoffLine = number
                case "backoff_cap":
                    config.backoffCap = try parseDouble(key, value, 0.1, 86_400, number, file)
                    backoffLine = number
                case "inference_threads": config.inferenceThreads = try parseInt(key, value, 0, 256, number, file)
                case "precision":
                    guard let precision = Precision(rawValue: value) else {
                        throw fail(number, "precision must be fp32 or bf16 (got '\(value)')")
                    }
                    config.precision = precision
                case "gemm":
                    guard let gemm = GEMMLibrary(rawValue: value) else {
                        throw fail(number, "gemm must be onednn or openblas (got '\(value)')")
                    }
                    config.gemm = gemm
                case "http_max_connections": config.httpMaxConnections = try parseInt(key, value, 0, 100_000, number, file)
                case "http_header_timeout": config.httpHeaderTimeout = try parseDouble(key, value, 1, 3600, number, file)
                case "http_idle_timeout": config.httpIdleTimeout = try parseDouble(key, value, 1, 86_400, number, file)
                case "http_send_buffer":
                    config.httpSendBuffer = try parseInt(key, value, 0, 16_777_216, number, file)
                    if config.httpSendBuffer > 0 && config.httpSendBuffer < 4096 {
                        throw fail(number, "http_send_buffer = \(value) is below 4096 (0 leaves it to the kernel)")
                    }
                default: break
                }
            case let .sink(i):
                try parseSinkKey(key, value, into: &config.sinks[i], keyLines: &sinkKeyLines[i], line: number, file: file)
            case let .stream(i):
                let id = config.streams[i].id
                guard streamKeys.contains(key) else {
                    throw fail(number, "unknown key '\(key)' in [stream \(id)] (known: \(streamKeys.joined(separator: ", ")))")
                }
                guard seenKeys.insert(key).inserted else { throw fail(number, "'\(key)' is set twice in [stream \(id)]") }
                config.streams[i].keyLines[key] = number
                switch key {
                case "url":
                    try validateURL(value, line: number, file: file)
                    config.streams[i].url = value
                case "model":
                    guard !value.isEmpty else { throw fail(number, "model must not be empty") }
                    config.streams[i].model = value
                case "threshold": config.streams[i].threshold = Float(try parseDouble(key, value, 0, 1, number, file))
                case "every": config.streams[i].every = try parseInt(key, value, 1, 1000, number, file)
                case "classes":
                    let names = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    guard !names.contains(where: \.isEmpty) || value.isEmpty else {
                        throw fail(number, "classes: an empty name in '\(value)' (write labels separated by commas)")
                    }
                    config.streams[i].classes = value.isEmpty ? [] : names
                case "enabled": config.streams[i].enabled = try parseBool(key, value, number, file)
                case "track": config.streams[i].track = try parseBool(key, value, number, file)
                case "scene": config.streams[i].scene = try readScene(value, line: number, file: file)
                case "username":
                    guard !value.isEmpty, !value.contains(where: { $0.isWhitespace }) else {
                        throw fail(number, "username must be a name without blanks")
                    }
                    config.streams[i].username = value
                case "password_file":
                    guard !value.isEmpty else { throw fail(number, "password_file must not be empty") }
                    config.streams[i].passwordFile = value
                case "input_options": config.streams[i].inputOptions = try parseInputOptions(value, number, file)
                default:
                    if key.hasPrefix("track_"), let setting = TrackerSettingKey(rawValue: String(key.dropFirst(6))) {
                        do {
                            try config.streams[i].tracking.set(setting, from: value)
                        } catch {
                            throw fail(number, "track_" + error.description)
                        }
                    }
                }
            }
        }

        if config.backoffCap < config.backoffBase {
            throw fail(backoffLine, "backoff_cap (\(config.backoffCap)) must be at least backoff_base (\(config.backoffBase))")
        }
        for stream in config.streams where stream.url.isEmpty {
            throw fail(stream.line, "[stream \(stream.id)] has no url")
        }
        for i in config.streams.indices {
            try addCredentials(&config.streams[i], file: file, environment: environment)
        }
        for i in config.sinks.indices {
            try checkSink(&config.sinks[i], keyLines: sinkKeyLines[i], file: file, environment: environment)
        }
        if let name = config.authTokenFile {
            let path = credentialPath(name, file: file, environment: environment)
            let token = try readPassword(path) { ConfigError(file: file, line: authTokenLine, message: "auth_token_file: \($0)") }
            guard token.utf8.count >= 16, !token.contains(where: \.isWhitespace) else {
                throw fail(authTokenLine, "auth_token_file \(path): the token must be at least 16 characters without blanks (e.g. openssl rand -hex 32)")
            }
            config.authToken = token
            Redaction.register(secret: token)
        }
        if !isLoopback(host: config.listenHost), config.authToken == nil, !config.allowUnauthenticated {
            throw fail(listenLine, "listen = \(config.listenHost):\(config.listenPort) is not a loopback address and there is no auth_token_file: anyone who can reach the port could read every stream; set auth_token_file, or allow_unauthenticated = true to run open anyway")
        }
        guard !config.enabledStreams.isEmpty else {
            throw ConfigError(file: file, line: nil, message: "no enabled stream (add a [stream ID] section with a url)")
        }
        let models = config.enabledStreams.map { $0.model ?? config.model }
        if let first = config.enabledStreams.first, let other = config.enabledStreams.first(where: { ($0.model ?? config.model) != models[0] }) {
            throw fail(other.line, "[stream \(other.id)] uses model '\(other.model ?? config.model ?? "default")' but [stream \(first.id)] uses '\(models[0] ?? "default")': all streams share one model")
        }
        return config
    }

    /// One `key = value` of a `[sink NAME]` section, checked as far as it can be alone.
    static func parseSinkKey(_ key: String, _ value: String, into sink: inout SinkConfig, keyLines: inout [String: Int],
                             line: Int, file: String) throws {
        func fail(_ message: String) -> ConfigError { ConfigError(file: file, line: line, message: "[sink \(sink.name)] \(message)") }
        guard sinkKeys.contains(key) else {
            throw fail("unknown key '\(key)' (known: \(sinkKeys.joined(separator: ", ")))")
        }
        guard keyLines[key] == nil else { throw fail("'\(key)' is set twice") }
        keyLines[key] = line
        switch key {
        case "type":
            guard let type = SinkConfig.SinkType(rawValue: value) else { throw fail("type must be mqtt or http (got '\(value)')") }
            sink.type = type
        case "url":
            guard !value.isEmpty, value.rangeOfCharacter(from: .whitespaces) == nil else { throw fail("url must be a URL without blanks") }
            sink.url = value
        case "topic":
            guard !value.isEmpty, !value.contains("+"), !value.contains("#") else {
                throw fail("topic must be a topic name without the wildcards + and # (got '\(value)')")
            }
            sink.topic = value
        case "qos":
            guard value == "0" || value == "1" else { throw fail("qos must be 0 or 1 (got '\(value)')") }
            sink.qos = Int(value)
        case "client_id":
            guard (1...128).contains(value.utf8.count), value.rangeOfCharacter(from: .whitespaces) == nil else {
                throw fail("client_id must be 1 to 128 characters without blanks")
            }
            sink.clientID = value
        case "username":
            guard !value.isEmpty, !value.contains(where: { $0.isWhitespace }) else { throw fail("username must be a name without blanks") }
            sink.username = value
        case "password_file":
            guard !value.isEmpty else { throw fail("password_file must not be empty") }
            sink.passwordFile = value
        case "ca_file":
            guard value.hasPrefix("/") else { throw fail("ca_file must be an absolute path (got '\(value)')") }
            sink.caFile = value
        case "lines":
            var kinds = Set<RecordKind>()
            for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                let name = part.trimmingCharacters(in: .whitespaces)
                guard let kind = RecordKind(rawValue: name) else {
                    throw fail("lines: unknown line type '\(name)' (frame, event, status)")
                }
                kinds.insert(kind)
            }
            sink.lines = kinds
        default: break
        }
    }

    /// A whole `[sink NAME]` section: `type` and a `url` of its scheme, no key of the other type,
    /// the password read from `password_file` (a relative name is found like a stream's), the
    /// `ca_file` readable.
    static func checkSink(_ sink: inout SinkConfig, keyLines: [String: Int], file: String, environment: [String: String]) throws {
        func fail(_ key: String?, _ message: String) -> ConfigError {
            ConfigError(file: file, line: key.flatMap { keyLines[$0] } ?? sink.line, message: "[sink \(sink.name)] \(message)")
        }
        guard keyLines["type"] != nil else { throw fail(nil, "has no type (type = mqtt or type = http)") }
        guard keyLines["url"] != nil else {
            throw fail(nil, "has no url (\(sink.type == .mqtt ? "url = mqtt://HOST:1883" : "url = https://HOST/PATH"))")
        }
        let schemes: Set<String> = sink.type == .mqtt ? ["mqtt", "mqtts"] : ["http", "https"]
        do {
            _ = try SinkAddress(sink.url, schemes: schemes)
        } catch {
            switch error {
            case .notURLWithHost, .scheme:
                throw fail("url", "url '\(Redaction.redact(sink.url))' is not a \(schemes.sorted().joined(separator: "://, "))://HOST… URL (type = \(sink.type.rawValue))")
            case let .port(port): throw fail("url", "url: port \(port) is out of range 1-65535")
            case .password: throw fail("url", "url: no password in the URL; give password_file")
            }
        }
        if sink.type == .http {
            for key in ["topic", "qos", "client_id"] where keyLines[key] != nil {
                throw fail(key, "\(key) is an MQTT setting; a type = http sink does not use it")
            }
        }
        if let name = sink.passwordFile {
            let path = credentialPath(name, file: file, environment: environment)
            let password = try readPassword(path) { fail("password_file", "password_file: \($0)") }
            Redaction.register(secret: password)
            sink.password = password
        }
        if let caFile = sink.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw fail("ca_file", "ca_file \(caFile): cannot be read")
        }
    }

    /// Checks every enabled stream's `classes` against the model's class names; throws a
    /// `ConfigError` at the `classes` line naming the unknown label. Any thread.
    public static func checkClasses(_ config: DaemonConfig, file: String, modelClasses: [String]) throws {
        for stream in config.enabledStreams {
            for label in stream.classes where !modelClasses.contains(label) {
                throw ConfigError(file: file, line: stream.keyLines["classes"] ?? stream.line,
                                  message: "[stream \(stream.id)] classes: '\(label)' is not a class of the model (\(modelClasses.joined(separator: ", ")))")
            }
        }
    }

    /// Whether `id` is a valid stream id: 1 to 64 characters of A-Z a-z 0-9 _ . - (no `/`, so an
    /// id is safe as a file name and a path segment). Any thread.
    public static func isValidID(_ id: String) -> Bool {
        guard (1...64).contains(id.utf8.count) else { return false }
        return id.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 46 || c == 45
        }
    }

    static func validateURL(_ value: String, line: Int, file: String) throws {
        if value.hasPrefix("/") { return }
        guard let colon = value.firstIndex(of: ":") else {
            throw ConfigError(file: file, line: line, message: "url '\(value)' is neither an absolute path nor a URL with a scheme (rtsp://, http://, tcp://, …)")
        }
        let scheme = value[..<colon].lowercased()
        guard urlSchemes.contains(scheme) else {
            throw ConfigError(file: file, line: line, message: "url '\(value)': unsupported scheme '\(scheme)' (use one of \(urlSchemes.sorted().joined(separator: ", ")))")
        }
        let rest = value[value.index(after: colon)...]
        if scheme == "file" { guard !rest.isEmpty else { throw ConfigError(file: file, line: line, message: "url '\(value)' has no path") }; return }
        guard rest.hasPrefix("//"), let comps = URLComponents(string: value), let host = comps.host, !host.isEmpty,
              value.rangeOfCharacter(from: .whitespaces) == nil else {
            throw ConfigError(file: file, line: line, message: "url '\(value)' is not a valid \(scheme):// URL with a host")
        }
        if let port = comps.port, !(1...65535).contains(port) {
            throw ConfigError(file: file, line: line, message: "url '\(value)': port \(port) is out of range 1-65535")
        }
    }

    static func parseListen(_ value: String, line: Int, file: String) throws -> (String, Int) {
        let bad = ConfigError(file: file, line: line, message: "listen must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080 (got '\(value)')")
        let host: String, portText: Substring
        if value.hasPrefix("[") {
            guard let close = value.firstIndex(of: "]") else { throw bad }
            host = String(value[value.index(after: value.startIndex)..<close])
            let after = value[value.index(after: close)...]
            guard after.hasPrefix(":") else { throw bad }
            portText = after.dropFirst()
        } else {
            guard let colon = value.lastIndex(of: ":") else { throw bad }
            host = String(value[..<colon])
            portText = value[value.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText) else { throw bad }
        guard (0...65535).contains(port) else {
            throw ConfigError(file: file, line: line, message: "listen port \(port) is out of range 0-65535")
        }
        return (host, port)
    }

    static func parseBool(_ key: String, _ value: String, _ line: Int, _ file: String) throws -> Bool {
        switch value.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw ConfigError(file: file, line: line, message: "\(key) must be true or false (got '\(value)')")
        }
    }

    static func parseInt(_ key: String, _ value: String, _ low: Int, _ high: Int, _ line: Int, _ file: String) throws -> Int {
        guard let number = Int(value) else {
            throw ConfigError(file: file, line: line, message: "\(key) must be a whole number (got '\(value)')")
        }
        guard (low...high).contains(number) else {
            throw ConfigError(file: file, line: line, message: "\(key) = \(number) is out of range \(low)-\(high)")
        }
        return number
    }

    /// The scene file `path` names (absolute, a regular file), parsed; its problems come back as
    /// this configuration line's error, with the scene file's own line.
    /// Puts `username` and the password of `password_file` into the stream's URL (percent-encoded)
    /// and registers every password, inline or from a file, with `Redaction` so that no message
    /// shows it. A relative `password_file` is a systemd credential (`$CREDENTIALS_DIRECTORY/NAME`)
    /// when that is set, else relative to the configuration's folder.
    static func addCredentials(_ stream: inout StreamConfig, file: String, environment: [String: String]) throws {
        if let components = URLComponents(string: stream.url) {
            if let inline = components.percentEncodedPassword, !inline.isEmpty {
                Redaction.register(secret: inline)
                if let decoded = inline.removingPercentEncoding { Redaction.register(secret: decoded) }
            }
            // A secret in the query (?token=…) is masked wherever it shows up, whole.
            for item in components.queryItems ?? [] where Redaction.secretParameters.contains(item.name.lowercased()) {
                if let value = item.value { Redaction.register(secret: value) }
            }
        }
        guard stream.username != nil || stream.passwordFile != nil else { return }
        let line = stream.keyLines["password_file"] ?? stream.keyLines["username"] ?? stream.line
        func fail(_ message: String) -> ConfigError { ConfigError(file: file, line: line, message: "[stream \(stream.id)] \(message)") }
        guard let marker = stream.url.range(of: "://"), !stream.url.hasPrefix("file:") else {
            throw fail("username and password_file need a network URL (rtsp://, http://, …)")
        }
        let authorityEnd = stream.url[marker.upperBound...].firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? stream.url.endIndex
        guard !stream.url[marker.upperBound..<authorityEnd].contains("@") else {
            throw fail("the url already has a user name or password; give them in the url or in username and password_file, not both")
        }
        var password: String?
        if let name = stream.passwordFile {
            let path = credentialPath(name, file: file, environment: environment)
            password = try readPassword(path) { fail("password_file \($0)") }
            Redaction.register(secret: password!)
        }
        let user = (stream.username ?? "").addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) ?? ""
        var userinfo = user
        if let password {
            let encoded = password.addingPercentEncoding(withAllowedCharacters: .urlPasswordAllowed) ?? password
            Redaction.register(secret: encoded)
            userinfo += ":" + encoded
        }
        stream.url = String(stream.url[..<marker.upperBound]) + userinfo + "@" + stream.url[marker.upperBound...]
    }

    /// Where a secret file named in the configuration is: an absolute path as it is; a relative
    /// one is a systemd credential (`$CREDENTIALS_DIRECTORY/NAME`, `LoadCredential=`) when that is
    /// set, else relative to the configuration's folder. Pure.
    static func credentialPath(_ name: String, file: String, environment: [String: String]) -> String {
        if name.hasPrefix("/") { return name }
        if let credentials = environment["CREDENTIALS_DIRECTORY"], !credentials.isEmpty { return credentials + "/" + name }
        return URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// The secret in `path`: its one line, without the newline. `fail` makes the error from
    /// "PATH: what is wrong" when it is missing, unreadable, empty, too long or more than one line.
    static func readPassword(_ path: String, fail: (String) -> ConfigError) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw fail("\(path): \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw fail("\(path): not a regular file") }
        guard info.st_size <= 4096 else { throw fail("\(path): larger than 4096 bytes; it should hold one line") }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("\(path): cannot read it") }
        guard var text = String(data: data, encoding: .utf8) else { throw fail("\(path): not UTF-8 text") }
        // "\r\n" is one Character in Swift: either ending goes with one removeLast.
        if text.hasSuffix("\r\n") || text.hasSuffix("\n") { text.removeLast() }
        guard !text.isEmpty else { throw fail("\(path): empty") }
        guard !text.contains(where: \.isNewline) else { throw fail("\(path): more than one line; it should hold one line") }
        return text
    }

    static func readScene(_ path: String, line: Int, file: String) throws -> Scene {
        guard path.hasPrefix("/") else { throw ConfigError(file: file, line: line, message: "scene must be an absolute path (got '\(path)')") }
        let text: String
        do {
            text = try SceneParser.read(path)
        } catch {
            let why = error == .missing ? "no such file" : "not a readable regular text file"
            throw ConfigError(file: file, line: line, message: "scene \(path): \(why)")
        }
        do {
            return try SceneParser.parse(text, file: path)
        } catch {
            throw ConfigError(file: file, line: line, message: "scene: \(error.description)")
        }
    }

    /// `input_options`: comma-separated `KEY=VALUE` (blanks around each trimmed; a value holds no
    /// comma); empty: none. An item that is not `KEY=VALUE`, or a key given twice, is this line's error.
    static func parseInputOptions(_ value: String, _ line: Int, _ file: String) throws -> [String: String] {
        var options: [String: String] = [:]
        guard !value.isEmpty else { return options }
        for item in value.split(separator: ",", omittingEmptySubsequences: false) {
            let item = item.trimmingCharacters(in: .whitespaces)
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex,
                  !item[..<equals].contains(where: { $0.isWhitespace }) else {
                throw ConfigError(file: file, line: line, message: "input_options: '\(item)' is not KEY=VALUE (write KEY=VALUE, KEY=VALUE, …)")
            }
            let key = String(item[..<equals])
            guard options.updateValue(String(item[item.index(after: equals)...]), forKey: key) == nil else {
                throw ConfigError(file: file, line: line, message: "input_options: \(key) is given twice")
            }
        }
        return options
    }

    static func parseDouble(_ key: String, _ value: String, _ low: Double, _ high: Double, _ line: Int, _ file: String) throws -> Double {
        // Decimal only: Double("0x10") would read hexadecimal, and "nan"/"inf" are not settings.
        guard isDecimal(value), let number = Double(value), number.isFinite else {
            throw ConfigError(file: file, line: line, message: "\(key) must be a number (got '\(value)')")
        }
        guard number >= low && number <= high else {
            throw ConfigError(file: file, line: line, message: "\(key) = \(value) is out of range \(formatNumber(low))-\(formatNumber(high))")
        }
        return number
    }

    /// Whether `value` is a plain decimal number: optional sign, digits with an optional point,
    /// optional exponent (`10`, `-0.5`, `.5`, `1e3`); no hexadecimal, no `nan` or `inf`.
    static func isDecimal(_ value: String) -> Bool {
        var bytes = Substring(value).utf8[...]
        func digits() -> Int {
            var n = 0
            while let c = bytes.first, c >= 48 && c <= 57 { bytes = bytes.dropFirst(); n += 1 }
            return n
        }
        if let c = bytes.first, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        var mantissa = digits()
        if bytes.first == UInt8(ascii: ".") { bytes = bytes.dropFirst(); mantissa += digits() }
        guard mantissa > 0 else { return false }
        if let c = bytes.first, c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if let s = bytes.first, s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }

    /// Whether `host` (as in `listen`) is a loopback address: `localhost`, 127.0.0.0/8, `::1`. Any thread.
    public static func isLoopback(host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { raw in
                let b = Array(raw)
                if b.prefix(15).allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }          // ::1
                return b.prefix(10).allSatisfy { $0 == 0 } && b[10] == 0xFF && b[11] == 0xFF && b[12] == 127   // ::ffff:127.x.x.x
            }
        }
        return false
    }

    /// Byte sizes: a whole number with an optional K, M, G or T suffix (powers of 1024).
    static func parseSize(_ key: String, _ value: String, _ low: Int, _ high: Int, _ line: Int, _ file: String) throws -> Int {
        var digits = Substring(value)
        var factor = 1
        if let last = digits.last, let f = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40][String(last).uppercased()] {
            factor = f
            digits = digits.dropLast()
        }
        guard let number = Int(digits), number >= 0, number <= high / factor else {
            if Int(digits) != nil {
                throw ConfigError(file: file, line: line, message: "\(key) = \(value) is out of range 64K-1T")
            }
            throw ConfigError(file: file, line: line, message: "\(key) must be a byte count such as 100M (got '\(value)')")
        }
        let bytes = number * factor
        guard bytes >= low else { throw ConfigError(file: file, line: line, message: "\(key) = \(value) is out of range 64K-1T") }
        return bytes
    }

    static func formatNumber(_ x: Double) -> String {
        x == x.rounded() ? String(Int(x)) : String(x)
    }
}
