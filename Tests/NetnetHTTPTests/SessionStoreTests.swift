import Foundation
import Testing
@testable import NetnetHTTP

/// A clock the test moves by hand. Thread-safe.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var nanoseconds: UInt64 = 1_000_000_000
    var now: UInt64 { lock.withLock { nanoseconds } }
    func advance(seconds: Double) { lock.withLock { nanoseconds += UInt64(seconds * 1e9) } }
}

@Suite("live view sessions")
struct SessionStoreTests {
    @Test("a session id is random hex, not the token, accepted from the Cookie header until it expires")
    func lifetime() {
        let clock = ManualClock()
        let store = SessionStore(capacity: 4, lifetime: 60, now: { clock.now })
        let id = store.create()
        #expect(id.count == 64 && id.allSatisfy(\.isHexDigit))
        #expect(store.create() != id)
        #expect(store.accepts(cookies: ["theme=dark; netnet_session=\(id); x=1"]))
        #expect(store.accepts(cookies: ["a=b", "netnet_session=\(id)"]))
        #expect(!store.accepts(cookies: ["netnet_session=\(id.dropLast())"]))
        #expect(!store.accepts(cookies: ["netnet_sessionx=\(id)"]))
        #expect(!store.accepts(cookies: []))
        clock.advance(seconds: 59)
        #expect(store.isValid(id))
        clock.advance(seconds: 2)
        #expect(!store.isValid(id), "expired")
        #expect(store.count == 0)
    }

    @Test("at most `capacity` sessions: a new login pushes out the oldest")
    func bounded() {
        let clock = ManualClock()
        let store = SessionStore(capacity: 3, lifetime: 3600, now: { clock.now })
        let ids = (0..<5).map { _ in store.create() }
        #expect(store.count == 3)
        #expect(!store.isValid(ids[0]) && !store.isValid(ids[1]))
        #expect(ids[2...].allSatisfy(store.isValid))
    }

    @Test("the cookie is HttpOnly, SameSite=Strict, for the whole site")
    func cookieAttributes() {
        #expect(SessionStore.cookie("ab") == "netnet_session=ab; HttpOnly; SameSite=Strict; Path=/")
    }

    @Test("login bodies: JSON and form, percent-decoded; anything else has no token")
    func loginBodies() {
        #expect(LoginEndpoint.jsonToken(#"{"token": "s3cret"}"#) == "s3cret")
        #expect(LoginEndpoint.jsonToken(#"{"token": 5}"#) == nil)
        #expect(LoginEndpoint.jsonToken("token=x") == nil)
        #expect(LoginEndpoint.formToken("a=1&token=s%2B3+c") == "s+3 c")
        #expect(LoginEndpoint.formToken("tok=1") == nil)
    }

    @Test("/api/login and the page are open; the rest of /api needs the token or a session")
    func protectedPaths() {
        let access = HTTPAccess(token: "t")
        #expect(!access.isProtected(path: "/api/login") && !access.isProtected(path: "/") && !access.isProtected(path: "/live.js"))
        #expect(access.isProtected(path: "/api/streams/a/live.mjpeg") && access.isProtected(path: "/api/events"))
    }
}
