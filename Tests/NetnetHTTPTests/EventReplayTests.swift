import Foundation
import Testing
import NetnetDaemon
@testable import NetnetHTTP

/// SSE ids and the replay a reconnecting client resumes from (`Last-Event-ID`).
@Suite("SSE ids and replay")
struct EventReplayTests {
    func event(_ stream: String, _ seq: Int, bytes: Int = 10) -> DaemonEvent {
        DaemonEvent(kind: .frame, stream: stream, seq: seq, line: Array(repeating: UInt8(ascii: "x"), count: bytes - 1) + [10])
    }

    @Test func idsParseOnlyWhatTheServerSends() {
        #expect(EventID("front-door:17") == EventID(stream: "front-door", seq: 17))
        #expect(EventID("a.b_c:0")?.description == "a.b_c:0")
        for bad in ["", "a", "a:", ":3", "a:-1", "a:1.5", "a:x", "a b:3", "a/../b:3", "\(String(repeating: "a", count: 65)):1",
                    "a:99999999999999999999999", "a\u{0}:1"] {
            #expect(EventID(bad) == nil, "\(bad)")
        }
    }

    @Test func encodeCarriesTheID() {
        let text = String(decoding: SSE.encode(DaemonEvent(kind: .status, stream: "cam", seq: 42, line: Array("{}\n".utf8))), as: UTF8.self)
        #expect(text == "id: cam:42\nevent: status\ndata: {}\n\n")
        let missed = String(decoding: SSE.missed(last: EventID(stream: "cam", seq: 3), oldest: EventID(stream: "cam", seq: 90)), as: UTF8.self)
        #expect(missed == "event: missed\ndata: {\"last_event_id\": \"cam:3\", \"oldest_held\": \"cam:90\"}\n\n")
        #expect(String(decoding: SSE.missed(last: EventID(stream: "cam", seq: 3), oldest: nil), as: UTF8.self).contains("\"oldest_held\": null"))
    }

    @Test func resumesAfterTheLastEventInPublishOrder() throws {
        let replay = EventReplay(maxEvents: 100, maxBytes: 1 << 20)
        for seq in 0..<10 {
            replay.append(event("a", seq))
            replay.append(event("b", seq))
        }
        guard case let .resumed(all) = replay.resume(after: EventID(stream: "a", seq: 7), stream: nil) else { Issue.record("not held"); return }
        #expect(all.map { "\($0.stream):\($0.seq)" } == ["b:7", "a:8", "b:8", "a:9", "b:9"])
        guard case let .resumed(onlyA) = replay.resume(after: EventID(stream: "a", seq: 7), stream: "a") else { Issue.record("not held"); return }
        #expect(onlyA.map(\.seq) == [8, 9])
        guard case let .resumed(none) = replay.resume(after: EventID(stream: "b", seq: 9), stream: nil) else { Issue.record("not held"); return }
        #expect(none.isEmpty)
    }

    @Test func boundedByCountAndBytesOldestFirst() {
        let replay = EventReplay(maxEvents: 5, maxBytes: 1 << 20)
        for seq in 0..<3000 { replay.append(event("a", seq)) }
        #expect(replay.count == 5)
        guard case let .missed(oldest) = replay.resume(after: EventID(stream: "a", seq: 2994), stream: nil) else { Issue.record("held"); return }
        #expect(oldest == EventID(stream: "a", seq: 2995))
        guard case .resumed = replay.resume(after: EventID(stream: "a", seq: 2995), stream: nil) else { Issue.record("not held"); return }

        let bytes = EventReplay(maxEvents: 1000, maxBytes: 1000)
        for seq in 0..<50 { bytes.append(event("a", seq, bytes: 100)) }
        #expect(bytes.count == 10)
        bytes.append(event("a", 50, bytes: 5000))
        #expect(bytes.count == 1, "a line larger than the bound is still kept, alone")
        guard case let .missed(nothing) = EventReplay().resume(after: EventID(stream: "a", seq: 1), stream: nil) else { Issue.record("held"); return }
        #expect(nothing == nil)
    }
}
