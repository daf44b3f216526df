import Testing
@testable import NetnetDelivery
import NetnetPipeline

@Suite("delivery records")
struct DeliveryRecordTests {
    @Test func payloadRoundTrips() {
        let record = DeliveryRecord(kind: .event, stream: "front-door", seq: 1 << 41, line: Array("{\"a\": 1}\n".utf8))
        #expect(DeliveryRecord(payload: record.encoded()) == record)
        #expect(Array(record.lineWithoutNewline) == Array("{\"a\": 1}".utf8))
        #expect(DeliveryRecord(payload: Array(record.encoded().prefix(13))) == nil, "cut short")
        #expect(DeliveryRecord(payload: [2] + record.encoded().dropFirst()) == nil, "another version")
    }

    @Test func topicTemplate() {
        let settings = MQTTSettings(host: "b", hostName: "h1")
        #expect(settings.topic(stream: "front-door", kind: .event) == "netnet/front-door/event")
        #expect(settings.topic(stream: "a/b+#", kind: .frame) == "netnet/a_b__/frame")
        #expect(settings.statusTopic == "netnet/h1/status")
        #expect(settings.clientID == "netnet-h1-mqtt" && settings.port == 1883 && settings.qos == 1)
    }

    @Test func gapLineIsAStatusLineWithItsRange() {
        // 2026-12-02T01:14:03.118Z
        let line = GapRecord(stream: "door", seq: 9120, timeNanoseconds: 1_796_174_043_118_000_000, sink: "broker",
                             firstSeq: 4100, lastSeq: 4388).jsonLine()
        #expect(String(decoding: line, as: UTF8.self) == #"{"schema": "netnet.status/1", "stream": "door", "seq": 9120, "time": "2026-12-02T01:14:03.118Z", "state": "gap", "previous": null, "reason": "spool cap: sink broker lost seq 4100…4388", "attempt": null, "retry_in": null, "reconnects": 0, "sink": "broker", "first_seq": 4100, "last_seq": 4388, "lost": 289}"# + "\n")
    }
}
