import CFFmpeg

/// Owns a video decoder (AVCodecContext, freed with avcodec_free_context in deinit) opened from a
/// MediaInput stream's parameters, with FFmpeg's own threads on (thread_count 0 = auto,
/// thread_type frame|slice). Drive it with the send/receive API: `send(_:)` packets (nil = drain),
/// `receive(into:)` frames.
///
/// Not thread-safe: one thread at a time (FFmpeg's worker threads are internal to it).
final class VideoDecoder {
    /// Result of `receive(into:)`.
    enum Receive {
        /// `frame` holds a new picture.
        case frame
        /// The decoder needs more packets first.
        case needsInput
        /// Fully drained after `send(nil)`; call `flush()` to start again.
        case endOfStream
    }

    /// Stream this decoder was opened for; packets of other streams must not be sent.
    let streamIndex: Int32
    /// Path/URL for error messages.
    let url: String
    /// The largest width × height a decoded frame may have (0: no limit).
    let maxPixels: Int
    private var context: UnsafeMutablePointer<AVCodecContext>?
    /// The limit's C state (read by the get_buffer2 callback); freed after the context.
    private let limit: UnsafeMutablePointer<netnet_frame_limit>

    /// Opens the decoder for `streamIndex` of `input` (its best video stream when nil).
    /// `threadCount` 0 lets FFmpeg pick (number of cores + 1 for frame threads). A frame larger
    /// than `maxPixels` (width × height; 0: no limit) gets no buffer: its decode fails with
    /// AVERROR(ERANGE) before the picture is allocated, and `refusedFrameSize` says its size.
    init(input: MediaInput, streamIndex: Int32? = nil, threadCount: Int32 = 0, maxPixels: Int = 0) throws {
        let url = input.url
        let index = try streamIndex ?? input.bestVideoStreamIndex()
        self.url = url
        self.streamIndex = index
        self.maxPixels = max(0, maxPixels)
        limit = .allocate(capacity: 1)
        limit.initialize(to: netnet_frame_limit(max_pixels: Int64(max(0, maxPixels)), refused: 0))

        var ctx: UnsafeMutablePointer<AVCodecContext>? = try input.withCodecParameters(ofStream: index) { par in
            guard par.pointee.codec_type == AVMEDIA_TYPE_VIDEO else {
                throw MediaError("\(url): stream \(index) is not a video stream", code: AVError.einval)
            }
            guard let codec = avcodec_find_decoder(par.pointee.codec_id) else {
                let name = String(cString: avcodec_get_name(par.pointee.codec_id))
                throw MediaError("\(url): no decoder for codec \(name)", code: AVError.decoderNotFound)
            }
            guard let ctx = avcodec_alloc_context3(codec) else {
                throw MediaError("\(url): avcodec_alloc_context3: out of memory", code: AVError.enomem)
            }
            var owned: UnsafeMutablePointer<AVCodecContext>? = ctx
            let copied = avcodec_parameters_to_context(ctx, par)
            if copied < 0 {
                avcodec_free_context(&owned)
                throw MediaError.ffmpeg(copied, url, "cannot configure decoder")
            }
            return ctx
        }
        ctx!.pointee.pkt_timebase = input.timeBase(ofStream: index)
        ctx!.pointee.thread_count = threadCount
        ctx!.pointee.thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE
        netnet_install_frame_limit(ctx, limit)
        let opened = avcodec_open2(ctx, nil, nil)
        if opened < 0 {
            avcodec_free_context(&ctx)
            throw MediaError.ffmpeg(opened, url, "cannot open decoder")
        }
        context = ctx
    }

    deinit {
        avcodec_free_context(&context)
        limit.deallocate()
    }

    /// The size of the first frame refused for being over `maxPixels`; nil while none was.
    var refusedFrameSize: (width: Int, height: Int)? {
        let packed = netnet_frame_limit_refused(limit)
        guard packed != 0 else { return nil }
        return (Int(packed >> 32), Int(packed & 0xFFFF_FFFF))
    }

    /// The error for a frame over the limit: "URL: a WxH frame (N pixels) is over the limit of M pixels".
    static func limitError(_ subject: String, width: Int, height: Int, maxPixels: Int) -> MediaError {
        MediaError("\(subject): a \(width)x\(height) frame (\(width * height) pixels) is over the limit of \(maxPixels) pixels per frame",
                   code: netnet_averror_erange())
    }

    /// Decoder name, e.g. "h264", "png", "mjpeg".
    var codecName: String {
        guard let codec = context!.pointee.codec, let name = codec.pointee.name else { return "?" }
        return String(cString: name)
    }

    /// Sends one packet (nil: end of stream, start draining). Returns false when the decoder is full
    /// (AVERROR(EAGAIN): receive frames, then send the same packet again). Throws MediaError on
    /// decode errors such as corrupt data (the caller may keep going with the next packet).
    func send(_ packet: Packet?) throws -> Bool {
        let ret = avcodec_send_packet(context, packet?.pointer)
        if ret == AVError.eagain { return false }
        if ret == AVError.eof && packet == nil { return true }   // already draining
        if ret < 0 { throw MediaError.ffmpeg(ret, url, "cannot decode (\(codecName))") }
        return true
    }

    /// Receives the next decoded frame into `frame` (replacing its previous content).
    func receive(into frame: Frame) throws -> Receive {
        frame.unref()
        let ret = avcodec_receive_frame(context, frame.pointer)
        if ret == AVError.eagain { return .needsInput }
        if ret == AVError.eof { return .endOfStream }
        if ret < 0 { throw MediaError.ffmpeg(ret, url, "cannot decode (\(codecName))") }
        return .frame
    }

    /// Drops buffered packets/frames and leaves draining mode (after a seek or end of stream).
    func flush() {
        avcodec_flush_buffers(context)
    }
}

@available(*, unavailable, message: "VideoDecoder owns an AVCodecContext; use it from one thread at a time")
extension VideoDecoder: Sendable {}
