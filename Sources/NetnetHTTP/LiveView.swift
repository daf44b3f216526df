import Foundation
import Hummingbird
import NIOCore
import NetnetDaemon

/// The live view's routes: the page (`GET /`, `/live.js`, `/live.css`, embedded in the binary),
/// `POST /api/login`, and `GET /api/streams/{id}/live.mjpeg`. Registered by `HTTPServer`; the
/// handlers run on the server's tasks and never block: pictures are made on `LiveChannel` threads.
extension HTTPServer {
    /// The page's `Content-Security-Policy`: everything from this origin only, no inline script or
    /// style, no plugins, no framing by another site.
    static let pageSecurityPolicy = "default-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

    func addLiveRoutes(to router: Router<BasicRequestContext>, sources: Sources, sessions: SessionStore, responses: LiveResponses) {
        for (path, file) in LivePage.files {
            router.get(RouterPath(path)) { _, _ in
                var headers: HTTPFields = [.contentType: file.contentType, .cacheControl: "no-cache"]
                headers[.contentSecurityPolicy] = Self.pageSecurityPolicy
                headers[.xContentTypeOptions] = "nosniff"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: file.text)))
            }
        }
        router.post("/api/login") { request, _ in
            try await LoginEndpoint.respond(request, access: sources.access, sessions: sessions)
        }
        router.get("/api/streams/:id/live.mjpeg") { _, context -> Response in
            let streams = sources.supervisor().streamStats()
            let id: String
            switch StreamIDArgument.resolve(context.parameters.get("id") ?? "", isKnown: { id in streams.contains { $0.id == id } }) {
            case let .success(known): id = known
            case let .failure(problem): return problem.response
            }
            guard let live = sources.live else { return Problem.response(.notFound, detail: "no stream '\(id)'") }
            // One picture held per viewer: a newer one replaces it (`offer` answers false, a skip),
            // so a viewer that does not read costs one picture and its socket's buffers.
            let (pictures, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(1))
            guard let (channel, key) = live.watch(stream: id, offer: { picture in
                if case .dropped = continuation.yield(picture) { return false }
                return true
            }) else {
                return Problem.response(.notFound, detail: "no stream '\(id)'")
            }
            let registration = responses.add { continuation.finish() }
            continuation.onTermination = { _ in
                channel.stopWatching(key)
                responses.remove(registration)
            }
            let headers: HTTPFields = [.contentType: "multipart/x-mixed-replace; boundary=\(MJPEG.boundary)",
                                       .cacheControl: "no-cache, no-store"]
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                defer { continuation.finish() }
                for await picture in pictures {
                    try await writer.write(ByteBuffer(bytes: MJPEG.part(picture)))
                }
                try await writer.finish(nil)
            })
        }
    }
}

/// `multipart/x-mixed-replace` framing of JPEG pictures. Pure; any thread.
public enum MJPEG {
    /// The boundary between parts.
    public static let boundary = "netnetframe"

    /// One part: the boundary line, `Content-Type: image/jpeg`, `Content-Length`, a blank line, the
    /// picture and CRLF.
    public static func part(_ jpeg: [UInt8]) -> [UInt8] {
        var bytes = Array("--\(boundary)\r\nContent-Type: image/jpeg\r\nContent-Length: \(jpeg.count)\r\n\r\n".utf8)
        bytes.reserveCapacity(bytes.count + jpeg.count + 2)
        bytes.append(contentsOf: jpeg)
        bytes.append(contentsOf: [13, 10])
        return bytes
    }
}

/// The open live-picture responses, so that a graceful shutdown can end them (as it ends the
/// SSE responses) and the server drains. Thread-safe; any thread.
final class LiveResponses: @unchecked Sendable {
    private let lock = NSLock()
    private var finishers: [Int: @Sendable () -> Void] = [:]
    private var next = 0

    func add(_ finish: @escaping @Sendable () -> Void) -> Int {
        lock.withLock { next += 1; finishers[next] = finish; return next }
    }

    func remove(_ key: Int) { lock.withLock { finishers[key] = nil } }

    /// Ends every open response.
    func finishAll() {
        let open = lock.withLock { let all = finishers.values; finishers.removeAll(); return Array(all) }
        for finish in open { finish() }
    }
}
