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

/// Keeps a descriptor number free below the soft RLIMIT_NOFILE for the runtime, whatever squeezes
/// the limit. libdispatch's worker monitor (which Swift concurrency's pool runs on) opens
/// `/proc/<tid>/stat` once a second and aborts the process (SIGILL, "registered worker exited
/// prematurely") when that open fails; Linux's `open` takes the lowest free number and fails with
/// EMFILE when that number is not below the soft limit, so what matters is free numbers below the
/// limit, not a count. The policy (docs/operations.md, "File descriptors"):
/// - spares: `count` descriptors on /dev/null, opened at start so they get low numbers, below any
///   limit a squeeze (`prlimit --pid`) is likely to leave;
/// - `relieve()`: with no free number below the limit, one spare is closed, so the monitor has one;
/// - `mayOpen()`: the daemon's own openers (a sink's reopen and rotation, a stream's connection)
///   open only while `openHeadroom` numbers are free, so what they keep never takes the last one;
/// - `maintain()`, every `watchInterval` on a thread of its own: relieves a squeeze nobody of ours
///   has met yet, and takes the spares back once there is room again.
/// One owner per descriptor: the spares are closed only here. Any thread.
public final class DescriptorSpares: @unchecked Sendable {
    /// Free numbers below the soft limit an opener that keeps its descriptor needs: it takes one,
    /// one stays for the runtime.
    public static let openHeadroom = 2
    /// How often the watcher checks: well under the monitor's 1 s, so a squeeze from outside leaves
    /// no free number for at most this long.
    public static let watchInterval = 0.1
    /// Spares held when there is room.
    public let count: Int
    private let lock = NSLock()
    private var spares: [Int32] = []
    private var released: UInt64 = 0
    private var watching = false
    private let watcherDone = DispatchSemaphore(value: 0)

    /// Opens `count` spares now; call early, before the streams, sinks and HTTP server open theirs,
    /// so the spares get low numbers. Any thread.
    public init(count: Int = 2) {
        self.count = count
        for _ in 0..<count { if let fd = Self.openSpare() { spares.append(fd) } }
    }

    deinit {
        for fd in spares { close(fd) }
    }

    /// Spares held now. Any thread.
    public var held: Int { lock.withLock { spares.count } }

    /// Spares closed to make room so far. Any thread.
    public var releases: UInt64 { lock.withLock { released } }

    /// The free descriptor numbers below the soft limit, counted from the limit down and no further
    /// than `needed` (`fcntl(F_GETFD)` answers EBADF for a free number; nothing is opened). Cheap
    /// while the top of the table is free, as it is unless the limit was squeezed. Any thread.
    public static func freeBelowLimit(upTo needed: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return needed }
        var n = limit.rlim_cur >= rlim_t(Int32.max) ? Int32.max - 1 : Int32(limit.rlim_cur) - 1
        var found = 0
        while n >= 0 && found < needed {
            if fcntl(n, F_GETFD) == -1 && errno == EBADF { found += 1 }
            n -= 1
        }
        return found
    }

    /// Whether the daemon may open a descriptor it will keep: true while `openHeadroom` numbers
    /// below the soft limit are free. False otherwise, after `relieve()`: the caller then counts
    /// the attempt as failed with EMFILE, without opening. Any thread.
    public func mayOpen() -> Bool {
        if Self.freeBelowLimit(upTo: Self.openHeadroom) >= Self.openHeadroom { return true }
        relieve()
        return false
    }

    /// Called when an open failed with EMFILE (or `mayOpen` said no): with no free number below the
    /// soft limit, closes one spare (the lowest, most likely below a squeezed limit). Any thread.
    public func relieve() {
        lock.withLock {
            if Self.freeBelowLimit(upTo: 1) == 0 { releaseLowest() }
        }
    }

    /// Relieves a squeeze, or takes one spare back when more than `openHeadroom` numbers are free
    /// (so the daemon's openers still may open after it). Any thread; the watcher calls it.
    public func maintain() {
        lock.withLock {
            let free = Self.freeBelowLimit(upTo: Self.openHeadroom + 1)
            if free == 0 {
                releaseLowest()
            } else if free > Self.openHeadroom, spares.count < count, let fd = Self.openSpare() {
                spares.append(fd)
            }
        }
    }

    /// Starts the watcher thread, which calls `maintain()` every `watchInterval` until
    /// `stopWatching()`, and `changed(held, before)` on that thread when the spares held changed
    /// since its last look (for the log). Any thread, once.
    public func startWatching(changed: @escaping @Sendable (_ held: Int, _ before: Int) -> Void = { _, _ in }) {
        lock.withLock { watching = true }
        let thread = Thread { [self] in
            var lastHeld = held
            while lock.withLock({ watching }) {
                maintain()
                let now = held
                if now != lastHeld { changed(now, lastHeld) }
                lastHeld = now
                Thread.sleep(forTimeInterval: Self.watchInterval)
            }
            watcherDone.signal()
        }
        thread.name = "netnet-descriptors"
        thread.stackSize = 1 << 18
        thread.start()
    }

    /// Stops the watcher and waits for it (at most `watchInterval`). Any thread, once, after `startWatching`.
    public func stopWatching() {
        lock.withLock { watching = false }
        watcherDone.wait()
    }

    /// Closes the lowest-numbered spare, if any. Under `lock`.
    private func releaseLowest() {
        guard let lowest = spares.indices.min(by: { spares[$0] < spares[$1] }) else { return }
        close(spares.remove(at: lowest))
        released += 1
    }

    private static func openSpare() -> Int32? {
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        return fd >= 0 ? fd : nil
    }
}
