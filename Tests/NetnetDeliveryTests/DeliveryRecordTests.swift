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
}
