import Foundation
import NetnetMedia
import NetnetPipeline
import NetnetScene

/// How the live view's pictures are made (`live_fps`, `live_width` in `[global]`,
/// docs/configuration.md). Value type; any thread.
public struct LiveSettings: Sendable, Equatable {
    /// Most pictures a second per stream (0.2…30; default 5).
    public var fps: Double
    /// Picture width in pixels; wider frames are scaled down to it, narrower ones sent as they are
    /// (64…7680; default 640).
    public var width: Int

    /// Settings; the defaults are the configuration's. Pure.
    public init(fps: Double = 5, width: Int = 640) {
        self.fps = fps
        self.width = width
    }
}

/// A stream's live-view figures for `/metrics`. Value type.
public struct LiveFigure: Sendable, Equatable {
    /// The stream id.
    public var stream: String
    /// Viewers watching now.
    public var viewers: Int
    /// Pictures encoded (one per tick with a new frame, whatever the number of viewers).
    public var encoded: UInt64
    /// Pictures a viewer did not get because it had not taken the previous one yet.
    public var skipped: UInt64
}

/// One stream's live picture, shared by all its viewers: while at least one watches, a thread of
/// its own (never the inference thread, never Swift's cooperative pool) wakes `fps` times a second,
/// asks `encode` for a picture of the newest frame (nil: no new frame since the last one) and
/// offers that one picture to every viewer. A viewer's `offer` answers false when the picture
/// replaced one it had not taken yet: a slow viewer gets fewer pictures, each skip is counted, and
/// nothing queues. Without viewers nothing is encoded and no thread runs.
/// Thread-safe: `watch`, `stopWatching` and `figure` from any thread.
public final class LiveChannel: @unchecked Sendable {
    /// The stream id (for the thread's name and the figures).
    public let stream: String
    private let interval: Double
    private let encode: @Sendable () -> [UInt8]?
    private let condition = NSCondition()
    private var viewers: [Int: @Sendable ([UInt8]) -> Bool] = [:]
    private var nextViewer = 0
    private var threadRunning = false
    private var latest: [UInt8]?
    private var encoded: UInt64 = 0
    private var skipped: UInt64 = 0

    /// A channel for `stream` making at most `fps` pictures a second with `encode`, which runs on
    /// the channel's thread only (one call at a time) and returns nil when there is no new frame.
    /// Starts nothing. Any thread.
    public init(stream: String, fps: Double, encode: @escaping @Sendable () -> [UInt8]?) {
        self.stream = stream
        interval = 1 / max(fps, 0.01)
        self.encode = encode
    }

    /// Adds a viewer; `offer` is called on the channel's thread with each picture (first with the
    /// last one made, if any, so a new viewer does not wait for the next frame) and must not block:
    /// it returns false when it had to drop a picture it held. Starts the thread if it was not
    /// running. Returns the viewer's key for `stopWatching`. Any thread.
    public func watch(offer: @escaping @Sendable ([UInt8]) -> Bool) -> Int {
        condition.lock()
        nextViewer += 1
        let key = nextViewer
        viewers[key] = offer
        let last = latest
        let start = !threadRunning
        threadRunning = true
        condition.unlock()
        if let last { deliver(last, to: [offer]) }
        if start {
            let thread = Thread { [self] in run() }
            thread.name = "netnet-live"
            thread.start()
        }
        return key
    }

    /// Removes a viewer; the last one out lets the thread end (within one tick). Any thread.
    public func stopWatching(_ key: Int) {
        condition.lock()
        viewers[key] = nil
        if viewers.isEmpty { latest = nil }
        condition.broadcast()
        condition.unlock()
    }

    /// Viewers now, pictures encoded and skipped so far. Any thread.
    public func figure() -> LiveFigure {
        condition.lock(); defer { condition.unlock() }
        return LiveFigure(stream: stream, viewers: viewers.count, encoded: encoded, skipped: skipped)
    }

    /// The channel's thread: one encode per tick, offered to every viewer; ends when none is left.
    private func run() {
        var due = Date()
        while true {
            condition.lock()
            while !viewers.isEmpty && Date() < due { _ = condition.wait(until: due) }
            if viewers.isEmpty {
                threadRunning = false
                condition.unlock()
                return
            }
            condition.unlock()
            // Paced from the previous tick, so an encode that took long does not pile ticks up.
            due = max(due.addingTimeInterval(interval), Date())
            guard let picture = encode() else { continue }
            condition.lock()
            encoded += 1
            let watching = viewers.isEmpty ? nil : Array(viewers.values)
            if watching != nil { latest = picture }
            condition.unlock()
            if let watching { deliver(picture, to: watching) }
        }
    }

    private func deliver(_ picture: [UInt8], to offers: [@Sendable ([UInt8]) -> Bool]) {
        var missed: UInt64 = 0
        for offer in offers where !offer(picture) { missed += 1 }
        guard missed > 0 else { return }
        condition.lock(); skipped += missed; condition.unlock()
    }
}

/// The daemon's live pictures (`GET /api/streams/{id}/live.mjpeg`): one `LiveChannel` per stream
/// that has been watched, each encoding the stream's newest inferred frame drawn as the snapshot is
/// (boxes with track ids, the scene's zones and lines with their counts), scaled to `live_width`,
/// at most `live_fps` times a second, only while someone watches. Reads the supervisor's snapshot
/// frame (a reference, no copy) under the mailbox's snapshot lock, never the scheduler's, so the
/// inference thread is never held up. Thread-safe; any thread.
public final class LiveFrames: @unchecked Sendable {
    private let supervisor: Supervisor
    private let settings: LiveSettings
    private let log: DaemonLog
    private let lock = NSLock()
    private var channels: [String: LiveChannel] = [:]

    /// Live pictures of `supervisor`'s streams with `settings`; nothing runs until a viewer comes. Any thread.
    public init(supervisor: Supervisor, settings: LiveSettings, log: DaemonLog) {
        self.supervisor = supervisor
        self.settings = settings
        self.log = log
    }

    /// Adds a viewer of stream `id` (see `LiveChannel.watch`); nil when no such stream runs.
    /// Returns what `stopWatching` needs. Any thread.
    public func watch(stream id: String, offer: @escaping @Sendable ([UInt8]) -> Bool) -> (channel: LiveChannel, key: Int)? {
        guard supervisor.streamConfigs().contains(where: { $0.id == id }) else { return nil }
        let channel = lock.withLock {
            if let channel = channels[id] { return channel }
            let channel = LiveChannel(stream: id, fps: settings.fps, encode: Self.encoder(stream: id, supervisor: supervisor,
                                                                                           width: settings.width, log: log))
            channels[id] = channel
            return channel
        }
        return (channel, channel.watch(offer: offer))
    }

    /// The figures of the running streams, in their order (zeros for a stream nobody watched). Any thread.
    public func figures() -> [LiveFigure] {
        let ids = supervisor.streamConfigs().map(\.id)
        let known = lock.withLock { channels }
        return ids.map { known[$0]?.figure() ?? LiveFigure(stream: $0, viewers: 0, encoded: 0, skipped: 0) }
    }

    /// The encode step of one stream's channel: the newest inferred frame, if it is newer than the
    /// last one encoded, drawn and encoded as JPEG. Its state (encoder, scene drawing, which frame
    /// was last) belongs to the channel's thread.
    private static func encoder(stream id: String, supervisor: Supervisor, width: Int, log: DaemonLog) -> @Sendable () -> [UInt8]? {
        let state = LiveEncoderState()
        return {
            guard let mailbox = supervisor.mailbox(forStream: id), let picture = mailbox.latestPicture() else { return nil }
            let identity = ObjectIdentifier(mailbox)
            guard state.last?.mailbox != identity || state.last?.generation != picture.generation else { return nil }
            state.last = (identity, picture.generation)
            let overlay = picture.scene.map { scene -> OverlayDrawing in
                let width = picture.frame.width, height = picture.frame.height
                if let made = state.drawing, made.width == width, made.height == height, made.mailbox == identity {} else {
                    state.drawing = (SceneDrawing(scene: scene, width: width, height: height), width, height, identity)
                }
                return state.drawing!.drawing.overlay(counts: picture.counts)
            }
            do {
                return try state.encoder.jpeg(picture.frame, boxes: picture.boxes, overlay: overlay, quality: 6, width: width)
            } catch {
                if !state.warned { log.warning("stream \(id): live view: \(error)") }
                state.warned = true
                return nil
            }
        }
    }
}

/// What one channel's encode step keeps between ticks; used by the channel's thread only.
private final class LiveEncoderState: @unchecked Sendable {
    let encoder = SnapshotEncoder()
    var last: (mailbox: ObjectIdentifier, generation: UInt64)?
    var drawing: (drawing: SceneDrawing, width: Int, height: Int, mailbox: ObjectIdentifier)?
    var warned = false
}

/// A stream's newest inferred frame with what the snapshot draws on it. The frame is a reference
/// of the mailbox's (no pixel copy), owned by whoever asked for it.
struct LatestPicture {
    let frame: VideoFrame
    let boxes: [DrawnBox]
    /// The scene the stream runs with (nil when tracking is off or it has none).
    let scene: Scene?
    let counts: SceneCounts?
    /// Which inferred frame this is (+1 per frame of the mailbox).
    let generation: UInt64
}

extension Mailbox {
    /// The newest inferred frame and its boxes, track ids and counts, taken under `snapshotLock`
    /// (a reference, no pixel copy); nil before the first. Any thread.
    func latestPicture() -> LatestPicture? {
        let frame = VideoFrame()
        snapshotLock.lock()
        let referenced = (try? frame.reference(snapshotFrame)) != nil
        let detections = snapshotDetections
        let tracks = snapshotTracks
        let counts = snapshotCounts
        let generation = snapshotGeneration
        snapshotLock.unlock()
        guard referenced, !frame.isEmpty else { return nil }
        let boxes = detections.indices.map { DrawnBox(detections[$0], track: $0 < tracks.count ? tracks[$0] : .untracked, withScore: false) }
        return LatestPicture(frame: frame, boxes: boxes, scene: config.track ? config.scene : nil, counts: counts, generation: generation)
    }
}
