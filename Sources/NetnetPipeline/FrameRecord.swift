import NetnetEngine
import NetnetTracker

/// What the tracker says of one detection in a frame line: its track (`track_id`, nil while the
/// track is unconfirmed or with tracking off), whether the box is this frame's detection or the
/// tracker's prediction (`origin`), whether the object has stood still (`stationary`), and the
/// tracker's own box for it (`track_box`, `TrackedBox.estimate`). Value type.
public struct TrackTag: Sendable, Equatable {
    /// The track id, or nil.
    public var trackID: Int?
    /// Detector or tracker.
    public var origin: TrackOrigin
    /// The track has not moved for the configured time.
    public var stationary: Bool
    /// The track's filtered box on this frame, or nil (no confirmed track).
    public var estimate: TrackBox?
    /// A tag. Pure.
    public init(trackID: Int? = nil, origin: TrackOrigin = .detector, stationary: Bool = false, estimate: TrackBox? = nil) {
        self.trackID = trackID; self.origin = origin; self.stationary = stationary; self.estimate = estimate
    }
    /// An untracked detection of this frame.
    public static let untracked = TrackTag()
}

/// What one JSON line says about one frame (schema `netnet.frame/1`, docs/json-lines.md). The line
/// number `seq` is not stored here: the stream's `FrameRecorder` numbers its records. Value
/// type; any thread.
public struct FrameRecord: Sendable, Equatable {
    /// The schema identifier every line carries first.
    public static let schema = "netnet.frame/1"

    /// The stream's identifier (a file name, a camera name).
    public var stream: String
    /// 0-based index of the decoded frame in the stream, counting dropped frames.
    public var frame: Int
    /// Presentation time in seconds from the stream's time base, or nil if the stream has none.
    public var pts: Double?
    /// Wall-clock time the frame was read, in nanoseconds since the Unix epoch (UTC).
    public var timeNanoseconds: Int64
    /// Frame width in pixels.
    public var width: Int
    /// Frame height in pixels.
    public var height: Int
    /// Frames dropped since the previous line of this stream (the ring's `droppedBefore`).
    public var dropped: Int
    /// Whether this frame went through the network. With `--every N`, the frames in between carry
    /// the last inferred frame's detections and say `false`.
    public var inferred: Bool
    /// Forward pass plus post-processing time in milliseconds; written only when `inferred`
    /// (otherwise, or if nil or non-finite, the line says `null`).
    public var inferenceMilliseconds: Double?
    /// The detections, boxes in this frame's pixels.
    public var detections: [Detection]
    /// Per detection (same order): its track, origin and stationary flag; missing entries are
    /// written as `TrackTag.untracked`.
    public var tracks: [TrackTag]

    /// A record; `inferred` defaults to whether an inference time is given. Any thread.
    public init(stream: String, frame: Int, pts: Double?, timeNanoseconds: Int64, width: Int, height: Int,
                dropped: Int, inferenceMilliseconds: Double?, inferred: Bool? = nil, detections: [Detection],
                tracks: [TrackTag] = []) {
        self.stream = stream
        self.frame = frame
        self.pts = pts
        self.timeNanoseconds = timeNanoseconds
        self.width = width
        self.height = height
        self.dropped = dropped
        self.inferenceMilliseconds = inferenceMilliseconds
        self.inferred = inferred ?? (inferenceMilliseconds != nil)
        self.detections = detections
        self.tracks = tracks
    }

    /// Appends the JSON line for this record as line `seq` of its stream, newline included, with
    /// the keys in the documented order: schema, stream, seq, frame, pts, time, width, height,
    /// dropped, inference_ms, inferred, detections (class, label, score, box). Boxes have 2
    /// decimals, scores 5, pts 6, inference_ms 3; non-finite numbers are written as `null`. A box
    /// that does not have 4 numbers is padded with `null`s or cut to 4 (a bug upstream; the schema
    /// then rejects the line). Allocates only if `bytes` must grow. Any thread.
    public func appendJSONLine(seq: Int, to bytes: inout [UInt8]) {
        JSONText.appendRaw("{\"schema\": ", to: &bytes)
        JSONText.appendString(Self.schema, to: &bytes)
        JSONText.appendRaw(", \"stream\": ", to: &bytes)
        JSONText.appendString(stream, to: &bytes)
        JSONText.appendRaw(", \"seq\": ", to: &bytes)
        JSONText.appendInt(seq, to: &bytes)
        JSONText.appendRaw(", \"frame\": ", to: &bytes)
        JSONText.appendInt(frame, to: &bytes)
        JSONText.appendRaw(", \"pts\": ", to: &bytes)
        if let pts { JSONText.appendFixed(pts, decimals: 6, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
        JSONText.appendRaw(", \"time\": \"", to: &bytes)
        WallClock.appendISO8601(nanoseconds: timeNanoseconds, to: &bytes)
        JSONText.appendRaw("\", \"width\": ", to: &bytes)
        JSONText.appendInt(width, to: &bytes)
        JSONText.appendRaw(", \"height\": ", to: &bytes)
        JSONText.appendInt(height, to: &bytes)
        JSONText.appendRaw(", \"dropped\": ", to: &bytes)
        JSONText.appendInt(dropped, to: &bytes)
        JSONText.appendRaw(", \"inference_ms\": ", to: &bytes)
        if inferred, let ms = inferenceMilliseconds {
            JSONText.appendFixed(ms, decimals: 3, to: &bytes)
        } else {
            JSONText.appendNull(to: &bytes)
        }
        JSONText.appendRaw(inferred ? ", \"inferred\": true" : ", \"inferred\": false", to: &bytes)
        JSONText.appendRaw(", \"detections\": [", to: &bytes)
        Self.appendDetectionObjects(detections, tracks: tracks, to: &bytes)
        JSONText.appendRaw("]}\n", to: &bytes)
    }

    /// Appends the objects of a `detections` array, comma-separated, without the brackets:
    /// `{"class": i, "label": "…", "score": 0.91234, "box": [x1, y1, x2, y2]}`, and with `tracks`
    /// (frame records) `"track_id": n|null, "origin": "detector"|"tracker", "stationary": bool,
    /// "track_box": [x1, y1, x2, y2]|null` after the box. Shared by the frame records (`tracks`
    /// given) and `netnet detect` (nil). Any thread.
    public static func appendDetectionObjects(_ detections: [Detection], tracks: [TrackTag]? = nil, to bytes: inout [UInt8]) {
        for (i, detection) in detections.enumerated() {
            if i > 0 { JSONText.appendRaw(", ", to: &bytes) }
            JSONText.appendRaw("{\"class\": ", to: &bytes)
            JSONText.appendInt(detection.classIndex, to: &bytes)
            JSONText.appendRaw(", \"label\": ", to: &bytes)
            JSONText.appendString(detection.label, to: &bytes)
            JSONText.appendRaw(", \"score\": ", to: &bytes)
            JSONText.appendFixed(Double(detection.score), decimals: 5, to: &bytes)
            JSONText.appendRaw(", \"box\": ", to: &bytes)
            appendBox(to: &bytes) { k in k < detection.box.count ? detection.box[k] : nil }
            if let tracks {
                let tag = i < tracks.count ? tracks[i] : .untracked
                JSONText.appendRaw(", \"track_id\": ", to: &bytes)
                if let id = tag.trackID { JSONText.appendInt(id, to: &bytes) } else { JSONText.appendNull(to: &bytes) }
                JSONText.appendRaw(tag.origin == .detector ? ", \"origin\": \"detector\"" : ", \"origin\": \"tracker\"", to: &bytes)
                JSONText.appendRaw(tag.stationary ? ", \"stationary\": true" : ", \"stationary\": false", to: &bytes)
                JSONText.appendRaw(", \"track_box\": ", to: &bytes)
                if let box = tag.estimate {
                    appendBox(to: &bytes) { k in
                        switch k { case 0: box.x1; case 1: box.y1; case 2: box.x2; default: box.y2 }
                    }
                } else {
                    JSONText.appendNull(to: &bytes)
                }
            }
            JSONText.appendRaw("}", to: &bytes)
        }
    }

    /// Appends `[x1, y1, x2, y2]` with two decimals, `null` where `coordinate(k)` has none; one
    /// writer for `box` and `track_box`, so both keep one format.
    private static func appendBox(to bytes: inout [UInt8], _ coordinate: (Int) -> Float?) {
        JSONText.appendRaw("[", to: &bytes)
        for k in 0..<4 {
            if k > 0 { JSONText.appendRaw(", ", to: &bytes) }
            if let value = coordinate(k) {
                JSONText.appendFixed(Double(value), decimals: 2, to: &bytes)
            } else {
                JSONText.appendNull(to: &bytes)
            }
        }
        JSONText.appendRaw("]", to: &bytes)
    }

    /// The JSON line for this record as line `seq`, without the trailing newline. Allocates; for
    /// tests and one-off use. Any thread.
    public func jsonLine(seq: Int) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + 96 * detections.count)
        appendJSONLine(seq: seq, to: &bytes)
        bytes.removeLast()
        return String(decoding: bytes, as: UTF8.self)
    }
}
