import NetnetPipeline

/// One record as the spool keeps it and a sink sends it: kind, stream, `seq` and the JSON line.
/// Value type; any thread.
public struct DeliveryRecord: Sendable, Equatable {
    /// Frame, event or status.
    public var kind: RecordKind
    /// The stream id.
    public var stream: String
    /// Unique per stream across restarts (docs/json-lines.md).
    public var seq: Int
    /// The JSON line, newline included.
    public var line: [UInt8]

    /// A record. Pure.
    public init(kind: RecordKind, stream: String, seq: Int, line: [UInt8]) {
        self.kind = kind
        self.stream = stream
        self.seq = seq
        self.line = line
    }

    private static let version: UInt8 = 1
    private static let kinds: [RecordKind] = [.frame, .event, .status]

    /// The spool payload: version `1`, kind (0 frame, 1 event, 2 status), seq (`Int64` LE),
    /// stream length (`UInt16` LE), the stream's UTF-8, then the line. Pure.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        let name = Array(stream.utf8.prefix(Int(UInt16.max)))
        bytes.reserveCapacity(12 + name.count + line.count)
        bytes.append(Self.version)
        bytes.append(UInt8(Self.kinds.firstIndex(of: kind)!))
        withUnsafeBytes(of: Int64(seq).littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt16(name.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: name)
        bytes.append(contentsOf: line)
        return bytes
    }

    /// The record in a spool payload, nil when it is not one (another version, cut short). Pure.
    public init?(payload: [UInt8]) {
        guard payload.count >= 12, payload[0] == Self.version, Int(payload[1]) < Self.kinds.count else { return nil }
        var seq: Int64 = 0
        for k in 0..<8 { seq |= Int64(payload[2 + k]) << (8 * Int64(k)) }
        let length = Int(payload[10]) | Int(payload[11]) << 8
        guard payload.count >= 12 + length else { return nil }
        kind = Self.kinds[Int(payload[1])]
        self.seq = Int(seq)
        stream = String(decoding: payload[12..<12 + length], as: UTF8.self)
        line = Array(payload[(12 + length)...])
    }

    /// The line without its newline (an MQTT message or one line of a webhook batch). Pure.
    public var lineWithoutNewline: ArraySlice<UInt8> {
        line.last == 10 ? line.dropLast() : line[...]
    }
}
