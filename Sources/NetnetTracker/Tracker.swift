/// One detection handed to the tracker. Value type.
public struct TrackerInput: Sendable, Equatable {
    /// The box, in the frame's pixels.
    public var box: TrackBox
    /// The detector's score.
    public var score: Float
    /// The class index (tracks never change class).
    public var classIndex: Int
    /// A detection. Pure.
    public init(box: TrackBox, score: Float, classIndex: Int) {
        self.box = box; self.score = score; self.classIndex = classIndex
    }
}

/// Where a tracked box comes from. Value type.
public enum TrackOrigin: String, Sendable, Equatable {
    /// This frame's detection (the box is the detector's).
    case detector
    /// The tracker's prediction on a frame without inference (`every = N`).
    case tracker
}

/// One box the tracker reports for a frame. Value type.
public struct TrackedBox: Sendable, Equatable {
    /// The track's id once confirmed; nil before (and the id is never reused).
    public var trackID: Int?
    /// The box: the detector's, or the prediction (`origin == .tracker`).
    public var box: TrackBox
    /// The detection's score (a prediction carries the track's last one).
    public var score: Float
    /// The class index.
    public var classIndex: Int
    /// Detector or prediction.
    public var origin: TrackOrigin
    /// The track has not moved for `TrackerSettings.stationarySeconds`.
    public var stationary: Bool
    /// For a detector box: its index in the frame's input; nil for a prediction.
    public var inputIndex: Int?
    /// The tracker's own box for the object on this frame: for a confirmed track's detection, its
    /// Kalman state after this detection (the detection smoothed by the track's past); for a
    /// prediction, `box`; nil for a detection no confirmed track took.
    public var estimate: TrackBox?
}

/// A confirmed track's life, for its `object_end` event. Value type.
public struct TrackSummary: Sendable, Equatable {
    /// The track id.
    public var trackID: Int
    /// The class index.
    public var classIndex: Int
    /// First and last frame it was detected in (frame indices as given to `update`).
    public var firstFrame: Int, lastFrame: Int
    /// Their timestamps (seconds, as given to `update`).
    public var firstTime: Double, lastTime: Double
    /// Their wall-clock stamps (as given to `update`, e.g. ns since the epoch when each frame was read).
    public var firstStamp: Int64, lastStamp: Int64
    /// The last detection's score and box.
    public var lastScore: Float, lastBox: TrackBox
    /// The best detection's score, frame and box.
    public var bestScore: Float, bestFrame: Int
    /// The best detection's box.
    public var bestBox: TrackBox
    /// Seconds from the first to the last detection.
    public var duration: Double { lastTime - firstTime }
}

/// What a frame's update started and ended. Value type.
public enum TrackEvent: Sendable, Equatable {
    /// A track was confirmed: its id, class, and the detection that confirmed it.
    case started(trackID: Int, classIndex: Int, box: TrackBox, score: Float)
    /// A confirmed track ended: lost for longer than `maxLostSeconds`, or the stream stopped (`finish`).
    case ended(TrackSummary)
}

/// How the tracker associates and keeps tracks. Defaults tuned for people at 5–30 fps; every
/// time is in seconds, turned into frames with the stream's rate. Value type.
public struct TrackerSettings: Sendable, Equatable {
    /// Detections at or above this score are matched first and may start tracks.
    public var highScore: Float = 0.4
    /// Detections between this and `highScore` only extend tracks seen in the previous frame
    /// (ByteTrack's second stage: an occluded person's weaker box keeps the track).
    public var lowScore: Float = 0.1
    /// A new track needs a detection at least this good.
    public var newTrackScore: Float = 0.4
    /// The least IoU for the first stage's matches (tracks with high detections).
    public var matchIoU: Float = 0.2
    /// The least IoU for the second stage's matches (low detections).
    public var lowMatchIoU: Float = 0.3
    /// The least IoU for an unconfirmed track to take a detection.
    public var tentativeMatchIoU: Float = 0.3
    /// How long a tentative track must be detected in a row, first detection to last, before it
    /// is confirmed (gets an id): 0.2 s is 3 frames at 10 fps, 6 at 25. In time, not frames, so
    /// a faster camera does not confirm a flicker sooner.
    public var confirmSeconds: Double = 0.2
    /// Consecutive detected frames before a track is confirmed, instead of `confirmSeconds`
    /// (nil: from `confirmSeconds` and the frame rate); with inference on one frame in N, two
    /// detections spanning as many frames do.
    public var confirmFrames: Int?
    /// How long a confirmed track survives without a detection.
    public var maxLostSeconds: Double = 2
    /// A track that moved less than `stationaryMotion` × its height over this long is stationary.
    public var stationarySeconds: Double = 10
    /// See `stationarySeconds`.
    public var stationaryMotion: Float = 0.25
    /// The defaults above. Pure.
    public init() {}
}

/// Tracking by detection for one stream: a constant-velocity `KalmanBox` per track, a two-stage
/// association in the manner of ByteTrack (confident detections against every track, then weak
/// ones against the tracks seen last frame, then the tentative tracks), optimal assignment on
/// 1 − IoU (`Assignment`), class by class. Tracks are confirmed after `framesToConfirm` detected
/// frames and only then get an id, counted from 1 per tracker and never reused; a lost track
/// coasts on its prediction for `maxLostSeconds`. `update` is called once per frame in frame
/// order, with the frame's detections or, on a frame without inference, with nil (the tracks
/// are predicted and reported with `origin == .tracker`). One thread at a time.
public struct Tracker: Sendable {
    /// The settings it runs with.
    public let settings: TrackerSettings
    /// Frames a second of the stream (for the seconds in the settings).
    public let frameRate: Double
    /// Detected frames in a row that confirm a track: `confirmFrames`, else enough frames for the
    /// first and last to lie `confirmSeconds` apart.
    public let framesToConfirm: Int
    private var tracks: [Track] = []
    /// The id the next confirmed track gets.
    public private(set) var nextID: Int
    private var lastFrame: Int?
    private var lastInferredFrame: Int?

    private struct Track: Sendable {
        var filter: KalmanBox
        var classIndex: Int
        var id: Int?
        var hits = 1
        var lostFrames = 0
        var seenLastFrame = true
        var score: Float
        var firstFrame: Int, lastFrame: Int
        var firstTime: Double, lastTime: Double
        var firstStamp: Int64, lastStamp: Int64
        var lastBox: TrackBox
        var bestScore: Float, bestFrame: Int
        var bestBox: TrackBox
        /// Where it was when it last moved (centre), and since which time it has stayed near.
        var anchorX: Float, anchorY: Float
        var stillSince: Double
        var stationary = false
    }

    /// A tracker for a stream at `frameRate` frames a second (≤ 0 or not finite: 10) whose first
    /// track gets id `firstID` (a stream's new tracker after a reconnect goes on from the old
    /// one's `nextID`). Pure.
    public init(settings: TrackerSettings = TrackerSettings(), frameRate: Double, firstID: Int = 1) {
        self.settings = settings
        self.frameRate = frameRate > 0 && frameRate.isFinite ? frameRate : 10
        // The 1e-9 keeps a whole number of frame steps whole (0.2 s × 10 fps is 2.000…04); a
        // stream claiming thousands of frames a second still confirms within confirm_frames' 100.
        let steps = (settings.confirmSeconds * self.frameRate - 1e-9).rounded(.up)
        framesToConfirm = settings.confirmFrames ?? Int(min(max(steps, 0), 99)) + 1
        nextID = max(1, firstID)
    }

    /// Confirmed and tentative tracks alive now.
    public var trackCount: Int { tracks.count }

    private var maxLostFrames: Int { max(1, Int((settings.maxLostSeconds * frameRate).rounded())) }

    /// Advances to `frame` (at `time` seconds; `stamp` is kept as is for the tracks' first and last
    /// detection, e.g. the frame's wall-clock read time) with its `detections` (nil: no inference
    /// on this frame) and returns the boxes to report, then the events it caused, in that order.
    public mutating func update(frame: Int, time: Double, stamp: Int64 = 0,
                                detections: [TrackerInput]?) -> (boxes: [TrackedBox], events: [TrackEvent]) {
        let steps = lastFrame.map { max(1, frame - $0) } ?? 1
        lastFrame = frame
        for i in tracks.indices {
            for _ in 0..<min(steps, 8) { tracks[i].filter.predict() }
        }
        guard let detections else { return (predictedBoxes(), []) }
        // A track's absence is counted in frames since the last inference, so `every = N`
        // keeps the same `maxLostSeconds`.
        let sinceInference = lastInferredFrame.map { max(1, frame - $0) } ?? 1
        lastInferredFrame = frame

        var events: [TrackEvent] = []
        var matchedTrack = [Int?](repeating: nil, count: detections.count)   // detection → track
        var trackMatched = [Bool](repeating: false, count: tracks.count)
        let high = detections.indices.filter { detections[$0].score >= settings.highScore }
        let low = detections.indices.filter { detections[$0].score < settings.highScore && detections[$0].score >= settings.lowScore }
        let confirmedOrLost = tracks.indices.filter { tracks[$0].id != nil }
        let tentative = tracks.indices.filter { tracks[$0].id == nil }
        // Stage 1: confident detections against the established tracks.
        // With inference on one frame in N a prediction runs N frames ahead and misses by more:
        // the IoU gates widen with the square root of the gap (the growth of a random walk's spread).
        let widen = Float(sinceInference).squareRoot()
        associate(confirmedOrLost, high, detections, minIoU: settings.matchIoU / widen, &matchedTrack, &trackMatched)
        // Stage 2: weak detections against the established tracks seen last frame and still unmatched.
        let recent = confirmedOrLost.filter { !trackMatched[$0] && tracks[$0].seenLastFrame }
        associate(recent, low, detections, minIoU: settings.lowMatchIoU / widen, &matchedTrack, &trackMatched)
        // Stage 3: the tentative tracks take what confident detections are left.
        let leftHigh = high.filter { matchedTrack[$0] == nil }
        associate(tentative, leftHigh, detections, minIoU: settings.tentativeMatchIoU / widen, &matchedTrack, &trackMatched)

        for (d, t) in matchedTrack.enumerated() {
            guard let t else { continue }
            let detection = detections[d]
            tracks[t].filter.update(detection.box)
            tracks[t].hits += 1
            tracks[t].lostFrames = 0
            tracks[t].score = detection.score
            tracks[t].lastFrame = frame
            tracks[t].lastTime = time
            tracks[t].lastStamp = stamp
            tracks[t].lastBox = detection.box
            if detection.score > tracks[t].bestScore {
                tracks[t].bestScore = detection.score
                tracks[t].bestFrame = frame
                tracks[t].bestBox = detection.box
            }
            updateStationary(&tracks[t], box: detection.box, time: time)
            if tracks[t].id == nil && isConfirmed(tracks[t], at: frame) {
                tracks[t].id = nextID
                nextID += 1
                events.append(.started(trackID: tracks[t].id!, classIndex: tracks[t].classIndex, box: detection.box, score: detection.score))
            }
        }
        var lostTentative: [Int] = []
        for t in tracks.indices where !trackMatched[t] {
            tracks[t].lostFrames += sinceInference
            if tracks[t].id == nil && tracks[t].hits < framesToConfirm { lostTentative.append(t) }
        }
        for t in tracks.indices { tracks[t].seenLastFrame = trackMatched[t] }
        // A tentative track missed once is dropped (no id was given, no event).
        for t in lostTentative.reversed() { tracks.remove(at: t); trackMatched.remove(at: t); shift(&matchedTrack, removed: t) }
        // New tentative tracks from confident detections nobody took.
        for d in high where matchedTrack[d] == nil && detections[d].score >= settings.newTrackScore {
            let detection = detections[d]
            tracks.append(Track(filter: KalmanBox(box: detection.box), classIndex: detection.classIndex, score: detection.score,
                                firstFrame: frame, lastFrame: frame, firstTime: time, lastTime: time,
                                firstStamp: stamp, lastStamp: stamp, lastBox: detection.box, bestScore: detection.score, bestFrame: frame, bestBox: detection.box,
                                anchorX: detection.box.centerX, anchorY: detection.box.centerY, stillSince: time))
            trackMatched.append(true)
            matchedTrack[d] = tracks.count - 1
            if framesToConfirm <= 1 {
                tracks[tracks.count - 1].id = nextID
                nextID += 1
                events.append(.started(trackID: nextID - 1, classIndex: detection.classIndex, box: detection.box, score: detection.score))
            }
        }
        var boxes: [TrackedBox] = []
        for (d, t) in matchedTrack.enumerated() {
            let detection = detections[d]
            let track = t.map { tracks[$0] }
            boxes.append(TrackedBox(trackID: track?.id, box: detection.box, score: detection.score, classIndex: detection.classIndex,
                                    origin: .detector, stationary: track?.stationary ?? false, inputIndex: d,
                                    estimate: track?.id != nil ? track?.filter.box : nil))
        }
        events += expire()
        return (boxes, events)
    }

    /// A tentative track is confirmed by `framesToConfirm` detections in a row, or, when inference
    /// skips frames (`every = N`), by two that span as many frames: the same evidence in time, so
    /// a track is not kept waiting N times longer for its id.
    private func isConfirmed(_ track: Track, at frame: Int) -> Bool {
        track.hits >= framesToConfirm || (track.hits >= 2 && frame - track.firstFrame >= framesToConfirm - 1)
    }

    /// Ends every confirmed track (the stream stopped) and returns their `ended` events.
    public mutating func finish() -> [TrackEvent] {
        let ended = tracks.compactMap { Self.summary(of: $0) }.map(TrackEvent.ended)
        tracks.removeAll()
        return ended
    }

    // MARK: parts

    private func predictedBoxes() -> [TrackedBox] {
        tracks.filter { $0.id != nil && $0.lostFrames == 0 }.map {
            TrackedBox(trackID: $0.id, box: $0.filter.box, score: $0.score, classIndex: $0.classIndex, origin: .tracker,
                       stationary: $0.stationary, inputIndex: nil, estimate: $0.filter.box)
        }
    }

    /// Ends the tracks lost for longer than `maxLostSeconds`.
    private mutating func expire() -> [TrackEvent] {
        var events: [TrackEvent] = []
        let limit = maxLostFrames
        var kept: [Track] = []
        kept.reserveCapacity(tracks.count)
        for track in tracks {
            if track.lostFrames <= limit { kept.append(track); continue }
            if let summary = Self.summary(of: track) { events.append(.ended(summary)) }
        }
        tracks = kept
        return events
    }

    private static func summary(of track: Track) -> TrackSummary? {
        guard let id = track.id else { return nil }
        return TrackSummary(trackID: id, classIndex: track.classIndex, firstFrame: track.firstFrame, lastFrame: track.lastFrame,
                            firstTime: track.firstTime, lastTime: track.lastTime,
                            firstStamp: track.firstStamp, lastStamp: track.lastStamp,
                            lastScore: track.score, lastBox: track.lastBox, bestScore: track.bestScore,
                            bestFrame: track.bestFrame, bestBox: track.bestBox)
    }

    private func updateStationary(_ track: inout Track, box: TrackBox, time: Double) {
        let limit = settings.stationaryMotion * max(box.height, 1)
        let dx = box.centerX - track.anchorX, dy = box.centerY - track.anchorY
        if dx * dx + dy * dy > limit * limit {
            track.anchorX = box.centerX
            track.anchorY = box.centerY
            track.stillSince = time
            track.stationary = false
        } else {
            track.stationary = time - track.stillSince >= settings.stationarySeconds
        }
    }

    /// Optimal 1 − IoU matching of `trackIndices` with `detectionIndices`, same class only, each
    /// pair needing IoU ≥ `minIoU` against the track's prediction.
    private func associate(_ trackIndices: [Int], _ detectionIndices: [Int], _ detections: [TrackerInput], minIoU: Float,
                           _ matchedTrack: inout [Int?], _ trackMatched: inout [Bool]) {
        let rows = trackIndices.filter { !trackMatched[$0] }
        let columns = detectionIndices.filter { matchedTrack[$0] == nil }
        guard !rows.isEmpty, !columns.isEmpty else { return }
        var costs = [Float](repeating: 2, count: rows.count * columns.count)
        for (r, t) in rows.enumerated() {
            let predicted = tracks[t].filter.box
            for (c, d) in columns.enumerated() where detections[d].classIndex == tracks[t].classIndex {
                costs[r * columns.count + c] = 1 - predicted.iou(detections[d].box)
            }
        }
        for pair in Assignment.solve(costs: costs, rows: rows.count, columns: columns.count, maxCost: 1 - minIoU) {
            matchedTrack[columns[pair.column]] = rows[pair.row]
            trackMatched[rows[pair.row]] = true
        }
    }

    /// After track `removed` left the array, the detection → track indices above it move down.
    private func shift(_ matchedTrack: inout [Int?], removed: Int) {
        for d in matchedTrack.indices {
            if let t = matchedTrack[d], t > removed { matchedTrack[d] = t - 1 }
        }
    }
}

/// A tracker setting given by name (`serve`'s `track_NAME = VALUE` keys, `annotate
/// --track-option NAME=VALUE`), with its unit and the range it must lie in. Value type.
public enum TrackerSettingKey: String, CaseIterable, Sendable {
    case highScore = "high_score"
    case lowScore = "low_score"
    case newTrackScore = "new_track_score"
    case matchIoU = "match_iou"
    case lowMatchIoU = "low_match_iou"
    case tentativeMatchIoU = "tentative_match_iou"
    case confirm = "confirm"
    case confirmFrames = "confirm_frames"
    case maxLost = "max_lost"
    case stationary = "stationary"
    case stationaryMotion = "stationary_motion"

    /// The values it accepts.
    public var range: ClosedRange<Double> {
        switch self {
        case .highScore, .lowScore, .newTrackScore, .matchIoU, .lowMatchIoU, .tentativeMatchIoU: 0...1
        case .confirmFrames: 1...100
        case .confirm: 0...10
        case .maxLost: 0...3600
        case .stationary: 0...86_400
        case .stationaryMotion: 0...10
        }
    }

    /// Whether it counts (frames) rather than measures.
    public var isInteger: Bool { self == .confirmFrames }
}

/// A tracker setting that could not be applied: the message names the key, the value and what is
/// allowed. Value type.
public struct TrackerSettingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// One line.
    public var description: String
}

extension TrackerSettings {
    /// The setting's current value (`confirm_frames`: 0 while unset). Pure.
    public func value(of key: TrackerSettingKey) -> Double {
        switch key {
        case .highScore: Double(highScore)
        case .lowScore: Double(lowScore)
        case .newTrackScore: Double(newTrackScore)
        case .matchIoU: Double(matchIoU)
        case .lowMatchIoU: Double(lowMatchIoU)
        case .tentativeMatchIoU: Double(tentativeMatchIoU)
        case .confirm: confirmSeconds
        case .confirmFrames: Double(confirmFrames ?? 0)
        case .maxLost: maxLostSeconds
        case .stationary: stationarySeconds
        case .stationaryMotion: Double(stationaryMotion)
        }
    }

    /// Sets `key` from its text `value` (a plain decimal number in the key's range; an integer for
    /// `confirm_frames`); throws a one-line `TrackerSettingError` otherwise. Pure.
    public mutating func set(_ key: TrackerSettingKey, from value: String) throws(TrackerSettingError) {
        // Decimal only: Double("0x10") would read hexadecimal, and "nan"/"inf" are not settings.
        let allowed = Set("0123456789.+-eE")
        guard !value.isEmpty, value.allSatisfy(allowed.contains), let number = Double(value), number.isFinite else {
            throw TrackerSettingError(description: "\(key.rawValue) must be a number (got '\(value)')")
        }
        guard key.range.contains(number), !key.isInteger || number == number.rounded() else {
            let bounds = "\(Self.format(key.range.lowerBound))-\(Self.format(key.range.upperBound))"
            throw TrackerSettingError(description: "\(key.rawValue) = \(value) is out of range \(bounds)\(key.isInteger ? " (a whole number)" : "")")
        }
        switch key {
        case .highScore: highScore = Float(number)
        case .lowScore: lowScore = Float(number)
        case .newTrackScore: newTrackScore = Float(number)
        case .matchIoU: matchIoU = Float(number)
        case .lowMatchIoU: lowMatchIoU = Float(number)
        case .tentativeMatchIoU: tentativeMatchIoU = Float(number)
        case .confirm: confirmSeconds = number
        case .confirmFrames: confirmFrames = Int(number)
        case .maxLost: maxLostSeconds = number
        case .stationary: stationarySeconds = number
        case .stationaryMotion: stationaryMotion = Float(number)
        }
    }

    /// Applies `NAME=VALUE` (annotate's `--track-option`); throws naming the unknown key or bad value. Pure.
    public mutating func apply(_ assignment: String) throws(TrackerSettingError) {
        let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let key = TrackerSettingKey(rawValue: parts[0]) else {
            throw TrackerSettingError(description: "'\(assignment)' is not NAME=VALUE with NAME one of "
                                      + TrackerSettingKey.allCases.map(\.rawValue).joined(separator: ", "))
        }
        try set(key, from: parts[1])
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
