import Foundation
import Testing
import NetnetDaemon
import NetnetEngine
@testable import NetnetHTTP

@Suite struct HTTPServerLifetimeTests {
    static let modelPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models/default.safetensors").path

    @Test("the SSE replay buffer listens to the event hub while its server lives, and stops with it")
    func replaySubscriptionEndsWithTheServer() throws {
        let hub = EventHub()
        let supervisor = try Supervisor(config: DaemonConfig(), model: Model(path: Self.modelPath), hub: hub,
                                        log: DaemonLog(level: .error, journal: false, write: { _ in }))
        let before = hub.consumerCount
        var server: HTTPServer? = HTTPServer(host: "127.0.0.1", port: 0, sources: .init(
            supervisor: { supervisor }, ready: { true }, reloads: { (0, 0) }, sseQueue: 8, snapshot: { _ in nil }))
        #expect(hub.consumerCount == before + 1)
        for seq in 1...2 { hub.publish(DaemonEvent(kind: .status, stream: "a", seq: seq, line: Array("{}".utf8))) }
        guard case let .resumed(held)? = server?.replay.resume(after: EventID("a:1")!, stream: nil) else {
            Issue.record("the replay buffer did not hold a:1")
            return
        }
        #expect(held.map(\.seq) == [2])
        server = nil
        #expect(hub.consumerCount == before)
    }
}
