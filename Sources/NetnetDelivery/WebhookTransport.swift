import AsyncHTTPClient
import Foundation
import NetnetMedia
import NIOCore

/// Where and how an HTTP webhook sink POSTs (`annotate --sink http://…` or `https://…`).
/// Value type; any thread.
public struct WebhookSettings: Sendable, Equatable {
    /// The POST target: the `--sink` URL without netnet's own query options.
    public var url: String
    /// HTTP basic auth user (the URL's user part), or nil for no `Authorization` header.
    public var username: String?
    /// The basic auth password (read from `password_file`, registered with `Redaction`), or nil.
    public var password: String?
    /// Extra CA certificates (PEM) trusted for `https` besides the system's (`ca_file`), or nil.
    public var caFile: String?
    /// The most records in one POST, and so the most in flight (default 256).
    public var batchRecords: Int
    /// Seconds a POST may take, connecting included, before it counts as failed (default 10).
    public var timeout: Double

    /// Settings; every argument defaults as documented on its property. Pure.
    public init(url: String, username: String? = nil, password: String? = nil, caFile: String? = nil,
                batchRecords: Int = 256, timeout: Double = 10) {
        self.url = url
        self.username = username
        self.password = password
        self.caFile = caFile
        self.batchRecords = batchRecords
        self.timeout = timeout
    }

    /// What a webhook's answer means for the batch it answered. Value type.
    public enum Outcome: Sendable, Equatable {
        /// 2xx: every record of the batch was taken.
        case accepted
        /// The far end cannot take it now (408, 429, 5xx), refuses our credentials (401, 403), has
        /// no such endpoint (404, 405: the URL is wrong, not the records), or redirects (not
        /// followed: a POST body must not silently go elsewhere). Each can be fixed on either side
        /// without losing records, so they stay spooled and are sent again after a backoff.
        case retry
        /// Any other 4xx (400, 413, 422, …): these records will never be accepted as they are;
        /// sending them again would stop the sink for good, so they are passed over.
        case rejected
    }

    /// The outcome of HTTP status `code`. Pure.
    public static func outcome(status code: Int) -> Outcome {
        switch code {
        case 200..<300: .accepted
        case 401, 403, 404, 405, 408, 429: .retry
        case 400..<500: .rejected
        default: .retry
        }
    }
}

/// The HTTP webhook sink's protocol on AsyncHTTPClient: `send` adds a record's JSON line to the
/// batch, `poll` POSTs the batch (`Content-Type: application/x-ndjson`, one record a line, in
/// spool order) and blocks on the answer (`EventLoopFuture.wait()` on the `SinkRunner`'s thread,
/// which is not an event loop), so one batch is in flight at a time. The event loops are
/// AsyncHTTPClient's shared singleton group; every call here comes from the runner's thread.
public final class WebhookTransport: SinkTransport {
    /// As given.
    public let settings: WebhookSettings
    private var client: HTTPClient?
    private var batch: [UInt8] = []
    private var tokens: [UInt64] = []

    /// A transport for `settings`; makes its client on the first `connect`. Any thread.
    public init(settings: WebhookSettings) {
        self.settings = settings
    }

    /// `batchRecords`: the runner sends at most that many before the POST answers. Any thread.
    public var maxInFlight: Int { settings.batchRecords }
    /// False: HTTP has no session that would send a failed batch again, so the runner reads it
    /// again from the spool. Any thread.
    public var resendsInFlightAfterReconnect: Bool { false }

    /// The URL as it may appear in messages.
    private var target: String { Redaction.redact(settings.url) }

    /// Makes the HTTP client once. There is nothing to connect ahead of a POST (the client's pool
    /// connects, and keeps the connection alive between batches); a missing `ca_file` fails here so
    /// it is reported as what it is, not as a failed POST. Runner thread.
    public func connect() throws(TransportError) {
        guard client == nil else { return }
        if let caFile = settings.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw TransportError(code: ENOENT, message: Redaction.redact("webhook \(target): ca_file \(caFile) cannot be read"))
        }
        let milliseconds = Int64(max(0.001, settings.timeout) * 1000)
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .milliseconds(milliseconds), read: .milliseconds(milliseconds))
        configuration.redirectConfiguration = .disallow
        // A refused connection fails the POST at once (the pool would otherwise retry it until the
        // deadline, 10 s of silence): the runner's backoff retries, and the warning comes now.
        configuration.connectionPool.retryConnectionEstablishment = false
        if let caFile = settings.caFile {
            configuration.tlsConfiguration = .makeClientConfiguration()
            configuration.tlsConfiguration?.additionalTrustRoots = [.file(caFile)]
        }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Adds the record's line to the batch. Runner thread.
    public func send(_ record: DeliveryRecord, token: UInt64) -> SendResult {
        batch.append(contentsOf: record.line)
        if record.line.last != 10 { batch.append(10) }
        tokens.append(token)
        return .sent
    }

    /// POSTs the batch and waits for the answer (at most `settings.timeout`); with no batch, waits
    /// `timeout`. Runner thread.
    public func poll(timeout: Double) -> PollResult {
        guard !tokens.isEmpty else {
            if timeout > 0 { Thread.sleep(forTimeInterval: timeout) }
            return PollResult(connected: client != nil)
        }
        guard let client else { return drop("not connected") }
        let body = batch
        let sent = tokens
        // The batch is answered one way or another below; a failed one is read again from the spool.
        batch.removeAll(keepingCapacity: true)
        tokens.removeAll(keepingCapacity: true)
        let response: HTTPClient.Response
        do {
            var request = try HTTPClient.Request(url: settings.url, method: .POST)
            request.headers.add(name: "Content-Type", value: "application/x-ndjson")
            request.headers.add(name: "User-Agent", value: "netnet")
            if let username = settings.username {
                request.headers.add(name: "Authorization",
                                    value: HTTPClient.Authorization.basic(username: username, password: settings.password ?? "").headerValue)
            }
            request.body = .bytes(body)
            let milliseconds = Int64(max(0.001, settings.timeout) * 1000)
            response = try client.execute(request: request, deadline: .now() + .milliseconds(milliseconds)).wait()
        } catch {
            return drop("\(error)")
        }
        let code = Int(response.status.code)
        switch WebhookSettings.outcome(status: code) {
        case .accepted:
            return PollResult(acknowledged: sent)
        case .retry:
            return drop(describe(response))
        case .rejected:
            return PollResult(rejected: sent, rejection: Redaction.redact("webhook \(target): \(describe(response))"))
        }
    }

    /// A failed POST: the connection counts as lost so the runner backs off and reads the batch again.
    private func drop(_ why: String) -> PollResult {
        PollResult(connected: false, failure: Redaction.redact("webhook \(target): \(why)"))
    }

    /// `HTTP 503 Service Unavailable: <the body's first line, at most 200 bytes>`.
    private func describe(_ response: HTTPClient.Response) -> String {
        var text = "HTTP \(response.status.code) \(response.status.reasonPhrase)"
        if let body = response.body, body.readableBytes > 0,
           let start = body.getString(at: body.readerIndex, length: min(200, body.readableBytes)) {
            let line = start.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            if !line.isEmpty { text += ": \(line)" }
        }
        return text
    }

    /// Shuts the client down, waiting for its connections to close. Runner thread, last call.
    public func close() {
        guard let client else { return }
        self.client = nil
        try? client.syncShutdown()
    }
}
