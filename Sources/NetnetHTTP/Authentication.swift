import Hummingbird
import NetnetEngine
import NIOCore

/// Who may use the API: with a `token` (`auth_token_file`), every `/api/*` request and, unless
/// `metricsPublic`, `/metrics` must carry `Authorization: Bearer TOKEN`; `/healthz` and `/readyz`
/// stay open for probes. Value type; any thread.
public struct HTTPAccess: Sendable, Equatable {
    /// The bearer token, or nil: the API is open (loopback, or `allow_unauthenticated`).
    public var token: String?
    /// Whether `/metrics` answers without the token (`metrics_public`).
    public var metricsPublic: Bool
    /// Access settings. Pure.
    public init(token: String? = nil, metricsPublic: Bool = false) {
        self.token = token
        self.metricsPublic = metricsPublic
    }

    /// Whether a request for `path` needs the token (or a live-view session). `/api/login`, where
    /// a browser trades the token for a session, and the page's own files do not. Pure.
    public func isProtected(path: String) -> Bool {
        guard token != nil, path != "/api/login" else { return false }
        return path == "/api" || path.hasPrefix("/api/") || (path == "/metrics" && !metricsPublic)
    }

    /// Whether an `Authorization` header value carries the token: scheme `Bearer` (any case),
    /// one space, the token, compared in time that depends only on the lengths. Pure.
    public func accepts(authorization value: String?) -> Bool {
        guard let token, let value else { return false }
        let bytes = Array(value.utf8)
        let scheme = Array("bearer ".utf8)
        guard bytes.count > scheme.count else { return false }
        // "bearer " is lower-case letters and a space, which `| 0x20` leaves alone.
        let schemeMatches = zip(bytes.prefix(scheme.count), scheme).allSatisfy { ($0 | 0x20) == $1 }
        return Self.constantTimeEquals(Array(bytes[scheme.count...]), Array(token.utf8)) && schemeMatches
    }

    /// Byte equality whose running time does not depend on where the first difference is. Pure.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<b.count { difference |= (i < a.count ? a[i] : 0) ^ b[i] }
        return difference == 0
    }
}

/// Answers `401` (with `WWW-Authenticate: Bearer realm="netnet"` and an
/// `application/problem+json` body) to a protected request without the right token or a live
/// session cookie (`SessionStore`); passes the others on. Runs on the server's event loops.
struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: HTTPAccess
    let sessions: SessionStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard access.isProtected(path: request.uri.path) else { return try await next(request, context) }
        let header = request.headers[.authorization]
        if access.accepts(authorization: header) { return try await next(request, context) }
        if header == nil, sessions.accepts(cookies: request.headers[values: .cookie]) { return try await next(request, context) }
        let detail = header == nil ? "this endpoint needs Authorization: Bearer TOKEN (auth_token_file)" : "wrong token"
        var headers = Problem.headers
        headers[.wwwAuthenticate] = header == nil ? #"Bearer realm="netnet""# : #"Bearer realm="netnet", error="invalid_token""#
        return Response(status: .unauthorized, headers: headers,
                        body: .init(byteBuffer: Problem.body(status: 401, title: "Unauthorized", detail: detail)))
    }
}

/// RFC 9457 problem details, the API's error bodies. Pure.
enum Problem {
    /// `Content-Type: application/problem+json`.
    static var headers: HTTPFields { [.contentType: "application/problem+json"] }

    /// A response with `status`, its reason phrase as the title, and `detail`.
    static func response(_ status: HTTPResponse.Status, detail: String) -> Response {
        Response(status: status, headers: headers,
                 body: .init(byteBuffer: body(status: status.code, title: status.reasonPhrase, detail: detail)))
    }

    /// `{"type": "about:blank", "title": …, "status": …, "detail": …}`.
    static func body(status: Int, title: String, detail: String) -> ByteBuffer {
        var bytes: [UInt8] = []
        JSONText.appendRaw("{\"type\": \"about:blank\", \"title\": ", to: &bytes)
        JSONText.appendString(title, to: &bytes)
        JSONText.appendRaw(", \"status\": ", to: &bytes)
        JSONText.appendInt(status, to: &bytes)
        JSONText.appendRaw(", \"detail\": ", to: &bytes)
        JSONText.appendString(detail, to: &bytes)
        JSONText.appendRaw("}\n", to: &bytes)
        return ByteBuffer(bytes: bytes)
    }
}

/// Answers what no route serves, as problem documents: a method other than GET or HEAD on one of
/// the API's paths is `405` with `Allow: GET, HEAD` (as RFC 9110 asks), anything else unrouted
/// `404`. After the token check, so a stranger learns nothing. Runs on the server's event loops.
struct UnroutedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Whether `path` is one of the API's (docs/openapi.yaml). Pure.
    static func isKnown(_ path: String) -> Bool {
        if ["/healthz", "/readyz", "/metrics", "/api/streams", "/api/events"].contains(path) { return true }
        if LivePage.files[path] != nil { return true }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 5 && parts[1] == "api" && parts[2] == "streams" && !parts[3].isEmpty
            && (parts[4] == "counts" || parts[4] == "snapshot.jpg" || parts[4] == "live.mjpeg")
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path == "/api/login" && request.method != .post {
            var response = Problem.response(.methodNotAllowed, detail: "\(request.method.rawValue) \(path): only POST is served here")
            response.headers[.allow] = "POST"
            return response
        }
        if request.method != .get && request.method != .head && Self.isKnown(path) {
            var response = Problem.response(.methodNotAllowed, detail: "\(request.method.rawValue) \(Problem.echo(path)): only GET is served here")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            // The router's own answer when no route matches; the handlers answer 404 themselves.
            return Problem.response(.notFound, detail: "no such endpoint: \(Problem.echo(path))")
        }
    }
}
