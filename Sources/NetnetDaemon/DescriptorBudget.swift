import Foundation

/// How the daemon shares its file descriptors (RLIMIT_NOFILE) between what must never run out —
/// the runtime, the streams, the sinks — and HTTP clients, which get what is left, up to a cap.
/// Running out of descriptors is not a local failure: Dispatch's worker monitor, FFmpeg's
/// sockets and the sinks' rotations all fail with EMFILE, so the HTTP server's cap is sized to
/// leave the reserve free (docs/operations.md, "File descriptors"). Pure; value type; any thread.
public struct DescriptorBudget: Sendable, Equatable {
    /// Descriptors for the process itself: standard streams, the event loops' epoll, eventfd and
    /// timerfd, the listening socket, the model file, Dispatch's and FFmpeg's transient opens.
    public static let base = 64
    /// Per configured stream: its connection (RTSP/TCP/HTTP socket or file) with room for a
    /// reconnect overlapping the old one's close.
    public static let perStream = 4
    /// Per sink: its file, and the new file while rotating.
    public static let perSink = 2
    /// The automatic HTTP connection cap when the limit allows it.
    public static let defaultConnections = 1024
    /// Fewer free descriptors than this for HTTP clients and the daemon refuses to start.
    public static let minimumConnections = 16
    /// The soft limit is raised to the hard one, but not past this.
    public static let raiseCeiling = 65_536

    /// The soft RLIMIT_NOFILE the budget is made for.
    public var limit: Int
    /// Descriptors kept for the runtime, streams and sinks.
    public var reserve: Int
    /// The HTTP connection cap.
    public var connections: Int

    /// The reserve for `streams` streams and `sinks` sinks.
    public static func reserve(streams: Int, sinks: Int) -> Int {
        base + perStream * streams + perSink * sinks
    }

    /// The budget for `config` under a soft limit of `limit` descriptors: `http_max_connections`
    /// if set (it must fit), else `min(1024, limit - reserve)`. Throws a one-line message saying
    /// what is needed when it does not fit. Any thread.
    public static func make(config: DaemonConfig, limit: Int) throws -> DescriptorBudget {
        let sinks = (config.stdoutSink ? 1 : 0) + (config.jsonLinesPath == nil ? 0 : 1)
        let reserve = reserve(streams: config.streams.count, sinks: sinks)
        let free = limit - reserve
        if config.httpMaxConnections > 0 {
            guard config.httpMaxConnections <= free else {
                throw DescriptorBudgetError(message: "http_max_connections = \(config.httpMaxConnections) with \(config.streams.count) streams needs \(reserve + config.httpMaxConnections) file descriptors (\(reserve) reserved: \(base) + \(perStream) per stream + \(perSink) per sink), but the limit (RLIMIT_NOFILE, systemd's LimitNOFILE=) is \(limit); raise the limit or lower http_max_connections")
            }
            return DescriptorBudget(limit: limit, reserve: reserve, connections: config.httpMaxConnections)
        }
        guard free >= minimumConnections else {
            throw DescriptorBudgetError(message: "\(config.streams.count) streams need at least \(reserve + minimumConnections) file descriptors (\(reserve) reserved: \(base) + \(perStream) per stream + \(perSink) per sink, and \(minimumConnections) for HTTP clients), but the limit (RLIMIT_NOFILE, systemd's LimitNOFILE=) is \(limit); raise it")
        }
        return DescriptorBudget(limit: limit, reserve: reserve, connections: min(defaultConnections, free))
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit (at most `raiseCeiling`) and returns the
    /// soft limit in force, and the errno of a refused raise (a seccomp filter without
    /// `@resources`), if any. Call once at start, before threads that open files. Any thread.
    public static func raiseSoftLimit() -> (limit: Int, refused: Int32?) {
        var current = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &current) == 0 else { return (1024, errno) }
        let hard = current.rlim_max == rlim_t.max ? rlim_t(raiseCeiling) : min(current.rlim_max, rlim_t(raiseCeiling))
        guard current.rlim_cur < hard else { return (Int(current.rlim_cur), nil) }
        var raised = current
        raised.rlim_cur = hard
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 else { return (Int(current.rlim_cur), errno) }
        return (Int(hard), nil)
    }
}

/// A descriptor budget that does not fit the limit. Value type; any thread.
public struct DescriptorBudgetError: Error, CustomStringConvertible, Sendable {
    /// The one-line message.
    public let message: String
    /// The message.
    public var description: String { message }
}
