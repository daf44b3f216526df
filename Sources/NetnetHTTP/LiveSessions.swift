import Foundation
import Hummingbird
import NIOCore
import NetnetEngine
import NetnetPipeline

/// The browser sessions of the live view: `POST /api/login` with the token makes one, a random
/// 256-bit id (not the token) sent back as the `netnet_session` cookie (`HttpOnly;
/// SameSite=Strict; Path=/`), which `BearerAuthMiddleware` then accepts as it accepts the Bearer
/// header, so the page's `<img>` and `EventSource` need no token in a URL. At most `capacity`
/// sessions live at once (a new one pushes out the oldest) and each ends `lifetime` seconds after
/// login. Sessions live in memory: a restart logs everyone out. Thread-safe; any thread.
public final class SessionStore: @unchecked Sendable {
    /// The cookie's name.
    public static let cookieName = "netnet_session"
    /// Most sessions at once.
    public let capacity: Int
    /// Seconds a session lasts from its login.
    public let lifetime: Double
    private let now: @Sendable () -> UInt64
    private let lock = NSLock()
    /// Session ids (64 hex digits) and when each expires (monotonic ns), oldest first.
    private var sessions: [(id: [UInt8], expires: UInt64)] = []

    /// An empty store; `now` gives monotonic nanoseconds (tests pass their own clock). Any thread.
    public init(capacity: Int = 64, lifetime: Double = 12 * 3600,
                now: @escaping @Sendable () -> UInt64 = { WallClock.monotonicNanoseconds() }) {
        precondition(capacity > 0 && lifetime > 0)
        self.capacity = capacity
        self.lifetime = lifetime
        self.now = now
    }

    /// A new session's id (64 lower-case hex digits from the system's CSPRNG), valid from now. Any thread.
    public func create() -> String {
        var generator = SystemRandomNumberGenerator()
        var id = ""
        for _ in 0..<4 { id += String(format: "%016llx", generator.next() as UInt64) }
        let expires = now() &+ UInt64(lifetime * 1e9)
        lock.withLock {
            sessions.removeAll { $0.expires <= now() }
            if sessions.count >= capacity { sessions.removeFirst(sessions.count - capacity + 1) }
            sessions.append((Array(id.utf8), expires))
        }
        return id
    }

    /// Whether `id` is a live session. Compares against every session in time that depends only
    /// on their number, as the token is compared. Any thread.
    public func isValid(_ id: String) -> Bool {
        let candidate = Array(id.utf8)
        let time = now()
        return lock.withLock {
            var found = false
            for session in sessions {
                let matches = HTTPAccess.constantTimeEquals(candidate, session.id)
                found = (matches && session.expires > time) || found
            }
            return found
        }
    }

    /// Whether the `Cookie` header values carry a live session in `netnet_session`. Any thread.
    public func accepts(cookies: [String]) -> Bool {
        for header in cookies {
            for pair in header.split(separator: ";") {
                let trimmed = pair.trimmingCharacters(in: .whitespaces)
                guard let equals = trimmed.firstIndex(of: "="), trimmed[..<equals] == Self.cookieName else { continue }
                if isValid(String(trimmed[trimmed.index(after: equals)...])) { return true }
            }
        }
        return false
    }

    /// Sessions alive now. Any thread.
    public var count: Int {
        let time = now()
        return lock.withLock { sessions.filter { $0.expires > time }.count }
    }

    /// The `Set-Cookie` value for session `id`: no `Secure` (the daemon serves plain HTTP; behind a
    /// TLS proxy the proxy may add it), no `Max-Age` (a browser session; the server ends it anyway). Pure.
    public static func cookie(_ id: String) -> String {
        "\(cookieName)=\(id); HttpOnly; SameSite=Strict; Path=/"
    }
}

/// `POST /api/login`: the token, as JSON `{"token": "…"}` or a form `token=…`, checked in constant
/// time; right: `204` with the session cookie; wrong: `401` problem; a body that is neither: `400`
/// or over 8 KiB: `400` (`415` for another media type). Without a configured token there is nothing to
/// log in to: `204`, no cookie. Runs on the server's tasks.
enum LoginEndpoint {
    /// Largest body read.
    static let maxBody = 8192
    /// Longest token taken, in characters.
    static let maxToken = 4096

    static func respond(_ request: Request, access: HTTPAccess, sessions: SessionStore) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxBody)
        } catch {
            // 400, not 413: a token never needs such a body, so it is simply not a login.
            return Problem.response(.badRequest, detail: "the login body is over \(maxBody) bytes")
        }
        let type = (request.headers[.contentType] ?? "").split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        let text = String(buffer: body)
        let token: String?
        switch type {
        case "application/json": token = jsonToken(text)
        case "application/x-www-form-urlencoded": token = formToken(text)
        default:
            return Problem.response(.unsupportedMediaType,
                                    detail: "send the token as application/json {\"token\": …} or application/x-www-form-urlencoded token=…")
        }
        guard let token, !token.isEmpty else {
            return Problem.response(.badRequest, detail: "the body has no \"token\" string")
        }
        // As docs/openapi.yaml bounds it (JSON Schema counts code points).
        guard token.unicodeScalars.count <= maxToken else {
            return Problem.response(.badRequest, detail: "the token is over \(maxToken) characters")
        }
        guard let expected = access.token else { return Response(status: .noContent) }
        guard HTTPAccess.constantTimeEquals(Array(token.utf8), Array(expected.utf8)) else {
            return Problem.response(.unauthorized, detail: "wrong token")
        }
        var headers = HTTPFields()
        headers[.setCookie] = SessionStore.cookie(sessions.create())
        headers[.cacheControl] = "no-store"
        return Response(status: .noContent, headers: headers)
    }

    /// The `token` string of a JSON object, or nil.
    static func jsonToken(_ text: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        return object["token"] as? String
    }

    /// The `token` field of a form body (`+` is a space, `%XX` a byte), or nil.
    static func formToken(_ text: String) -> String? {
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == "token" else { continue }
            return String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return nil
    }
}
