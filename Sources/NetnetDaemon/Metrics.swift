import Foundation
import NetnetScene

/// Where a stream's reader is. The names are the `state` of status events and of `/metrics`. Any thread.
public enum StreamState: String, Sendable, CaseIterable {
    /// Opening the URL (connect and probe).
    case connecting
    /// Frames are arriving.
    case streaming
    /// No frame for `stall_timeout` seconds: the connection is dropped and retried.
    case stalled
    /// Waiting (exponential backoff with jitter) before the next connection attempt.
    case backingOff = "backing_off"
    /// The reader has ended (daemon stopping, stream removed or disabled by a reload).
    case stopped
}

/// A Prometheus histogram with fixed buckets (seconds). Not synchronised: guarded by its owner's lock.
public struct Histogram: Sendable {
    /// Upper bounds of the buckets, ascending (the `+Inf` bucket is implicit).
    public let bounds: [Double]
    /// Observations per bucket (not cumulative), plus one for `+Inf`.
    public private(set) var counts: [UInt64]
    /// Sum of all observations.
    public private(set) var sum = 0.0
    /// Number of observations.
    public private(set) var count: UInt64 = 0

    /// Buckets from 1 ms to 10 s, for latencies.
    public static let latencyBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// An empty histogram. Any thread.
    public init(bounds: [Double] = Histogram.latencyBounds) {
        self.bounds = bounds
        counts = [UInt64](repeating: 0, count: bounds.count + 1)
    }

    /// Adds one observation. Allocates nothing.
    public mutating func observe(_ value: Double) {
        var i = 0
        while i < bounds.count && value > bounds[i] { i += 1 }
        counts[i] += 1
        sum += value
        count += 1
    }
}

/// One stream's counters, state and latency histograms, shared by its reader thread, the inference
/// thread and the HTTP/metrics readers. Every member is guarded by one lock; any thread.
public final class StreamStats: @unchecked Sendable {
    /// The stream id.
    public let id: String
    private let lock = NSLock()
    private var values = Snapshot()

    /// A copy of everything, for `/metrics` and `/api/streams`. Value type.
    public struct Snapshot: Sendable {
        /// Frames decoded by the reader.
        public var framesDecoded: UInt64 = 0
        /// Frames run through the network.
        public var framesInferred: UInt64 = 0
        /// Frames replaced by a newer one before inference took them (the `latest` policy).
        public var framesDropped: UInt64 = 0
        /// Corrupt packets or frames the decoder skipped.
        public var decodeErrors: UInt64 = 0
        /// Connection attempts after the first one (one per failure: open failed, stalled, ended).
        public var reconnects: UInt64 = 0
        /// Entries into each state, by `StreamState.rawValue`.
        public var transitions: [String: UInt64] = [:]
        /// The current state.
        public var state: StreamState = .connecting
        /// Why the last connection ended or failed, if it did.
        public var lastError: String?
        /// Frames waiting for inference (0 or 1 with the `latest` policy).
        public var queueDepth = 0
        /// The stream's URL.
        public var url = ""
        /// Wall-clock time of the last state change, ns since the epoch.
        public var stateSinceNanoseconds: Int64 = 0
        /// Wall-clock time of the last inferred frame, ns since the epoch (0: none yet).
        public var lastFrameNanoseconds: Int64 = 0
        /// Inference time (forward + post-processing), seconds.
        public var inference = Histogram()
        /// From the frame leaving the decoder to its event being published, seconds.
        public var endToEnd = Histogram()
        /// The scene's counts (nil: the stream has no scene): crossings and entries since counting
        /// began, kept across restarts in the state directory; objects in the zones now.
        public var counts: SceneCounts?
    }

    /// Stats for stream `id` reading `url`. Any thread.
    public init(id: String, url: String) {
        self.id = id
        values.url = url
    }

    /// A consistent copy. Any thread.
    public func snapshot() -> Snapshot {
        lock.lock(); defer { lock.unlock() }
        return values
    }

    /// Changes the values under the lock. Any thread; `body` must not block.
    public func update<T>(_ body: (inout Snapshot) -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        return body(&values)
    }
}

/// The HTTP server's connection figures for `/metrics`. Value type; any thread.
public struct HTTPConnectionCounts: Sendable, Equatable {
    /// Most connections open at once (`http_max_connections`, or the automatic size).
    public var limit: Int
    /// Connections open now.
    public var open = 0
    /// Connections let in since start.
    public var accepted: UInt64 = 0
    /// Connections refused (answered 503 and closed) because `limit` were open.
    public var refused: UInt64 = 0
    /// Connections closed for not sending a request head within `http_header_timeout`.
    public var headerTimeouts: UInt64 = 0
    /// Kept-alive connections closed after `http_idle_timeout` without a request.
    public var idleTimeouts: UInt64 = 0
    /// Requests answered `414` and closed: a request target over `HTTPRequestLimits.maxTarget`.
    public var targetsTooLong: UInt64 = 0
    /// Requests answered `431` and closed: header fields over `HTTPRequestLimits`' count or size.
    public var headersTooLarge: UInt64 = 0

    /// Figures for a server with `limit`, all zero. Any thread.
    public init(limit: Int) { self.limit = limit }
}

/// A sink's state for `/metrics`: up or failing, and how often it recovered. Value type; any thread.
public struct SinkHealthFigure: Sendable, Equatable {
    /// `stdout` or `file`.
    public var sink: String
    /// Whether it writes.
    public var up: Bool
    /// Times it went from failing back to writing.
    public var recoveries: UInt64

    /// A figure. Any thread.
    public init(sink: String, up: Bool, recoveries: UInt64) {
        self.sink = sink
        self.up = up
        self.recoveries = recoveries
    }
}

/// Renders the Prometheus text exposition format (version 0.0.4) for the streams and the sinks.
/// Pure; any thread.
public enum MetricsText {
    /// Content type of the exposition.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The metrics text for `streams` (id order is kept), the event consumers' drop counts, the
    /// daemon-wide figures, the `process_*` families of `process` (by default sampled now, which
    /// reads /proc: `ProcessFigures.sample`; nil leaves them out) and `netnet_build_info`. Any thread.
    public static func render(streams: [(id: String, stats: StreamStats.Snapshot)], sinkDrops: [(sink: String, dropped: UInt64)],
                              uptimeSeconds: Double, reloads: UInt64, reloadFailures: UInt64,
                              sinks: [SinkHealthFigure] = [], http: HTTPConnectionCounts? = nil, live: [LiveFigure] = [],
                              process: ProcessFigures? = ProcessFigures.sample()) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func counter(_ name: String, _ help: String, _ value: (StreamStats.Snapshot) -> UInt64) {
            family(name, "counter", help)
            for (id, s) in streams { out += "\(name){stream=\"\(escape(id))\"} \(value(s))\n" }
        }
        counter("netnet_frames_decoded_total", "Frames decoded by the stream's reader.") { $0.framesDecoded }
        counter("netnet_frames_inferred_total", "Frames run through the network.") { $0.framesInferred }
        counter("netnet_frames_dropped_total", "Frames replaced by a newer frame before inference (latest policy).") { $0.framesDropped }
        counter("netnet_decode_errors_total", "Corrupt packets or frames skipped by the decoder.") { $0.decodeErrors }
        counter("netnet_reconnects_total", "Connection attempts after a failure (open failed, stalled or ended).") { $0.reconnects }
        family("netnet_state_transitions_total", "counter", "Entries into each stream state.")
        for (id, s) in streams {
            for state in StreamState.allCases {
                out += "netnet_state_transitions_total{stream=\"\(escape(id))\",state=\"\(state.rawValue)\"} \(s.transitions[state.rawValue] ?? 0)\n"
            }
        }
        family("netnet_stream_state", "gauge", "1 for the stream's current state, 0 for the others.")
        for (id, s) in streams {
            for state in StreamState.allCases {
                out += "netnet_stream_state{stream=\"\(escape(id))\",state=\"\(state.rawValue)\"} \(s.state == state ? 1 : 0)\n"
            }
        }
        family("netnet_queue_depth", "gauge", "Frames waiting for inference.")
        for (id, s) in streams { out += "netnet_queue_depth{stream=\"\(escape(id))\"} \(s.queueDepth)\n" }
        func histogram(_ name: String, _ help: String, _ value: (StreamStats.Snapshot) -> Histogram) {
            family(name, "histogram", help)
            for (id, s) in streams {
                let h = value(s)
                var cumulative: UInt64 = 0
                for (i, bound) in h.bounds.enumerated() {
                    cumulative += h.counts[i]
                    out += "\(name)_bucket{stream=\"\(escape(id))\",le=\"\(bound)\"} \(cumulative)\n"
                }
                out += "\(name)_bucket{stream=\"\(escape(id))\",le=\"+Inf\"} \(h.count)\n"
                out += "\(name)_sum{stream=\"\(escape(id))\"} \(h.sum)\n"
                out += "\(name)_count{stream=\"\(escape(id))\"} \(h.count)\n"
            }
        }
        histogram("netnet_inference_seconds", "Forward pass plus post-processing time per inferred frame.") { $0.inference }
        histogram("netnet_end_to_end_seconds", "From the decoded frame to its event being published.") { $0.endToEnd }
        let scened = streams.filter { $0.stats.counts != nil }
        if !scened.isEmpty {
            // One series per line, direction and label seen (labels appear with their first count).
            family("netnet_line_crossings_total", "counter", "Scene line crossings by confirmed tracks, by direction and label (kept across restarts).")
            for (id, s) in scened {
                for line in s.counts!.lines {
                    for direction in [CrossingDirection.in, .out] {
                        let byLabel = line.crossings(direction)
                        for label in byLabel.keys.sorted() {
                            out += "netnet_line_crossings_total{stream=\"\(escape(id))\",line=\"\(escape(line.name))\",direction=\"\(direction.rawValue)\",label=\"\(escape(label))\"} \(byLabel[label]!)\n"
                        }
                    }
                }
            }
            family("netnet_zone_objects", "gauge", "Objects inside a scene zone now, by label.")
            for (id, s) in scened {
                for zone in s.counts!.zones {
                    // A label seen entering stays as a 0 series once its objects left, so a graph drops to 0.
                    for label in zone.entered.keys.sorted() {
                        out += "netnet_zone_objects{stream=\"\(escape(id))\",zone=\"\(escape(zone.name))\",label=\"\(escape(label))\"} \(zone.objects[label] ?? 0)\n"
                    }
                }
            }
            family("netnet_zone_entries_total", "counter", "Entries into a scene zone, by label (kept across restarts).")
            for (id, s) in scened {
                for zone in s.counts!.zones {
                    for label in zone.entered.keys.sorted() {
                        out += "netnet_zone_entries_total{stream=\"\(escape(id))\",zone=\"\(escape(zone.name))\",label=\"\(escape(label))\"} \(zone.entered[label]!)\n"
                    }
                }
            }
        }
        family("netnet_events_dropped_total", "counter", "Events dropped because a consumer's queue was full.")
        for (sink, dropped) in sinkDrops { out += "netnet_events_dropped_total{sink=\"\(escape(sink))\"} \(dropped)\n" }
        if !sinks.isEmpty {
            family("netnet_sink_up", "gauge", "1 while the sink writes, 0 while its output fails (its events are dropped and counted).")
            for figure in sinks { out += "netnet_sink_up{sink=\"\(escape(figure.sink))\"} \(figure.up ? 1 : 0)\n" }
            family("netnet_sink_recoveries_total", "counter", "Times the sink went from failing back to writing.")
            for figure in sinks { out += "netnet_sink_recoveries_total{sink=\"\(escape(figure.sink))\"} \(figure.recoveries)\n" }
        }
        if let http {
            family("netnet_http_connections_open", "gauge", "HTTP connections open now.")
            out += "netnet_http_connections_open \(http.open)\n"
            family("netnet_http_connections_limit", "gauge", "Most HTTP connections open at once (http_max_connections or the automatic size).")
            out += "netnet_http_connections_limit \(http.limit)\n"
            family("netnet_http_connections_accepted_total", "counter", "HTTP connections let in.")
            out += "netnet_http_connections_accepted_total \(http.accepted)\n"
            family("netnet_http_connections_refused_total", "counter", "HTTP connections refused (503 and closed) because the limit was reached.")
            out += "netnet_http_connections_refused_total \(http.refused)\n"
            family("netnet_http_connections_timed_out_total", "counter", "HTTP connections closed for not sending a request head in time, by which timeout.")
            out += "netnet_http_connections_timed_out_total{timeout=\"header\"} \(http.headerTimeouts)\n"
            out += "netnet_http_connections_timed_out_total{timeout=\"idle\"} \(http.idleTimeouts)\n"
            family("netnet_http_requests_rejected_total", "counter", "HTTP requests answered 414 or 431 and closed before routing, by reason.")
            out += "netnet_http_requests_rejected_total{reason=\"target_too_long\"} \(http.targetsTooLong)\n"
            out += "netnet_http_requests_rejected_total{reason=\"headers_too_large\"} \(http.headersTooLarge)\n"
        }
        if !live.isEmpty {
            family("netnet_live_viewers", "gauge", "Live view (live.mjpeg) viewers of the stream now.")
            for figure in live { out += "netnet_live_viewers{stream=\"\(escape(figure.stream))\"} \(figure.viewers)\n" }
            family("netnet_live_frames_encoded_total", "counter", "Live view pictures encoded (one per new frame while watched, shared by all viewers).")
            for figure in live { out += "netnet_live_frames_encoded_total{stream=\"\(escape(figure.stream))\"} \(figure.encoded)\n" }
            family("netnet_live_frames_skipped_total", "counter", "Live view pictures a viewer did not get because it had not taken the previous one.")
            for figure in live { out += "netnet_live_frames_skipped_total{stream=\"\(escape(figure.stream))\"} \(figure.skipped)\n" }
        }
        family("netnet_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.")
        out += "netnet_config_reloads_total{result=\"applied\"} \(reloads)\n"
        out += "netnet_config_reloads_total{result=\"rejected\"} \(reloadFailures)\n"
        family("netnet_uptime_seconds", "gauge", "Seconds since the daemon started.")
        out += "netnet_uptime_seconds \(uptimeSeconds)\n"
        if let process {
            // The names, types and help texts of Prometheus' client libraries (client_golang's
            // process collector), so the usual dashboards and alerts work unchanged.
            func sample(_ name: String, _ type: String, _ help: String, _ value: String?) {
                guard let value else { return }
                family(name, type, help)
                out += "\(name) \(value)\n"
            }
            sample("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", process.cpuSeconds.map { "\($0)" })
            sample("process_open_fds", "gauge", "Number of open file descriptors.", process.openDescriptors.map { "\($0)" })
            sample("process_max_fds", "gauge", "Maximum number of open file descriptors.", process.maxDescriptors.map { "\($0)" })
            sample("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", process.virtualMemoryBytes.map { "\($0)" })
            sample("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", process.residentMemoryBytes.map { "\($0)" })
            sample("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", process.startTimeSeconds.map { "\($0)" })
        }
        family("netnet_build_info", "gauge", "A metric with a constant '1' value labeled by the netnet version and the Swift and FFmpeg versions it was built with.")
        out += "netnet_build_info{version=\"\(escape(NetnetBuild.version))\",swift=\"\(escape(NetnetBuild.swiftVersion))\",ffmpeg=\"\(escape(NetnetBuild.ffmpegVersion))\"} 1\n"
        return out
    }

    /// Escapes a label value (backslash, quote, newline).
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
