import Foundation
import HTTPTypes
import NetnetDaemon

/// An SSE event's id, `STREAM:SEQ` (stream ids hold no `:`), as `id:` lines carry it and a
/// reconnecting client sends it back in `Last-Event-ID`. Value type; any thread.
public struct EventID: Sendable, Hashable, CustomStringConvertible {
    /// The stream id.
    public let stream: String
    /// The record's `seq` in that stream.
    public let seq: Int

    /// `STREAM:SEQ` parsed; nil for anything else (a client's header is untrusted text). Pure.
    public init?(_ text: String) {
        guard text.utf8.count <= 96, let colon = text.lastIndex(of: ":"),
              let seq = Int(text[text.index(after: colon)...]), seq >= 0 else { return nil }
        let stream = String(text[..<colon])
        guard ConfigParser.isValidID(stream) else { return nil }
        self.stream = stream
        self.seq = seq
    }

    /// The id of `stream`'s record `seq`. Pure.
    public init(stream: String, seq: Int) {
        self.stream = stream
        self.seq = seq
    }

    /// The id of an event. Pure.
    public init(of event: DaemonEvent) {
        self.init(stream: event.stream, seq: event.seq)
    }

    /// `STREAM:SEQ`.
    public var description: String { "\(stream):\(seq)" }
}

/// The daemon's most recent events in publish order, so that an SSE client reconnecting with
/// `Last-Event-ID` gets what it missed (docs/operations.md, "Resuming"). Bounded by count and by
/// bytes; the oldest go first. `append` runs on the publishing thread inside the hub's publish,
/// so it only copies a reference under a short lock. Any thread.
public final class EventReplay: @unchecked Sendable {
    /// What a reconnecting client gets. Value type.
    public enum Resumption: Sendable {
        /// The events published after its last one (possibly none), in publish order.
        case resumed([DaemonEvent])
        /// Its last event is not held (older than what is kept, or from before this process
        /// started): what is held starts at `oldest` (nil: nothing held yet).
        case missed(oldest: EventID?)
    }

    private let lock = NSLock()
    private var events: [DaemonEvent] = []
    private var head = 0
    private var bytes = 0
    /// Most events held.
    public let maxEvents: Int
    /// Most bytes of their lines held.
    public let maxBytes: Int

    /// At most `maxEvents` events and `maxBytes` bytes of their lines (both at least 1). Pure.
    public init(maxEvents: Int = 8192, maxBytes: Int = 8 << 20) {
        precondition(maxEvents > 0 && maxBytes > 0)
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
    }

    /// Keeps `event`, dropping the oldest beyond the bounds (the newest is always kept). Any
    /// thread; never blocks beyond a short lock.
    public func append(_ event: DaemonEvent) {
        lock.lock(); defer { lock.unlock() }
        events.append(event)
        bytes += event.line.count
        while events.count - head > maxEvents || (bytes > maxBytes && events.count - head > 1) {
            bytes -= events[head].line.count
            head += 1
        }
        // Compact now and then, not on every drop: amortised O(1).
        if head > 1024 && head * 2 > events.count {
            events.removeFirst(head)
            head = 0
        }
    }

    /// The events after `last` whose stream is `stream` (nil: all), or where what is held begins.
    /// Any thread.
    public func resume(after last: EventID, stream: String?) -> Resumption {
        lock.lock(); defer { lock.unlock() }
        guard let index = events[head...].lastIndex(where: { $0.stream == last.stream && $0.seq == last.seq }) else {
            return .missed(oldest: events[head...].first { stream == nil || $0.stream == stream }.map(EventID.init(of:)))
        }
        return .resumed(events[(index + 1)...].filter { stream == nil || $0.stream == stream })
    }

    /// Events held now. Any thread.
    public var count: Int {
        lock.lock(); defer { lock.unlock() }
        return events.count - head
    }
}

extension HTTPField.Name {
    /// `Last-Event-ID`: the id of the last SSE event a reconnecting client got.
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}
