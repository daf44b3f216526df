import NetnetEngine
import NetnetScene
import NetnetTracker

/// What happened to an object: the `kind` of a `netnet.event/1` line. Value type.
public enum ObjectEventKind: String, Sendable, Equatable, CaseIterable {
    /// A track was confirmed: a new object.
    case objectStart = "object_start"
    /// A confirmed track ended: lost for longer than the tracker keeps it, or its stream stopped.
    case objectEnd = "object_end"
    /// It crossed a scene line (`--scene`, `scene =`).
    case cross
    /// It entered a scene zone.
    case enter
    /// It left a scene zone (or ended inside it).
    case leave
    /// It has been in a scene zone for the zone's `loiter` seconds (once per visit).
    case loiter

    /// The kind of a scene rule's event. Pure.
    public init(_ kind: SceneEventKind) {
        switch kind {
        case .cross: self = .cross
        case .enter: self = .enter
        case .leave: self = .leave
        case .loiter: self = .loiter
        }
    }
}

/// Why an object ended. Value type.
public enum ObjectEndReason: String, Sendable, Equatable {
    /// Not detected for longer than the tracker keeps a lost track.
    case lost
    /// Its stream ended, stopped or reconnected (the tracker starts afresh).
    case streamEnd = "stream_end"
}

/// The frame an event was decided on: the stream's frame index, its pts and its read time (the
/// event's `frame`, `pts`, `time`). Value type.
public struct FrameFacts: Sendable, Equatable {
    /// 0-based index of the decoded frame in the stream (in the connection, for `serve`).
    public var index: Int
    /// Presentation time in seconds, or nil.
    public var pts: Double?
    /// Wall-clock read time, ns since the Unix epoch.
    public var readNanoseconds: Int64
    /// The frame's size in pixels.
    public var width: Int, height: Int
    /// The input's frame rate, if it says.
    public var frameRate: Double?
    /// Frames dropped since the previous line of this stream.
    public var dropped: Int

    /// Facts. Pure.
    public init(index: Int, pts: Double?, readNanoseconds: Int64, width: Int, height: Int, frameRate: Double?, dropped: Int = 0) {
        self.index = index; self.pts = pts; self.readNanoseconds = readNanoseconds
        self.width = width; self.height = height; self.frameRate = frameRate; self.dropped = dropped
    }

    /// The facts of the frame `slot` holds. Reads the slot; the slot's owner's thread.
    public init(_ slot: FrameSlot) {
        self.init(index: slot.frame.index, pts: slot.frame.ptsSeconds, readNanoseconds: slot.readNanoseconds,
                  width: slot.frame.width, height: slot.frame.height, frameRate: slot.frameRate, dropped: slot.dropped)
    }
}

/// How a confirmed track's life went, carried by its `object_end` line. Value type.
public struct ObjectLife: Sendable, Equatable {
    /// Lost or stream end.
    public var reason: ObjectEndReason
    /// First and last frame the object was detected in.
    public var firstFrame: Int, lastFrame: Int
    /// Their wall-clock read times, ns since the epoch.
    public var firstNanoseconds: Int64, lastNanoseconds: Int64
    /// Seconds of stream time from the first to the last detection (pts, or frames over the rate).
    public var duration: Double
    /// The best detection: score, frame and box.
    public var bestScore: Float, bestFrame: Int, bestBox: [Float]

    /// A life. Pure.
    public init(reason: ObjectEndReason, firstFrame: Int, lastFrame: Int, firstNanoseconds: Int64, lastNanoseconds: Int64,
                duration: Double, bestScore: Float, bestFrame: Int, bestBox: [Float]) {
        self.reason = reason; self.firstFrame = firstFrame; self.lastFrame = lastFrame
        self.firstNanoseconds = firstNanoseconds; self.lastNanoseconds = lastNanoseconds
        self.duration = duration; self.bestScore = bestScore; self.bestFrame = bestFrame; self.bestBox = bestBox
    }
}

/// One `netnet.event/1` line (docs/json-lines.md, docs/schemas/netnet.event.schema.json): an
/// object started or ended on a stream. The common keys (schema, stream, seq, time, pts, frame,
/// kind, track_id, label, score, box, class) come first in that order; the kind's own keys follow
/// (`object_end`: its life; `cross`: line, direction, from_frame, from, to_frame, to; `enter`:
/// zone and the same positions; `leave`, `loiter`: zone, dwell and the positions). Value type;
/// any thread.
public struct ObjectEvent: Sendable, Equatable {
    /// The schema identifier every event line carries first.
    public static let schema = "netnet.event/1"

    /// The stream id.
    public var stream: String
    /// The frame the event was decided on.
    public var frame: FrameFacts
    /// What happened.
    public var kind: ObjectEventKind
    /// The object's track id.
    public var trackID: Int
    /// Its class index and label.
    public var classIndex: Int, label: String
    /// `object_start`: the confirming detection's score and box; `object_end`: the last detection's.
    public var score: Float, box: [Float]
    /// `object_end` only: the object's life.
    public var life: ObjectLife?
    /// Scene kinds only: the rule's event, with the inputs that decided it.
    public var scene: SceneEvent?

    /// An event. Pure.
    public init(stream: String, frame: FrameFacts, kind: ObjectEventKind, trackID: Int, classIndex: Int, label: String,
                score: Float, box: [Float], life: ObjectLife? = nil, scene: SceneEvent? = nil) {
        self.stream = stream; self.frame = frame; self.kind = kind; self.trackID = trackID
        self.classIndex = classIndex; self.label = label; self.score = score; self.box = box; self.life = life
        self.scene = scene
    }

    /// Appends this event as line `seq` of its stream's events, newline included. Numbers as in
    /// the frame lines (scores 5 decimals, boxes 2, pts 6, duration 3; non-finite: `null`). Any thread.
    public func appendJSONLine(seq: Int, to bytes: inout [UInt8]) {
        JSONText.appendRaw("{\"schema\": ", to: &bytes)
        JSONText.appendString(Self.schema, to: &bytes)
        JSONText.appendRaw(", \"stream\": ", to: &bytes)
        JSONText.appendString(stream, to: &bytes)
        JSONText.appendRaw(", \"seq\": ", to: &bytes)
        JSONText.appendInt(seq, to: &bytes)
        JSONText.appendRaw(", \"time\": \"", to: &bytes)
        WallClock.appendISO8601(nanoseconds: frame.readNanoseconds, to: &bytes)
        JSONText.appendRaw("\", \"pts\": ", to: &bytes)
        if let pts = frame.pts { JSONText.appendFixed(pts, decimals: 6, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        JSONText.appendRaw(", \"frame\": ", to: &bytes)
        JSONText.appendInt(frame.index, to: &bytes)
        JSONText.appendRaw(", \"kind\": ", to: &bytes)
        JSONText.appendString(kind.rawValue, to: &bytes)
        JSONText.appendRaw(", \"track_id\": ", to: &bytes)
        JSONText.appendInt(trackID, to: &bytes)
        JSONText.appendRaw(", \"label\": ", to: &bytes)
        JSONText.appendString(label, to: &bytes)
        JSONText.appendRaw(", \"score\": ", to: &bytes)
        JSONText.appendFixed(Double(score), decimals: 5, to: &bytes)
        JSONText.appendRaw(", \"box\": ", to: &bytes)
        Self.appendBox(box, to: &bytes)
        JSONText.appendRaw(", \"class\": ", to: &bytes)
        JSONText.appendInt(classIndex, to: &bytes)
        if let life {
            JSONText.appendRaw(", \"reason\": ", to: &bytes)
            JSONText.appendString(life.reason.rawValue, to: &bytes)
            JSONText.appendRaw(", \"first_frame\": ", to: &bytes)
            JSONText.appendInt(life.firstFrame, to: &bytes)
            JSONText.appendRaw(", \"last_frame\": ", to: &bytes)
            JSONText.appendInt(life.lastFrame, to: &bytes)
            JSONText.appendRaw(", \"first_time\": \"", to: &bytes)
            WallClock.appendISO8601(nanoseconds: life.firstNanoseconds, to: &bytes)
            JSONText.appendRaw("\", \"last_time\": \"", to: &bytes)
            WallClock.appendISO8601(nanoseconds: life.lastNanoseconds, to: &bytes)
            JSONText.appendRaw("\", \"duration\": ", to: &bytes)
            JSONText.appendFixed(max(0, life.duration), decimals: 3, to: &bytes)
            JSONText.appendRaw(", \"best_score\": ", to: &bytes)
            JSONText.appendFixed(Double(life.bestScore), decimals: 5, to: &bytes)
            JSONText.appendRaw(", \"best_frame\": ", to: &bytes)
            JSONText.appendInt(life.bestFrame, to: &bytes)
            JSONText.appendRaw(", \"best_box\": ", to: &bytes)
            Self.appendBox(life.bestBox, to: &bytes)
        }
        if let scene {
            JSONText.appendRaw(scene.kind == .cross ? ", \"line\": " : ", \"zone\": ", to: &bytes)
            JSONText.appendString(scene.rule, to: &bytes)
            if let direction = scene.direction {
                JSONText.appendRaw(", \"direction\": ", to: &bytes)
                JSONText.appendString(direction.rawValue, to: &bytes)
            }
            if let dwell = scene.dwell {
                JSONText.appendRaw(", \"dwell\": ", to: &bytes)
                JSONText.appendFixed(max(0, dwell), decimals: 3, to: &bytes)
            }
            JSONText.appendRaw(", \"from_frame\": ", to: &bytes)
            JSONText.appendInt(scene.fromFrame, to: &bytes)
            JSONText.appendRaw(", \"from\": ", to: &bytes)
            Self.appendPoint(scene.from, to: &bytes)
            JSONText.appendRaw(", \"to_frame\": ", to: &bytes)
            JSONText.appendInt(scene.toFrame, to: &bytes)
            JSONText.appendRaw(", \"to\": ", to: &bytes)
            Self.appendPoint(scene.to, to: &bytes)
        }
        JSONText.appendRaw("}\n", to: &bytes)
    }

    /// The line for `seq` without its newline. Allocates; for tests and one-off use. Any thread.
    public func jsonLine(seq: Int) -> String {
        var bytes: [UInt8] = []
        appendJSONLine(seq: seq, to: &bytes)
        bytes.removeLast()
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func appendPoint(_ point: ScenePoint, to bytes: inout [UInt8]) {
        JSONText.appendRaw("[", to: &bytes)
        JSONText.appendFixed(point.x, decimals: 2, to: &bytes)
        JSONText.appendRaw(", ", to: &bytes)
        JSONText.appendFixed(point.y, decimals: 2, to: &bytes)
        JSONText.appendRaw("]", to: &bytes)
    }

    private static func appendBox(_ box: [Float], to bytes: inout [UInt8]) {
        JSONText.appendRaw("[", to: &bytes)
        for k in 0..<4 {
            if k > 0 { JSONText.appendRaw(", ", to: &bytes) }
            if k < box.count { JSONText.appendFixed(Double(box[k]), decimals: 2, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        }
        JSONText.appendRaw("]", to: &bytes)
    }
}
