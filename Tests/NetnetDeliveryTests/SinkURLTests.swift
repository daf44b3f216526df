import Foundation
import NetnetDaemon
import NetnetMedia
import Testing
@testable import NetnetDelivery
import NetnetPipeline

/// `SinkURL.parse` for webhooks (and that MQTT parses as before), the default sink names, and
/// what each HTTP status means for a batch.
@Suite("sink URLs")
struct SinkURLTests {
    private func webhook(_ spec: SinkSpec) -> WebhookSettings? {
        if case let .http(settings) = spec.kind { return settings }
        return nil
    }

    @Test func plainWebhook() throws {
        let spec = try SinkURL.parse("http://127.0.0.1:8080/hook", name: "http")
        #expect(spec.name == "http" && spec.lines == Set(RecordKind.allCases))
        #expect(webhook(spec) == WebhookSettings(url: "http://127.0.0.1:8080/hook"))
        #expect(webhook(spec)?.batchRecords == 256 && webhook(spec)?.timeout == 10)
    }

    @Test func webhookOptionsAreTakenOutOfTheTarget() throws {
        let passwordFile = NSTemporaryDirectory() + "netnet-sinkurl-\(UUID().uuidString)"
        try "hunter22\nignored\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        let spec = try SinkURL.parse("https://bot@hooks.example.com:8443/in/cam?lines=event,status&password_file=\(passwordFile)"
                                     + "&ca_file=/etc/netnet/ca.pem&team=a%20b&qos=2", name: "http-2")
        let settings = try #require(webhook(spec))
        // The endpoint's own query items stay, encoded as given; netnet's and the user part go.
        #expect(settings.url == "https://hooks.example.com:8443/in/cam?team=a%20b&qos=2")
        #expect(settings.username == "bot" && settings.password == "hunter22")
        #expect(settings.caFile == "/etc/netnet/ca.pem")
        #expect(spec.lines == [.event, .status] && spec.name == "http-2")
        #expect(Redaction.redact("sent hunter22") == "sent ***", "the password is registered as a secret")
    }

    @Test func passwordInWebhookURLRefused() {
        #expect {
            _ = try SinkURL.parse("http://bot:s3cr3t-pw@127.0.0.1/hook", name: "http")
        } throws: { error in
            let text = "\(error)"
            return text.contains("password_file") && !text.contains("s3cr3t-pw")
        }
    }

    @Test func badWebhookOptionsRefused() {
        #expect(throws: SinkURL.Problem.self) { _ = try SinkURL.parse("http://h/hook?lines=frames", name: "http") }
        #expect(throws: SinkURL.Problem.self) { _ = try SinkURL.parse("http://h/hook?password_file=/nonexistent/pw", name: "http") }
        #expect(throws: SinkURL.Problem.self) { _ = try SinkURL.parse("http:///hook", name: "http") }
        #expect(throws: SinkURL.Problem.self) { _ = try SinkURL.parse("ftp://h/hook", name: "http") }
    }

    /// `--sink` and `[sink]` share one address check (SinkAddress): a port out of range is
    /// refused here as the configuration refuses it, and the problems are typed.
    @Test func portOutOfRangeRefusedAsTheConfigurationDoes() {
        for url in ["mqtt://broker:70000/site", "https://h:0/hook"] {
            #expect {
                _ = try SinkURL.parse(url, name: "s")
            } throws: { error in "\(error)".contains("out of range 1-65535") }
        }
        #expect(throws: SinkAddress.Problem.port(70000)) { _ = try SinkAddress("mqtt://b:70000", schemes: ["mqtt"]) }
        #expect(throws: SinkAddress.Problem.scheme("http")) { _ = try SinkAddress("http://b/x", schemes: ["mqtt"]) }
        #expect(throws: SinkAddress.Problem.password) { _ = try SinkAddress("mqtt://u:p@b", schemes: ["mqtt"]) }
        #expect(throws: SinkAddress.Problem.notURLWithHost) { _ = try SinkAddress("mqtt:///x", schemes: ["mqtt"]) }
    }

    @Test func mqttUnchanged() throws {
        let spec = try SinkURL.parse("mqtt://u@broker:1884/site?qos=0&lines=frame", name: "mqtt")
        guard case let .mqtt(settings) = spec.kind else { Issue.record("not mqtt: \(spec.kind)"); return }
        #expect(settings.host == "broker" && settings.port == 1884 && settings.qos == 0 && settings.username == "u")
        #expect(settings.topic == "site/{stream}/{schema}" && spec.lines == [.frame])
        // An unknown option is still refused for MQTT (a webhook passes it on to its endpoint).
        #expect(throws: SinkURL.Problem.self) { _ = try SinkURL.parse("mqtt://broker/site?team=a", name: "mqtt") }
    }

    @Test func defaultNamesCountEachKind() {
        #expect(SinkURL.defaultNames(["mqtt://a", "http://b", "mqtts://c", "HTTPS://d", "http://e"])
                == ["mqtt", "http", "mqtt-2", "http-2", "http-3"])
        #expect(SinkURL.defaultNames(["mqtt://a", "mqtt://b"]) == ["mqtt", "mqtt-2"], "MQTT-only runs keep their cursor names")
    }

    @Test func statusOutcomes() {
        for code in [200, 201, 202, 204, 299] { #expect(WebhookSettings.outcome(status: code) == .accepted, "\(code)") }
        for code in [301, 302, 307, 401, 403, 404, 405, 408, 429, 500, 502, 503, 504, 599] {
            #expect(WebhookSettings.outcome(status: code) == .retry, "\(code)")
        }
        for code in [400, 409, 410, 413, 415, 422, 499] { #expect(WebhookSettings.outcome(status: code) == .rejected, "\(code)") }
    }
}
