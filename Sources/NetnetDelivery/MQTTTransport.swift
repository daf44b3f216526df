import CMosquitto
import Foundation
import NetnetMedia
import NetnetPipeline

/// Where and how an MQTT sink publishes (`[sink NAME]` with `type = mqtt`, or `annotate --sink
/// mqtt://…`). Value type; any thread.
public struct MQTTSettings: Sendable, Equatable {
    /// Broker host.
    public var host: String
    /// Broker port (default 1883, 8883 for `mqtts`).
    public var port: Int
    /// TLS (`mqtts://`).
    public var tls: Bool
    /// CA certificates for TLS (`ca_file`); nil: the system's (`/etc/ssl/certs`).
    public var caFile: String?
    /// Topic template: `{stream}`, `{schema}` (`frame`, `event`, `status`) and `{host}` are
    /// replaced; default `netnet/{stream}/{schema}`.
    public var topic: String
    /// 0 or 1 (default 1).
    public var qos: Int32
    /// The client id of the persistent session (default `netnet-HOST-SINK`).
    public var clientID: String
    /// User name, or nil.
    public var username: String?
    /// The password (read from `password_file`, registered with `Redaction`), or nil.
    public var password: String?
    /// Most messages in flight (sent, not acknowledged), default 256.
    public var maxInFlight: Int
    /// Keep-alive seconds (a dead connection is noticed within about 1.5 × this).
    public var keepAlive: Int32
    /// This host's name, for the `{host}` of topics and the `netnet/{host}/status` will.
    public var hostName: String

    /// Settings; every argument defaults as documented on its property. Pure.
    public init(host: String, port: Int? = nil, tls: Bool = false, caFile: String? = nil,
                topic: String = "netnet/{stream}/{schema}", qos: Int32 = 1, clientID: String? = nil, sink: String = "mqtt",
                username: String? = nil, password: String? = nil, maxInFlight: Int = 256, keepAlive: Int32 = 10,
                hostName: String = MQTTSettings.localHostName()) {
        self.host = host
        self.port = port ?? (tls ? 8883 : 1883)
        self.tls = tls
        self.caFile = caFile
        self.topic = topic
        self.qos = qos
        self.hostName = hostName
        self.clientID = clientID ?? "netnet-\(hostName)-\(sink)"
        self.username = username
        self.password = password
        self.maxInFlight = maxInFlight
        self.keepAlive = keepAlive
    }

    /// This machine's host name (`gethostname`), `localhost` when it has none. Any thread.
    public static func localHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(cString: buffer)
        return name.isEmpty ? "localhost" : name
    }

    /// The topic of a record: the template with `{stream}` (its `/`, `+`, `#` turned into `_`,
    /// so a stream is one topic level), `{schema}` and `{host}` replaced. Pure.
    public func topic(stream: String, kind: RecordKind) -> String {
        let level = String(stream.map { $0 == "/" || $0 == "+" || $0 == "#" ? "_" : $0 })
        return topic.replacingOccurrences(of: "{stream}", with: level)
            .replacingOccurrences(of: "{schema}", with: kind.rawValue)
            .replacingOccurrences(of: "{host}", with: hostName)
    }

    /// The topic of the will (`offline`) and of the retained `online`: `netnet/{host}/status`.
    public var statusTopic: String { "netnet/\(hostName)/status" }
}

/// Owns one `struct mosquitto *` and destroys it in `deinit`. One thread at a time (the sink's).
final class MosquittoHandle {
    let pointer: OpaquePointer

    private static let initialised: Bool = { mosquitto_lib_init() == netnet_mosq_err_success() }()

    init(clientID: String, persistentSession: Bool, context: UnsafeMutableRawPointer) throws(TransportError) {
        _ = Self.initialised
        guard let pointer = mosquitto_new(clientID, !persistentSession, context) else {
            throw TransportError(code: errno, message: "mqtt: cannot create a client: \(String(cString: strerror(errno)))")
        }
        self.pointer = pointer
    }

    deinit { mosquitto_destroy(pointer) }
}

/// The MQTT sink's protocol on libmosquitto 2.0 (MQTT 3.1.1: a persistent session — clean
/// session off, a stable client id — so the broker keeps what was in flight across a reconnect
/// and libmosquitto sends it again). QoS 1 records are acknowledged on PUBACK, QoS 0 ones once
/// written. Last will `offline` on `netnet/{host}/status`, `online` published retained on every
/// connect. The network loop (`mosquitto_loop`) runs on the `SinkRunner`'s thread, never on the
/// cooperative pool; every call and callback happens on that thread.
public final class MQTTTransport: SinkTransport {
    /// As given.
    public let settings: MQTTSettings
    private var handle: MosquittoHandle?
    private var connected = false
    private var connackCode: Int32?
    private var acknowledged: [UInt64] = []
    private var tokens: [Int32: UInt64] = [:]
    private var lost = false

    /// A transport for `settings`; connects on the first `connect`. Any thread.
    public init(settings: MQTTSettings) {
        self.settings = settings
    }

    public var maxInFlight: Int { settings.maxInFlight }
    public var resendsInFlightAfterReconnect: Bool { true }

    private func check(_ rc: Int32, _ what: String) throws(TransportError) {
        guard rc != netnet_mosq_err_success() else { return }
        throw TransportError(code: rc, message: Redaction.redact("mqtt \(settings.host):\(settings.port): \(what): \(String(cString: mosquitto_strerror(rc)))"))
    }

    private func makeHandle() throws(TransportError) -> MosquittoHandle {
        let handle = try MosquittoHandle(clientID: settings.clientID, persistentSession: true,
                                         context: Unmanaged.passUnretained(self).toOpaque())
        let m = handle.pointer
        try check(mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311), "protocol")
        try check(mosquitto_max_inflight_messages_set(m, UInt32(settings.maxInFlight)), "max in flight")
        let offline = Array("offline".utf8)
        try check(mosquitto_will_set(m, settings.statusTopic, Int32(offline.count), offline, 1, true), "will")
        if let username = settings.username { try check(mosquitto_username_pw_set(m, username, settings.password), "credentials") }
        if settings.tls {
            let rc = settings.caFile.map { mosquitto_tls_set(m, $0, nil, nil, nil, nil) } ?? mosquitto_tls_set(m, nil, "/etc/ssl/certs", nil, nil, nil)
            try check(rc, "TLS")
        }
        mosquitto_connect_callback_set(m) { _, context, rc in
            let me = Unmanaged<MQTTTransport>.fromOpaque(context!).takeUnretainedValue()
            me.connackCode = rc
            me.connected = rc == 0
        }
        mosquitto_disconnect_callback_set(m) { _, context, _ in
            let me = Unmanaged<MQTTTransport>.fromOpaque(context!).takeUnretainedValue()
            me.connected = false
            me.lost = true
        }
        mosquitto_publish_callback_set(m) { _, context, mid in
            let me = Unmanaged<MQTTTransport>.fromOpaque(context!).takeUnretainedValue()
            if let token = me.tokens.removeValue(forKey: mid) { me.acknowledged.append(token) }
        }
        return handle
    }

    public func connect() throws(TransportError) {
        let fresh = handle == nil
        if fresh { handle = try makeHandle() }
        let m = handle!.pointer
        connackCode = nil
        lost = false
        let rc = fresh ? mosquitto_connect(m, settings.host, Int32(settings.port), settings.keepAlive) : mosquitto_reconnect(m)
        if rc == MOSQ_ERR_ERRNO.rawValue {
            let code = errno
            throw TransportError(code: code, message: Redaction.redact("mqtt \(settings.host):\(settings.port): \(String(cString: strerror(code)))"))
        }
        if fresh && rc != netnet_mosq_err_success() { handle = nil }
        try check(rc, "connect")
        // Wait for the CONNACK: a refused one is a failure, not a connection (Frigate #14963).
        let deadline = Date(timeIntervalSinceNow: 10)
        while connackCode == nil && Date() < deadline {
            let step = mosquitto_loop(m, 100, 1)
            if step != netnet_mosq_err_success() { try check(step, "waiting for CONNACK") }
        }
        guard let code = connackCode else {
            mosquitto_disconnect(m)
            throw TransportError(code: -1, message: "mqtt \(settings.host):\(settings.port): no CONNACK within 10 s")
        }
        guard code == 0 else {
            mosquitto_disconnect(m)
            throw TransportError(code: code, message: "mqtt \(settings.host):\(settings.port): connection refused: \(String(cString: mosquitto_connack_string(code)))")
        }
        let online = Array("online".utf8)
        _ = mosquitto_publish(m, nil, settings.statusTopic, Int32(online.count), online, 1, true)
    }

    public func send(_ record: DeliveryRecord, token: UInt64) -> SendResult {
        guard let m = handle?.pointer, connected else { return .disconnected }
        var mid: Int32 = 0
        let topic = settings.topic(stream: record.stream, kind: record.kind)
        let body = record.lineWithoutNewline
        let rc = body.withUnsafeBytes { mosquitto_publish(m, &mid, topic, Int32($0.count), $0.baseAddress, settings.qos, false) }
        switch rc {
        case netnet_mosq_err_success():
            tokens[mid] = token
            return .sent
        case MOSQ_ERR_NO_CONN.rawValue, MOSQ_ERR_CONN_LOST.rawValue, MOSQ_ERR_ERRNO.rawValue:
            connected = false
            return .disconnected
        default:
            return .rejected(String(cString: mosquitto_strerror(rc)))
        }
    }

    public func poll(timeout: Double) -> PollResult {
        guard let m = handle?.pointer else { return PollResult(connected: false) }
        let rc = mosquitto_loop(m, Int32(timeout * 1000), 1)
        if rc != netnet_mosq_err_success() { connected = false }
        if lost { connected = false }
        let done = acknowledged
        acknowledged.removeAll(keepingCapacity: true)
        // Messages in flight keep their mids across a reconnect (the session resends them).
        return PollResult(acknowledged: done, connected: connected)
    }

    public func close() {
        guard let m = handle?.pointer else { return }
        if connected {
            let offline = Array("offline".utf8)
            _ = mosquitto_publish(m, nil, settings.statusTopic, Int32(offline.count), offline, 1, true)
            for _ in 0..<5 { _ = mosquitto_loop(m, 20, 1) }
            mosquitto_disconnect(m)
        }
        handle = nil
    }
}
