/// Which schema a record line has: `netnet.frame/1`, `netnet.event/1` or `netnet.status/1`.
/// Value type; any thread.
public enum RecordKind: String, Sendable, CaseIterable {
    case frame, event, status

    /// The kind of `schema` (`netnet.frame/1` → `.frame`), nil for another schema. Pure.
    public init?(schema: String) {
        switch schema {
        case "netnet.frame/1": self = .frame
        case "netnet.event/1": self = .event
        case "netnet.status/1": self = .status
        default: return nil
        }
    }
}

/// Where the pipeline hands every record it writes, beside its JSON-lines outputs: the durable
/// delivery (NetnetDelivery's spool and sinks). `accept` is called on the record path (the
/// writer or inference thread, or a stream's reader thread for status lines) and must not wait
/// on any network or slow consumer; it returns once the record is in the spool's buffer.
public protocol RecordSink: AnyObject, Sendable {
    /// Takes one record: its kind, stream, `seq` (from the stream's `StreamSequence`) and JSON
    /// line (newline included). Any thread; never blocks on a sink.
    func accept(kind: RecordKind, stream: String, seq: Int, line: [UInt8])
}
