import Foundation
import HummingbirdCore
import Hummingbird
import Logging
import NIOCore
import NIOHTTPTypes
import NetnetDaemon

/// Limits on the HTTP server's connections (docs/configuration.md, `http_*`). Value type; any thread.
public struct HTTPLimits: Sendable, Equatable {
    /// Most connections open at once; one more is answered `503` and closed, and counted.
    public var maxConnections: Int
    /// Seconds a new connection may take to send its first complete request head.
    public var headerTimeout: Double
    /// Seconds a kept-alive connection may wait, after a response, for the next request head.
    public var idleTimeout: Double
    /// Descriptors HTTP clients must leave free (`DescriptorBudget.reserve`), or nil. When set,
    /// each new connection also needs open < soft RLIMIT_NOFILE − reserve, read at that moment,
    /// so a limit lowered while running (`prlimit --pid`) lowers the cap with it.
    public var descriptorReserve: Int?
    /// Each connection's kernel send buffer (`SO_SNDBUF`, bytes), or nil for the kernel's
    /// autotuning. Fixed, it bounds what a client that never reads can hold in the kernel
    /// (Linux books twice the value); autotuned, that is up to `tcp_wmem`'s maximum (4 MiB).
    public var sendBuffer: Int?

    /// Limits as given. Any thread.
    public init(maxConnections: Int = 1024, headerTimeout: Double = 10, idleTimeout: Double = 60,
                descriptorReserve: Int? = nil, sendBuffer: Int? = nil) {
        precondition(maxConnections > 0 && headerTimeout > 0 && idleTimeout > 0 && (sendBuffer ?? 1) > 0)
        self.maxConnections = maxConnections
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.descriptorReserve = descriptorReserve
        self.sendBuffer = sendBuffer
    }
}

/// What one request head may hold before routing: netnet's API has short paths and few headers,
/// so anything larger is a hostile or broken client, answered and closed before it reaches a
/// handler. (FFmpeg-sized limits, far below the HTTP parser's own 80 KiB, over which it answers a
/// bare `400`.) Constants; any thread.
public enum HTTPRequestLimits {
    /// Longest request target (path and query), bytes; longer: `414 URI Too Long`.
    public static let maxTarget = 8192
    /// Most header fields; more: `431 Request Header Fields Too Large`.
    public static let maxFields = 100
    /// Most bytes in all header names and values together; more: `431`.
    public static let maxFieldBytes = 16384
}

/// Counts the HTTP server's connections and decides whether a new one may open: the open count
/// never passes the cap, so idle or hostile clients cannot take the descriptors the streams,
/// sinks and the runtime need. With `descriptors`, a connection whose accept took the last free
/// descriptor number below the soft limit is refused too (and a spare released), so the runtime
/// gets the number back as soon as the refusal is written. Any thread (the event loops call it).
final class ConnectionLimiter: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: HTTPConnectionCounts
    private let configured: Int
    private let reserve: Int?
    private let descriptors: DescriptorSpares?

    init(limit: Int, reserve: Int?, descriptors: DescriptorSpares? = nil) {
        configured = limit
        self.reserve = reserve
        self.descriptors = descriptors
        counts = HTTPConnectionCounts(limit: limit)
    }

    /// The cap now: the configured one, lowered to what the descriptor limit in force leaves
    /// beside the reserve.
    private func currentLimit() -> Int {
        guard let reserve else { return configured }
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return configured }
        let soft = limit.rlim_cur > rlim_t(Int.max / 2) ? Int.max / 2 : Int(limit.rlim_cur)
        return max(0, min(configured, soft - reserve))
    }

    /// Takes a place for a new connection; false (and counted as refused) when all are taken.
    func open() -> Bool {
        let limit = currentLimit()
        var famine = false
        if let descriptors, DescriptorSpares.freeBelowLimit(upTo: 1) == 0 {
            descriptors.relieve()
            famine = true
        }
        lock.lock(); defer { lock.unlock() }
        counts.limit = limit
        guard !famine, counts.open < counts.limit else {
            counts.refused += 1
            return false
        }
        counts.open += 1
        counts.accepted += 1
        return true
    }

    /// A connection that `open` let in has closed.
    func closed() {
        lock.lock(); counts.open -= 1; lock.unlock()
    }

    /// The server answered a request head over `HTTPRequestLimits` and closed the connection.
    func rejected(_ status: HTTPResponse.Status) {
        lock.lock()
        if status == .uriTooLong { counts.targetsTooLong += 1 } else { counts.headersTooLarge += 1 }
        lock.unlock()
    }

    /// The server closed a connection because it did not send a request head in time.
    func timedOut(idle: Bool) {
        lock.lock()
        if idle { counts.idleTimeouts += 1 } else { counts.headerTimeouts += 1 }
        lock.unlock()
    }

    var snapshot: HTTPConnectionCounts {
        let limit = currentLimit()
        lock.lock(); defer { lock.unlock() }
        counts.limit = limit
        return counts
    }
}

/// Hummingbird's HTTP/1 child channel behind a connection cap and request-head deadlines: a
/// connection over the cap gets a `503` and is closed before any HTTP handler is set up; an
/// admitted one gets a `ConnectionDeadlineHandler`. Sendable; the event loops call it.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let inner: HTTP1Channel
    let limiter: ConnectionLimiter

    init(responder: @escaping HTTPChannelHandler.Responder, limits: HTTPLimits, limiter: ConnectionLimiter) {
        self.limiter = limiter
        let header = TimeAmount.nanoseconds(Int64(limits.headerTimeout * 1e9))
        let idle = TimeAmount.nanoseconds(Int64(limits.idleTimeout * 1e9))
        sendBuffer = limits.sendBuffer
        inner = HTTP1Channel(responder: responder, configuration: .init(
            additionalChannelHandlers: [ConnectionDeadlineHandler(header: header, idle: idle, limiter: limiter),
                                        RequestHeadLimitHandler(limiter: limiter)]))
    }

    let sendBuffer: Int?

    /// The whole answer to a connection over the cap, written before any HTTP handler exists.
    static let refusal: String = {
        let body = String(buffer: Problem.body(status: 503, title: "Service Unavailable", detail: "too many connections"))
        return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n" + body
    }()

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // The channel is not registered yet: a failed setup would leave it open for good, so a
        // refused one is set up too, with a handler in front that answers 503 and closes it as
        // soon as it is active, and lets nothing through to HTTP.
        guard limiter.open() else {
            do {
                try channel.pipeline.syncOperations.addHandler(RefusingHandler(), position: .first)
            } catch {
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(error)
            }
            return inner.setup(channel: channel, logger: logger)
        }
        let limiter = self.limiter
        channel.closeFuture.whenComplete { _ in limiter.closed() }
        if let sendBuffer {
            // Best effort: a socket that refuses the option keeps the kernel's autotuning.
            try? channel.syncOptions?.setOption(ChannelOptions.socketOption(.so_sndbuf), value: SocketOptionValue(sendBuffer))
        }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Answers a refused connection `503 too many connections` and closes it once it is active;
/// swallows whatever the client sends. Event-loop thread of its channel only.
final class RefusingHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(_ context: ChannelHandlerContext) {
        // A fresh socket's send buffer is empty: the flush writes the answer before the close.
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: GuardedHTTP1Channel.refusal)), promise: nil)
        context.close(promise: nil)
    }
}

/// Closes a connection that has not sent a complete request head within `header` of opening, or
/// within `idle` of its last response ending (keep-alive). While a request is being answered
/// (an SSE stream included) no deadline runs. Event-loop thread of its channel only.
final class ConnectionDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let header: TimeAmount
    private let idle: TimeAmount
    private let limiter: ConnectionLimiter
    private var deadline: Scheduled<Void>?
    private var inFlight = 0

    init(header: TimeAmount, idle: TimeAmount, limiter: ConnectionLimiter) {
        self.header = header
        self.idle = idle
        self.limiter = limiter
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context, after: header, idle: false)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            inFlight += 1
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inFlight = max(inFlight - 1, 0)
            if inFlight == 0 { arm(context, after: idle, idle: true) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext, after delay: TimeAmount, idle: Bool) {
        disarm()
        let limiter = self.limiter
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: delay) {
            limiter.timedOut(idle: idle)
            channel.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}

/// Answers a request head over `HTTPRequestLimits` with `414` or `431` (problem+json) and closes
/// the connection; everything the client sends after it is dropped unread by the router.
/// Event-loop thread of its channel only.
final class RequestHeadLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limiter: ConnectionLimiter
    private var rejecting = false

    init(limiter: ConnectionLimiter) {
        self.limiter = limiter
    }

    /// The status a head deserves: nil when it is within the limits.
    static func verdict(_ head: HTTPRequest) -> HTTPResponse.Status? {
        let target = (head.path?.utf8.count ?? 0) + (head.authority?.utf8.count ?? 0)
        if target > HTTPRequestLimits.maxTarget { return .uriTooLong }
        if head.headerFields.count > HTTPRequestLimits.maxFields { return .requestHeaderFieldsTooLarge }
        var bytes = 0
        for field in head.headerFields { bytes += field.name.rawName.utf8.count + field.value.utf8.count }
        return bytes > HTTPRequestLimits.maxFieldBytes ? .requestHeaderFieldsTooLarge : nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !rejecting else { return }
        if case let .head(head) = unwrapInboundIn(data), let status = Self.verdict(head) {
            rejecting = true
            limiter.rejected(status)
            let detail = status == .uriTooLong
                ? "the request target is over \(HTTPRequestLimits.maxTarget) bytes"
                : "the header fields are over \(HTTPRequestLimits.maxFields) fields or \(HTTPRequestLimits.maxFieldBytes) bytes"
            let body = Problem.body(status: status.code, title: status.reasonPhrase, detail: detail)
            let response = HTTPResponse(status: status, headerFields: [
                .contentType: "application/problem+json", .contentLength: "\(body.readableBytes)", .connection: "close"])
            context.write(wrapOutboundOut(.head(response)), promise: nil)
            context.write(wrapOutboundOut(.body(body)), promise: nil)
            // The head was read whole, so nothing unread is left to turn the close into a reset;
            // the output is shut once the answer is out and the client's EOF closes the rest.
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(mode: .output, promise: nil) }
            return
        }
        context.fireChannelRead(data)
    }
}
