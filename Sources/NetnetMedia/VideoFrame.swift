import CFFmpeg

// Why `@unchecked Sendable` is sound for VideoFrame and AudioPacket
// ------------------------------------------------------------------
// Each owns one FFmpeg struct (AVFrame / AVPacket) and mutates it without locks, so two threads
// must never use the same object at the same time. The pipeline guarantees that by construction:
// an object has exactly one owner at a time (the reader, inference or writer thread), and it changes
// hands only through a queue that synchronises (a lock or semaphore around the ring buffer's
// indices), which orders every write by the giving thread before every read by the receiving one.
// The pixel/payload buffers they reference are FFmpeg reference-counted buffers (AVBufferRef, with
// atomic reference counts), so a buffer still referenced by a decoder on the reader thread while the
// frame is read on another is fine: those buffers are never written while a frame references them
// (decoders hand out finished pictures; the writer draws on its own copy). Sendable here means
// "may be handed over", not "may be shared".

/// A decoded video frame (owns an AVFrame), reused across the pipeline.
///
/// One thread at a time; hand it over between threads through a queue that synchronises. `move(to:)`
/// and `reset()` never copy pixels or allocate (the AVFrame struct itself is allocated once, in init).
public final class VideoFrame: @unchecked Sendable {
    let frame: Frame
    /// Source stream time base of `pts` (num/den).
    var timeBaseNum: Int32 = 0
    var timeBaseDen: Int32 = 1
    /// Timestamp of the video stream's start in the same time base (subtracted in `ptsSeconds`).
    var streamStart: Int64 = 0

    /// An empty frame (allocates the AVFrame struct once; crashes only if malloc fails). Any thread.
    public init() {
        do { frame = try Frame() } catch { fatalError("VideoFrame: \(error)") }
    }

    /// Width in pixels (0 when empty). Owner thread.
    public var width: Int { Int(frame.width) }

    /// Height in pixels (0 when empty). Owner thread.
    public var height: Int { Int(frame.height) }

    /// 0-based index of this frame among the frames its source returned (skipped corrupt frames
    /// are not counted). Owner thread.
    public internal(set) var index: Int = 0

    /// Presentation timestamp in the source video stream's time base (the decoder's best-effort
    /// timestamp), nil when the source gave none. Owner thread.
    public internal(set) var pts: Int64?

    /// Seconds since the video stream's first timestamp (pts minus the stream's start time, times the
    /// time base): frame k of a constant-rate source is at ≈ k / rate. Nil without a pts. Owner thread.
    public var ptsSeconds: Double? {
        guard let pts, timeBaseDen != 0 else { return nil }
        return Double(pts - streamStart) * Double(timeBaseNum) / Double(timeBaseDen)
    }

    /// True when the frame holds no picture (new, reset, or moved from). Owner thread.
    public var isEmpty: Bool {
        frame.pointer.pointee.buf.0 == nil && frame.plane(0).data == nil
    }

    /// Moves the picture and its metadata into `other` (whose previous content is released) and leaves
    /// this frame empty: no pixel copy, no allocation (av_frame_move_ref). Owner thread of both.
    public func move(to other: VideoFrame) {
        guard other !== self else { return }
        av_frame_unref(other.frame.pointer)
        av_frame_move_ref(other.frame.pointer, frame.pointer)
        other.index = index
        other.pts = pts
        other.timeBaseNum = timeBaseNum
        other.timeBaseDen = timeBaseDen
        other.streamStart = streamStart
        clearMetadata()
    }

    /// Releases the picture (drops its buffer references) and clears the metadata; the object stays
    /// reusable. Owner thread.
    public func reset() {
        frame.unref()
        clearMetadata()
    }

    private func clearMetadata() {
        index = 0
        pts = nil
    }
}

/// A compressed audio packet from the source (owns an AVPacket), reused.
///
/// Same threading rule as VideoFrame: one thread at a time, handed over through a synchronising
/// queue. `move(to:)` never copies the payload or allocates (av_packet_move_ref).
public final class AudioPacket: @unchecked Sendable {
    let packet: Packet
    /// Source audio stream time base of the packet's timestamps.
    var timeBaseNum: Int32 = 0
    var timeBaseDen: Int32 = 1

    /// An empty packet (allocates the AVPacket struct once; crashes only if malloc fails). Any thread.
    public init() {
        do { packet = try Packet() } catch { fatalError("AudioPacket: \(error)") }
    }

    /// Moves the payload and timestamps into `other` (whose previous content is released) and leaves
    /// this packet empty: no copy, no allocation. Owner thread of both.
    public func move(to other: AudioPacket) {
        guard other !== self else { return }
        av_packet_unref(other.packet.pointer)
        av_packet_move_ref(other.packet.pointer, packet.pointer)
        other.timeBaseNum = timeBaseNum
        other.timeBaseDen = timeBaseDen
    }

    /// True when the packet holds no payload. Owner thread.
    public var isEmpty: Bool { packet.pointer.pointee.size == 0 && packet.pointer.pointee.buf == nil }

    /// Presentation time in seconds in the source's clock (pts × time base), nil without a pts. Owner thread.
    public var ptsSeconds: Double? {
        let pts = packet.pointer.pointee.pts
        guard pts != netnet_nopts_value(), timeBaseDen != 0 else { return nil }
        return Double(pts) * Double(timeBaseNum) / Double(timeBaseDen)
    }

    /// Releases the payload; the object stays reusable. Owner thread.
    public func reset() {
        packet.unref()
    }
}
