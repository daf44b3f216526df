import Foundation
import Testing
import NetnetDaemon
import NetnetEngine
@testable import NetnetHTTP

@Suite("HTTP server lifetime")
struct HTTPServerLifetimeTests {
    static let modelPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models/default.safetensors").path

    /// The SSE replay's hub subscription is the server's: gone with it, so servers made one after
    /// another over one supervisor do not pile consumers onto its hub.
    @Test func replaySubscriptionEndsWithTheServer() throws {
        let hub = EventHub()
        let supervisor = try Supervisor(config: DaemonConfig(), model: Model(path: Self.modelPath), hub: hub,
                                        log: DaemonLog(level: .error, journal: false, write: { _ in }))
        for _ in 0..<3 {
            do {
                let server = HTTPServer(host: "127.0.0.1", port: 0, sources: .init(
                    supervisor: { supervisor }, ready: { true }, reloads: { (0, 0) }, sseQueue: 8, snapshot: { _ in nil }))
                withExtendedLifetime(server) { #expect(hub.consumerCount == 1) }
            }
            #expect(hub.consumerCount == 0)
        }
    }
}
