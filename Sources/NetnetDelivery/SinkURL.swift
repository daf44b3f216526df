import Foundation
import NetnetDaemon
import NetnetMedia
import NetnetPipeline

/// `annotate --sink URL`: `mqtt://[USER@]HOST[:PORT][/TOPIC-PREFIX][?qos=0|1&lines=event,status
/// &client_id=ID&password_file=PATH&ca_file=PATH]`, `mqtts://…` for TLS. The topic is
/// `PREFIX/{stream}/{schema}` (prefix default `netnet`).
///
/// `http://[USER@]HOST[:PORT][/PATH][?QUERY]`, `https://…`: an HTTP webhook; the POST target is
/// the URL without its user part and without netnet's own options (`lines`, `password_file`,
/// `ca_file`), so any other query item is the endpoint's and is sent as given. `USER` (with
/// `password_file`) is sent as HTTP basic auth.
///
/// A password is never part of the URL: `password_file` names a file holding it. Pure apart
/// from reading that file.
public enum SinkURL {
    /// Why a `--sink` URL or `[sink]` value cannot be used. Value type.
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The options of an `http(s)` URL that are netnet's, not the endpoint's.
    static let webhookOptions: Set<String> = ["lines", "password_file", "ca_file"]

    /// The default names of `urls` in order (their spool cursors'): `mqtt`, `mqtt-2`, … for the
    /// MQTT ones, `http`, `http-2`, … for the webhooks, each numbered among its own kind, so
    /// adding a webhook leaves the MQTT sinks' cursors where they were. Pure.
    public static func defaultNames(_ urls: [String]) -> [String] {
        var counts: [String: Int] = [:]
        return urls.map { url in
            let scheme = URLComponents(string: url)?.scheme?.lowercased()
            let kind = scheme == "http" || scheme == "https" ? "http" : "mqtt"
            counts[kind, default: 0] += 1
            let n = counts[kind]!
            return n == 1 ? kind : "\(kind)-\(n)"
        }
    }

    /// The spec of `url`, named `name`. Throws `Problem` with one line.
    public static func parse(_ url: String, name: String) throws(Problem) -> SinkSpec {
        let address: SinkAddress
        do {
            address = try SinkAddress(url, schemes: ["mqtt", "mqtts", "http", "https"])
        } catch {
            let shown = Redaction.redact(url)
            switch error {
            case .notURLWithHost:
                throw Problem(description: "\(shown): not a URL with a host (mqtt://HOST[:PORT]/PREFIX, http://HOST[:PORT]/PATH)")
            case let .scheme(scheme): throw Problem(description: "\(shown): unknown sink scheme \(scheme) (mqtt, mqtts, http, https)")
            case let .port(port): throw Problem(description: "\(shown): port \(port) is out of range 1-65535")
            case .password: throw Problem(description: "\(shown): no password in the URL; put it in a file and give ?password_file=PATH")
            }
        }
        let components = address.components, scheme = address.scheme, host = address.host
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        if scheme == "http" || scheme == "https" { return try webhook(components, query: query, name: name) }
        let known: Set<String> = ["qos", "lines", "client_id", "password_file", "ca_file"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw Problem(description: "\(Redaction.redact(url)): unknown option \(unknown) (\(known.sorted().joined(separator: ", ")))")
        }
        let prefix = components.path.split(separator: "/").joined(separator: "/")
        let values = try SinkValues(qos: query["qos"], lines: query["lines"], passwordFile: query["password_file"])
        let settings = MQTTSettings(host: host, port: components.port, tls: scheme == "mqtts", caFile: query["ca_file"],
                                    topic: (prefix.isEmpty ? "netnet" : prefix) + "/{stream}/{schema}", qos: values.qos,
                                    clientID: query["client_id"], sink: name, username: components.user, password: values.password)
        return SinkSpec(name: name, lines: values.lines, kind: .mqtt(settings))
    }

    /// An `http(s)` URL's spec: netnet's options taken out, the rest (as the user encoded it) the target.
    private static func webhook(_ components: URLComponents, query: [String: String], name: String) throws(Problem) -> SinkSpec {
        let values = try SinkValues(qos: nil, lines: query["lines"], passwordFile: query["password_file"])
        var target = components
        target.user = nil
        target.fragment = nil
        let kept = (components.percentEncodedQueryItems ?? []).filter { !webhookOptions.contains($0.name) }
        target.percentEncodedQueryItems = kept.isEmpty ? nil : kept
        guard let url = target.string else {
            throw Problem(description: "\(Redaction.redact(components.string ?? "")): cannot be made a POST target")
        }
        let settings = WebhookSettings(url: url, username: components.user, password: values.password, caFile: query["ca_file"])
        return SinkSpec(name: name, lines: values.lines, kind: .http(settings))
    }
}

/// The values a URL query and a `[sink]` section share, checked. Value type.
public struct SinkValues: Sendable {
    /// 0 or 1.
    public var qos: Int32 = 1
    /// The kinds sent.
    public var lines: Set<RecordKind> = Set(RecordKind.allCases)
    /// The password read from the file (registered with `Redaction`), or nil.
    public var password: String?

    /// Checks and reads: `qos` 0 or 1, `lines` a comma list of frame, event, status, the password
    /// file readable (its first line; registered as a secret). Throws `SinkURL.Problem`.
    public init(qos: String?, lines: String?, passwordFile: String?) throws(SinkURL.Problem) {
        if let qos {
            guard let value = Int32(qos), value == 0 || value == 1 else { throw SinkURL.Problem(description: "qos must be 0 or 1, got \(qos)") }
            self.qos = value
        }
        if let lines {
            var kinds = Set<RecordKind>()
            for part in lines.split(separator: ",") {
                let name = part.trimmingCharacters(in: .whitespaces)
                guard let kind = RecordKind(rawValue: name) else {
                    throw SinkURL.Problem(description: "lines: unknown line type \(name) (frame, event, status)")
                }
                kinds.insert(kind)
            }
            guard !kinds.isEmpty else { throw SinkURL.Problem(description: "lines: name at least one of frame, event, status") }
            self.lines = kinds
        }
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile) else {
                throw SinkURL.Problem(description: "password_file \(passwordFile): cannot be read")
            }
            let password = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            Redaction.register(secret: password)
            self.password = password
        }
    }
}
