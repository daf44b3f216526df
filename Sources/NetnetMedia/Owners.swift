import CFFmpeg

// One Swift object owns each FFmpeg pointer and frees it in deinit. The raw pointers stay
// internal and are only dereferenced inside methods of the owner, or inside a method that
// received the owner as an argument (Swift keeps arguments alive for the whole call), so an
// owner can never be released while its pointer is in use.

/// Owns one AVPacket (av_packet_alloc / av_packet_free). Not thread-safe: one thread at a time.
final class Packet {
    let pointer: UnsafeMutablePointer<AVPacket>

    init() throws {
        guard let p = av_packet_alloc() else { throw MediaError("av_packet_alloc: out of memory", code: AVError.enomem) }
        pointer = p
    }

    deinit {
        var p: UnsafeMutablePointer<AVPacket>? = pointer
        av_packet_free(&p)
    }

    /// Drops the payload reference (the packet struct itself is kept for reuse).
    func unref() { av_packet_unref(pointer) }

    var streamIndex: Int32 { pointer.pointee.stream_index }
}

@available(*, unavailable, message: "Packet owns an AVPacket; use it from one thread at a time")
extension Packet: Sendable {}

/// Owns one AVFrame (av_frame_alloc / av_frame_free) and whatever buffers it references.
/// Not thread-safe: one thread at a time.
final class Frame {
    let pointer: UnsafeMutablePointer<AVFrame>

    init() throws {
        guard let p = av_frame_alloc() else { throw MediaError("av_frame_alloc: out of memory", code: AVError.enomem) }
        pointer = p
    }

    deinit {
        var p: UnsafeMutablePointer<AVFrame>? = pointer
        av_frame_free(&p)
    }

    /// Drops the buffer references (the frame struct itself is kept for reuse).
    func unref() { av_frame_unref(pointer) }

    var width: Int32 { pointer.pointee.width }
    var height: Int32 { pointer.pointee.height }
    var pixelFormat: AVPixelFormat { AVPixelFormat(rawValue: pointer.pointee.format) }
    var colorRange: AVColorRange { pointer.pointee.color_range }
    var colorSpace: AVColorSpace { pointer.pointee.colorspace }
    /// The decoder flagged this frame as damaged (AV_FRAME_FLAG_CORRUPT or decode_error_flags).
    var isCorrupt: Bool { (pointer.pointee.flags & AV_FRAME_FLAG_CORRUPT) != 0 || pointer.pointee.decode_error_flags != 0 }

    /// Gives this frame fresh, aligned, zero-filled buffers for width×height in `format`
    /// (dropping whatever it referenced before).
    func allocate(width: Int32, height: Int32, format: AVPixelFormat, subject: @autoclosure () -> String) throws {
        av_frame_unref(pointer)
        pointer.pointee.width = width
        pointer.pointee.height = height
        pointer.pointee.format = format.rawValue
        try check(av_frame_get_buffer(pointer, 0), subject(), "cannot allocate a \(width)x\(height) picture")
        // Zero everything once, row padding included: swscale's SIMD code and the encoders read a
        // little past the visible width, and results must never depend on uninitialised memory.
        netnet_frame_zero(pointer)
    }

    /// Plane `i`'s data pointer and line size (bytes per row, may be padded). Valid while the frame
    /// keeps these buffers; use only while `self` is alive (i.e. inside a method holding it).
    func plane(_ i: Int) -> (data: UnsafeMutablePointer<UInt8>?, linesize: Int) {
        let data = netnet_frame_data(pointer)!
        let sizes = netnet_frame_linesize(pointer)!
        return (data[i], Int(sizes[i]))
    }
}

@available(*, unavailable, message: "Frame owns an AVFrame; use it from one thread at a time")
extension Frame: Sendable {}

/// Owns one AVCodecParameters (avcodec_parameters_alloc / avcodec_parameters_free), e.g. a copy of
/// a source stream's parameters that outlives the demuxer. Not thread-safe while being written;
/// read-only after `init(copying:)`.
final class CodecParameters {
    let pointer: UnsafeMutablePointer<AVCodecParameters>

    /// A deep copy of `source` (extradata included).
    init(copying source: UnsafePointer<AVCodecParameters>, subject: @autoclosure () -> String) throws {
        guard let p = avcodec_parameters_alloc() else {
            throw MediaError("\(subject()): avcodec_parameters_alloc: out of memory", code: AVError.enomem)
        }
        let copied = avcodec_parameters_copy(p, source)
        if copied < 0 {
            var owned: UnsafeMutablePointer<AVCodecParameters>? = p
            avcodec_parameters_free(&owned)
            throw MediaError.ffmpeg(copied, subject(), "cannot copy codec parameters")
        }
        pointer = p
    }

    deinit {
        var p: UnsafeMutablePointer<AVCodecParameters>? = pointer
        avcodec_parameters_free(&p)
    }

    var codecID: AVCodecID { pointer.pointee.codec_id }
    var codecName: String { String(cString: avcodec_get_name(pointer.pointee.codec_id)) }
    /// True when the parameters carry codec extradata (e.g. AAC's AudioSpecificConfig; ADTS AAC has none).
    var hasExtradata: Bool { pointer.pointee.extradata_size > 0 }
}

/// Owns one bitstream filter (AVBSFContext, av_bsf_free in deinit) opened for a stream's
/// parameters and time base. Not thread-safe: one thread at a time.
final class BitstreamFilter {
    private var context: UnsafeMutablePointer<AVBSFContext>?

    /// Opens the filter `name` (e.g. "aac_adtstoasc") for packets with `parameters` in `timeBase`.
    init(name: String, parameters: CodecParameters, timeBase: AVRational, subject: @autoclosure () -> String) throws {
        guard let filter = av_bsf_get_by_name(name) else {
            throw MediaError("\(subject()): no bitstream filter \(name) in this FFmpeg build", code: AVError.einval)
        }
        var ctx: UnsafeMutablePointer<AVBSFContext>? = nil
        try check(av_bsf_alloc(filter, &ctx), subject(), "bitstream filter \(name)")
        context = ctx
        try check(avcodec_parameters_copy(ctx!.pointee.par_in, parameters.pointer), subject(), "bitstream filter \(name)")
        ctx!.pointee.time_base_in = timeBase
        try check(av_bsf_init(ctx), subject(), "bitstream filter \(name)")
    }

    deinit { av_bsf_free(&context) }

    /// Hands `packet`'s reference to the filter (nil: end of stream); the packet is left blank.
    func send(_ packet: UnsafeMutablePointer<AVPacket>?, subject: @autoclosure () -> String) throws {
        let ret = av_bsf_send_packet(context, packet)
        if ret < 0 {
            if let packet { av_packet_unref(packet) }
            throw MediaError.ffmpeg(ret, subject(), "cannot filter audio")
        }
    }

    /// The next filtered packet into `packet`; false when the filter wants more input or is drained.
    func receive(into packet: Packet, subject: @autoclosure () -> String) throws -> Bool {
        packet.unref()
        let ret = av_bsf_receive_packet(context, packet.pointer)
        if ret == AVError.eagain || ret == AVError.eof { return false }
        try check(ret, subject(), "cannot filter audio")
        return true
    }
}

@available(*, unavailable)
extension BitstreamFilter: Sendable {}
