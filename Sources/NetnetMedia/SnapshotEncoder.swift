import CFFmpeg

extension VideoFrame {
    /// Makes this frame a second reference to `other`'s picture (av_frame_ref: no pixel copy, the
    /// buffers are reference-counted and never written while referenced) with its metadata; this
    /// frame's previous content is released. Throws MediaError if FFmpeg cannot allocate the
    /// reference. Owner thread of this frame; `other` must not be changed by another thread meanwhile.
    public func reference(_ other: VideoFrame) throws {
        guard other !== self else { return }
        av_frame_unref(frame.pointer)
        guard !other.isEmpty else { return }
        try check(av_frame_ref(frame.pointer, other.frame.pointer), "snapshot", "cannot reference the frame")
        index = other.index
        pts = other.pts
        timeBaseNum = other.timeBaseNum
        timeBaseDen = other.timeBaseDen
        streamStart = other.streamStart
    }
}

/// Encodes decoded frames as JPEG images in memory, with box outlines drawn in their class
/// colours (labels are not drawn): for `/api/streams/{id}/snapshot.jpg`. Owns its converter and
/// reuses it while the frame size and format stay the same; the encoder is opened per picture.
/// One thread at a time.
public final class SnapshotEncoder {
    private var converter: FrameConverter?

    /// An encoder; nothing is allocated until the first picture. Any thread.
    public init() {}

    /// The JPEG bytes of `frame` (full resolution, full-range 4:2:0, qscale `quality`: 1 best … 31
    /// worst) with `boxes` (in the frame's pixels) outlined. `frame` is not modified. Throws
    /// MediaError for an empty frame or an encoder failure. Owner thread.
    public func jpeg(_ frame: VideoFrame, boxes: [DrawnBox], quality: Int = 4) throws -> [UInt8] {
        guard !frame.isEmpty, frame.width > 1, frame.height > 1 else {
            throw MediaError("snapshot: no picture to encode", code: AVError.einval)
        }
        if converter == nil {
            converter = try FrameConverter(outputFormat: AV_PIX_FMT_YUV420P, flags: SWS_BILINEAR, outputFullRange: true,
                                           accurateChroma: false)
        }
        let converter = converter!
        try converter.convert(frame.frame, subject: "snapshot")
        let picture = converter.output
        let width = Int(picture.width), height = Int(picture.height)
        if !boxes.isEmpty {
            let thickness = max(2, 2 * Int((Double(height) / 540).rounded()))
            BoxPainter(thickness: thickness, colorSpace: AVCOL_SPC_BT470BG, fullRange: true).paint(boxes, on: picture)
        }
        let q = Int32(min(max(quality, 1), 31))
        picture.pointer.pointee.pts = 0
        picture.pointer.pointee.quality = q * FF_QP2LAMBDA
        picture.pointer.pointee.color_range = AVCOL_RANGE_JPEG
        let encoder = try ImageEncoderContext(codecID: AV_CODEC_ID_MJPEG, width: Int32(width), height: Int32(height),
                                              pixelFormat: AV_PIX_FMT_YUV420P, jpegQuality: q, subject: "snapshot")
        let packet = try Packet()
        var bytes: [UInt8] = []
        try encoder.encode(picture, packet: packet) { data in bytes.append(contentsOf: data) }
        return bytes
    }
}
