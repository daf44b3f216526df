import Foundation
import Testing
@testable import NetnetMedia

/// FFmpeg's messages routed through netnet: levels folded, the stream named, secrets masked.
@Suite("FFmpeg log routing", .serialized)
struct FFmpegLogTests {
    @Test("FFmpeg's eight levels map onto error, warning, info and debug")
    func levels() {
        // AV_LOG_PANIC 0, FATAL 8, ERROR 16, WARNING 24, INFO 32, VERBOSE 40, DEBUG 48, TRACE 56.
        let mapped = [0, 8, 16, 24, 32, 40, 48, 56].map { FFmpegLog.Severity(ffmpegLevel: Int32($0)) }
        #expect(mapped == [.error, .error, .error, .warning, .info, .debug, .debug, .debug])
    }

    @Test("a routed line names its thread's stream and is redacted")
    func routedLine() {
        final class Box: @unchecked Sendable { let lock = NSLock(); var messages: [FFmpegLog.Message] = [] }
        let box = Box()
        FFmpegLog.route { message in box.lock.withLock { box.messages.append(message) } }
        defer { FFmpegLog.routeToStandardError() }
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            FFmpegLog.setThreadStream("front-door")
            FFmpegLog.deliver(level: 16, line: "[tcp @ 0x1] Connection to rtsp://admin:hunter2@192.0.2.1/x failed")
            FFmpegLog.setThreadStream(nil)
            FFmpegLog.deliver(level: 24, line: "[tcp @ 0x1] netnet-test plain")
            done.signal()
        }
        thread.start()
        done.wait()
        let ours = box.lock.withLock { box.messages.filter { $0.text.hasPrefix("[tcp @ 0x1] ") } }
        #expect(ours == [
            FFmpegLog.Message(severity: .error, stream: "front-door", text: "[tcp @ 0x1] Connection to rtsp://admin:***@192.0.2.1/x failed"),
            FFmpegLog.Message(severity: .warning, stream: nil, text: "[tcp @ 0x1] netnet-test plain"),
        ])
        #expect(ours.first?.line == "stream front-door: [tcp @ 0x1] Connection to rtsp://admin:***@192.0.2.1/x failed")
        #expect(ours.last?.line == "[tcp @ 0x1] netnet-test plain")
    }
}
