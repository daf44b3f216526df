import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import NetnetDaemon
import NetnetEngine
import NetnetPipeline
import NetnetScene

/// The daemon's HTTP API (Hummingbird): `GET /healthz`, `/readyz`, `/metrics` (Prometheus text),
/// `/api/streams` (status JSON), `/api/events` (Server-Sent Events, `?stream=ID` filter),
/// `/api/streams/{id}/snapshot.jpg` and `/api/streams/{id}/counts` (`netnet.counts/1`). Runs on
/// Swift's concurrency pool; it only reads the
/// supervisor's counters and subscribes to its event hub, never blocking a pipeline thread.
/// A `Service`: `run()` from a `ServiceGroup` (the daemon's), `boundPort()` from any task.
public final class HTTPServer: Service, @unchecked Sendable {
    /// What the handlers read; provided by the daemon. All closures are called from the HTTP tasks.
    public struct Sources: Sendable {
        /// The supervisor whose streams are reported.
        public var supervisor: @Sendable () -> Supervisor
        /// Whether the daemon is ready (model loaded, streams started).
        public var ready: @Sendable () -> Bool
        /// Configuration reloads applied and rejected.
        public var reloads: @Sendable () -> (applied: UInt64, rejected: UInt64)
        /// Events queued per SSE client before drops.
        public var sseQueue: Int
        /// The latest frame of a stream as JPEG with its boxes drawn, or nil if none yet.
        public var snapshot: @Sendable (String) -> [UInt8]?
        /// The sinks' health: a failing one makes `/readyz` answer 503 with the reason.
        public var sinks: @Sendable () -> [LineSink.Health]
        /// Who may use the API (the bearer token).
        public var access: HTTPAccess
        /// Seconds between the `:` comment lines of a quiet SSE response (`sse_heartbeat`).
        public var sseHeartbeat: Double
        /// The live view's pictures (`live.mjpeg`; nil: that endpoint answers 404).
        public var live: LiveFrames?
        /// More `/metrics` text, appended as it is (the spool's and the delivery sinks'); called
        /// from the HTTP tasks, so it must not block.
        public var moreMetrics: @Sendable () -> String

        /// Bundles the closures. Any thread.
        public init(supervisor: @escaping @Sendable () -> Supervisor, ready: @escaping @Sendable () -> Bool,
                    reloads: @escaping @Sendable () -> (applied: UInt64, rejected: UInt64), sseQueue: Int,
                    snapshot: @escaping @Sendable (String) -> [UInt8]?,
                    sinks: @escaping @Sendable () -> [LineSink.Health] = { [] }, access: HTTPAccess = HTTPAccess(),
                    sseHeartbeat: Double = 15, live: LiveFrames? = nil, moreMetrics: @escaping @Sendable () -> String = { "" }) {
            self.live = live
            self.moreMetrics = moreMetrics
            self.access = access
            self.sseHeartbeat = sseHeartbeat
            self.supervisor = supervisor
            self.ready = ready
            self.reloads = reloads
            self.sseQueue = sseQueue
            self.snapshot = snapshot
            self.sinks = sinks
        }
    }

    private let host: String
    private let port: Int
    private let sources: Sources
    private let limits: HTTPLimits
    private let limiter: ConnectionLimiter
    private let lock = NSLock()
    private var binding: Result<Int, Error>?
    private var bindingWaiters: [CheckedContinuation<Int, Error>] = []
    private var streams: [Int: AsyncStream<SSEItem>.Continuation] = [:]
    private var nextStream = 0
    /// The live view's login sessions and open picture responses (LiveView.swift).
    private let sessions = SessionStore()
    private let liveResponses = LiveResponses()

    /// A server for `host:port` (port 0: any free port) holding its connections to `limits`;
    /// `descriptors`, the daemon's spare-descriptor policy, also refuses a connection that took the
    /// last free descriptor number (nil: none). Any thread.
    public init(host: String, port: Int, sources: Sources, limits: HTTPLimits = HTTPLimits(),
                descriptors: DescriptorSpares? = nil) {
        self.host = host
        self.port = port
        self.sources = sources
        self.limits = limits
        limiter = ConnectionLimiter(limit: limits.maxConnections, reserve: limits.descriptorReserve, descriptors: descriptors)
        // Held from the start, so a client reconnecting after a blip gets what it missed.
        let replay = self.replay
        hub = sources.supervisor().hub
        replaySubscription = hub.subscribe(name: "sse-replay") { event in
            replay.append(event)
            return true
        }
    }

    deinit {
        hub.unsubscribe(replaySubscription)
    }

    /// The hub the replay buffer listens to, and its subscription there (ended with the server).
    private let hub: EventHub
    private let replaySubscription: Int

    /// The recent events an SSE client resumes from with `Last-Event-ID`.
    public let replay = EventReplay()

    /// Connections open, refused and timed out so far. Any thread.
    public var connectionCounts: HTTPConnectionCounts { limiter.snapshot }

    /// Serves until the service group shuts down (or cancels): binds `host:port`, reports the
    /// bound port to `boundPort()`, and on graceful shutdown ends every SSE response so the
    /// server can drain. Throws a one-line error when it cannot listen
    /// (`cannot listen on 127.0.0.1:8080: Address already in use`). Run by a `ServiceGroup`.
    public func run() async throws {
        let router = makeRouter()
        // The process's logging system: `netnet serve` bootstraps it with the daemon's log.
        let logger = Logger(label: "netnet-http")
        let limits = self.limits, limiter = self.limiter
        let server = HTTPServerBuilder { responder in
            GuardedHTTP1Channel(responder: responder, limits: limits, limiter: limiter)
        }
        let app = Application(router: router, server: server,
                              configuration: .init(address: .hostname(host, port: port), serverName: "netnet"),
                              onServerRunning: { [self] channel in bound(.success(channel.localAddress?.port ?? port)) },
                              logger: logger)
        do {
            try await withGracefulShutdownHandler {
                try await app.run()
            } onGracefulShutdown: { [self] in
                finishStreams()
            }
        } catch {
            let failure = HTTPServerError(message: "cannot listen on \(host):\(port): \(error)")
            bound(.failure(failure))
            throw isBound ? error : failure
        }
        bound(.failure(HTTPServerError(message: "cannot listen on \(host):\(port): the server ended")))
    }

    /// The port the server listens on, once it does; throws the reason it could not. Any task.
    public func boundPort() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            if let binding {
                lock.unlock()
                continuation.resume(with: binding)
            } else {
                bindingWaiters.append(continuation)
                lock.unlock()
            }
        }
    }

    private var isBound: Bool {
        lock.withLock { if case .success = binding { return true } else { return false } }
    }

    /// Records the first outcome of binding and wakes whoever waits for it.
    private func bound(_ outcome: Result<Int, Error>) {
        lock.lock()
        guard binding == nil else { lock.unlock(); return }
        binding = outcome
        let waiters = bindingWaiters
        bindingWaiters = []
        lock.unlock()
        for waiter in waiters { waiter.resume(with: outcome) }
    }

    /// Ends every SSE response (their clients see the stream close). Any thread.
    private func finishStreams() {
        lock.lock()
        let open = streams.values
        streams.removeAll()
        lock.unlock()
        for continuation in open { continuation.finish() }
        liveResponses.finishAll()
    }

    private func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let sources = self.sources
        // First, so that they guard every route added below and the router's not-found answer.
        router.add(middleware: BearerAuthMiddleware(access: sources.access, sessions: sessions))
        router.add(middleware: UnroutedMiddleware())
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            let text = Readiness.text(ready: sources.ready(), sinks: sources.sinks())
            return Response(status: text == "ready\n" ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        let limiter = self.limiter
        router.get("/metrics") { _, _ in
            let supervisor = sources.supervisor()
            let reloads = sources.reloads()
            let sinks = sources.sinks().map { SinkHealthFigure(sink: $0.sink, up: $0.isHealthy, recoveries: $0.recoveries) }
            let text = MetricsText.render(streams: supervisor.streamStats().map { ($0.id, $0.snapshot()) },
                                          sinkDrops: supervisor.hub.dropCounts(), uptimeSeconds: supervisor.uptimeSeconds,
                                          reloads: reloads.applied, reloadFailures: reloads.rejected,
                                          sinks: sinks, http: limiter.snapshot, live: sources.live?.figures() ?? [])
                + sources.moreMetrics()
            return Response(status: .ok, headers: [.contentType: MetricsText.contentType], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/api/streams") { _, _ in
            let supervisor = sources.supervisor()
            let body = StreamsJSON.render(supervisor.streamStats().map { ($0.id, $0.snapshot()) })
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("/api/streams/:id/counts") { _, context -> Response in
            let supervisor = sources.supervisor()
            let streams = supervisor.streamStats()
            let id: String
            switch StreamIDArgument.resolve(context.parameters.get("id") ?? "", isKnown: { id in streams.contains { $0.id == id } }) {
            case let .success(known): id = known
            case let .failure(problem): return problem.response
            }
            let stats = streams.first { $0.id == id }!
            let scene = supervisor.streamConfigs().first { $0.id == id }?.scene
            let counts = stats.snapshot().counts ?? SceneCounts(lines: [], zones: [])
            let body = CountsDocument.render(stream: id, scene: scene?.file, counts: counts, frames: nil,
                                             timeNanoseconds: WallClock.nowNanoseconds())
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/api/streams/:id/snapshot.jpg") { _, context -> Response in
            let streams = sources.supervisor().streamStats()
            let id: String
            switch StreamIDArgument.resolve(context.parameters.get("id") ?? "", isKnown: { id in streams.contains { $0.id == id } }) {
            case let .success(known): id = known
            case let .failure(problem): return problem.response
            }
            // JPEG encoding blocks: run it on a Dispatch thread, not on the cooperative pool.
            let encoded: [UInt8]? = await withCheckedContinuation { continuation in
                DispatchQueue.global().async { continuation.resume(returning: sources.snapshot(id)) }
            }
            guard let jpeg = encoded else {
                return Problem.response(.serviceUnavailable, detail: "no frame from '\(id)' yet")
            }
            return Response(status: .ok, headers: [.contentType: "image/jpeg"], body: .init(byteBuffer: ByteBuffer(bytes: jpeg)))
        }
        addLiveRoutes(to: router, sources: sources, sessions: sessions, responses: liveResponses)
        router.get("/api/events") { [self] request, _ -> Response in
            var filter: String?
            if let raw = StreamIDArgument.rawQueryValue("stream", in: request.uri.query) {
                let streams = sources.supervisor().streamStats()
                switch StreamIDArgument.resolve(raw, isKnown: { id in streams.contains { $0.id == id } }) {
                case let .success(known): filter = known
                case let .failure(problem): return problem.response
                }
            }
            var last: EventID?
            if let header = request.headers[.lastEventID] {
                guard let id = EventID(header) else {
                    return Problem.response(.badRequest, detail: "Last-Event-ID must be an id this server sent (STREAM:SEQ)")
                }
                last = id
            }
            // Live events first, then what is held: an event published in between is in both,
            // and the live copy is passed over.
            let events = subscribe(stream: filter)
            let resumption = last.map { (id: $0, held: replay.resume(after: $0, stream: filter)) }
            let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                // A comment first, so a client sees the stream open before the first event.
                try await writer.write(ByteBuffer(string: ": netnet events\n\n"))
                var replayed = Set<EventID>()
                switch resumption?.held {
                case let .resumed(held)?:
                    try await writer.write(ByteBuffer(string: ": resumed after \(resumption!.id), \(held.count) events held since\n\n"))
                    for event in held {
                        replayed.insert(EventID(of: event))
                        try await writer.write(ByteBuffer(bytes: SSE.encode(event)))
                    }
                case let .missed(oldest)?:
                    try await writer.write(ByteBuffer(bytes: SSE.missed(last: resumption!.id, oldest: oldest)))
                case nil:
                    break
                }
                for await item in events {
                    switch item {
                    case let .event(event):
                        if !replayed.isEmpty, replayed.remove(EventID(of: event)) != nil { continue }
                        try await writer.write(ByteBuffer(bytes: SSE.encode(event)))
                    case .heartbeat: try await writer.write(ByteBuffer(string: ":\n\n"))
                    }
                }
                try await writer.finish(nil)
            })
        }
        return router
    }

    /// What an SSE response writes: an event, or a comment line that keeps a quiet stream open
    /// through proxies that close idle connections.
    enum SSEItem: Sendable {
        case event(DaemonEvent)
        case heartbeat
    }

    /// A bounded per-client queue (the SSE queue size, newest events dropped and counted when full),
    /// with a heartbeat every `sseHeartbeat` seconds.
    private func subscribe(stream: String?) -> AsyncStream<SSEItem> {
        let (events, continuation) = AsyncStream<SSEItem>.makeStream(bufferingPolicy: .bufferingOldest(sources.sseQueue))
        let hub = sources.supervisor().hub
        let id = hub.subscribe(name: "sse", stream: stream) { event in
            if case .enqueued = continuation.yield(.event(event)) { return true }
            return false
        }
        let interval = sources.sseHeartbeat
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                if Task.isCancelled { break }
                _ = continuation.yield(.heartbeat)
            }
        }
        lock.lock()
        nextStream += 1
        let key = nextStream
        streams[key] = continuation
        lock.unlock()
        continuation.onTermination = { [weak self] _ in
            heartbeat.cancel()
            hub.unsubscribe(id)
            guard let self else { return }
            self.lock.lock(); self.streams[key] = nil; self.lock.unlock()
        }
        return events
    }
}

/// A failure to start the HTTP server. Value type; any thread.
public struct HTTPServerError: Error, CustomStringConvertible, Sendable {
    /// The one-line message.
    public let message: String
    /// The message.
    public var description: String { message }
}

/// The `/readyz` body: `ready` when the daemon is started and every sink writes; otherwise
/// `not ready: ` and the reasons, one line (`file sink failing since …: cannot write …: No space
/// left on device; 12 events dropped`). Pure; any thread.
public enum Readiness {
    /// The body, newline included; exactly `"ready\n"` when ready. Any thread.
    public static func text(ready: Bool, sinks: [LineSink.Health]) -> String {
        var reasons: [String] = []
        if !ready { reasons.append("starting or stopping") }
        for sink in sinks {
            guard let failure = sink.failure else { continue }
            var since: [UInt8] = []
            WallClock.appendISO8601(nanoseconds: sink.failingSinceNanoseconds, to: &since)
            reasons.append("\(sink.sink) sink failing since \(String(decoding: since, as: UTF8.self)): \(failure); \(sink.droppedSinceFailure) events dropped")
        }
        return reasons.isEmpty ? "ready\n" : "not ready: \(reasons.joined(separator: "; "))\n"
    }
}

/// Server-Sent Events framing. Pure; any thread.
public enum SSE {
    /// `id: STREAM:SEQ`, `event: frame|event|status`, `data: <the JSON line>`, blank line.
    public static func encode(_ event: DaemonEvent) -> [UInt8] {
        var bytes = Array("id: \(event.stream):\(event.seq)\nevent: \(event.kind.rawValue)\ndata: ".utf8)
        bytes.reserveCapacity(bytes.count + event.line.count + 2)
        bytes.append(contentsOf: event.line)   // ends with "\n"
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// The `missed` event a client resuming from `last` gets when that event is no longer held:
    /// `{"last_event_id": "a:17", "oldest_held": "a:4100"}` (null when nothing is held). It has
    /// no `id:` line, so the client's last id stays its own. Pure.
    public static func missed(last: EventID, oldest: EventID?) -> [UInt8] {
        var bytes = Array("event: missed\ndata: {\"last_event_id\": ".utf8)
        JSONText.appendString(last.description, to: &bytes)
        JSONText.appendRaw(", \"oldest_held\": ", to: &bytes)
        if let oldest { JSONText.appendString(oldest.description, to: &bytes) } else { JSONText.appendRaw("null", to: &bytes) }
        JSONText.appendRaw("}\n\n", to: &bytes)
        return bytes
    }
}

/// The `/api/streams` document: `{"streams": [{"id", "url", "state", "since", "last_error",
/// "frames_decoded", "frames_inferred", "frames_dropped", "decode_errors", "reconnects",
/// "queue_depth", "last_frame"}]}`, written by `JSONText` in the frame lines' style. Pure; any thread.
public enum StreamsJSON {
    /// Renders the streams in order. Any thread.
    public static func render(_ streams: [(id: String, stats: StreamStats.Snapshot)]) -> String {
        var bytes: [UInt8] = []
        JSONText.appendRaw("{\"streams\": [", to: &bytes)
        for (i, (id, s)) in streams.enumerated() {
            if i > 0 { JSONText.appendRaw(", ", to: &bytes) }
            JSONText.appendRaw("{\"id\": ", to: &bytes); JSONText.appendString(id, to: &bytes)
            JSONText.appendRaw(", \"url\": ", to: &bytes); JSONText.appendString(s.url, to: &bytes)
            JSONText.appendRaw(", \"state\": ", to: &bytes); JSONText.appendString(s.state.rawValue, to: &bytes)
            JSONText.appendRaw(", \"since\": \"", to: &bytes)
            WallClock.appendISO8601(nanoseconds: s.stateSinceNanoseconds, to: &bytes)
            JSONText.appendRaw("\", \"last_error\": ", to: &bytes)
            if let e = s.lastError { JSONText.appendString(e, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
            for (key, value) in [("frames_decoded", s.framesDecoded), ("frames_inferred", s.framesInferred),
                                 ("frames_dropped", s.framesDropped), ("decode_errors", s.decodeErrors),
                                 ("reconnects", s.reconnects), ("queue_depth", UInt64(s.queueDepth))] {
                JSONText.appendRaw(", ", to: &bytes)
                JSONText.appendString(key, to: &bytes)
                JSONText.appendRaw(": ", to: &bytes)
                JSONText.appendInt(Int(value), to: &bytes)
            }
            JSONText.appendRaw(", \"last_frame\": ", to: &bytes)
            if s.lastFrameNanoseconds > 0 {
                JSONText.appendRaw("\"", to: &bytes)
                WallClock.appendISO8601(nanoseconds: s.lastFrameNanoseconds, to: &bytes)
                JSONText.appendRaw("\"", to: &bytes)
            } else {
                JSONText.appendNull(to: &bytes)
            }
            JSONText.appendRaw("}", to: &bytes)
        }
        JSONText.appendRaw("]}\n", to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
