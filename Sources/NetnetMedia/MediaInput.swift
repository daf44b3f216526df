import CFFmpeg

/// Owns an opened demuxer (AVFormatContext from avformat_open_input, closed with
/// avformat_close_input in deinit) for one file or URL.
///
/// Not thread-safe: create, read and destroy it on one thread at a time (it may move between
/// threads, e.g. owned by one task, but never be used concurrently).
final class MediaInput {
    /// The path/URL as given; used in every error message.
    let url: String
    private var context: UnsafeMutablePointer<AVFormatContext>?

    /// Keeps the interrupt callback's state alive as long as the context that points to it.
    private let ioGuard: IOGuard?
    /// Each stream's picture size as the container declared it before probing (0×0 when it did not).
    private var declaredSizes: [(Int, Int)] = []
    /// The keys of `options` that avformat_open_input left in its dictionary: no option of the
    /// format context, the demuxer or the protocol took them (FFmpeg's own test for an unknown
    /// option, as its CLI's "Option … not found"). Sorted.
    private(set) var unusedOptions: [String] = []
    /// The protocol FFmpeg opens the URL with ("file", "pipe", "rtsp" has none: nil), for messages.
    let protocolName: String?

    /// Opens `url` and reads enough of it to know its streams (avformat_find_stream_info).
    /// `options` go to avformat_open_input (demuxer/protocol private options; unknown keys are ignored).
    /// `ioGuard`, when given, is installed as the context's interrupt callback before opening (the
    /// caller arms its deadline). `name` replaces `url` in error messages (e.g. "-" for "pipe:0").
    /// Throws MediaError "url: No such file or directory", "url: Invalid data found when processing input", ….
    /// `maxPixels` (> 0) caps the frames the stream probing may decode (the decoders' `max_pixels`),
    /// so a huge picture is not allocated while probing; its stream then reports no size.
    init(url: String, options: [String: String] = [:], ioGuard: IOGuard? = nil, name: String? = nil, maxPixels: Int = 0) throws {
        self.url = name ?? url
        self.ioGuard = ioGuard
        let openURL = url
        protocolName = avio_find_protocol_name(openURL).map { String(cString: $0) }
        let url = name ?? url
        var dict: OpaquePointer? = nil
        defer { av_dict_free(&dict) }
        for (key, value) in options.sorted(by: { $0.key < $1.key }) {
            try check(av_dict_set(&dict, key, value, 0), url, "option \(key)=\(value)")
        }

        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        if let ioGuard {
            guard let allocated = avformat_alloc_context() else {
                throw MediaError("\(url): avformat_alloc_context: out of memory", code: AVError.enomem)
            }
            netnet_install_interrupt(allocated, ioGuard.state)
            ctx = allocated
        }
        let opened = avformat_open_input(&ctx, openURL, nil, &dict)   // frees ctx itself on failure
        if opened < 0 { throw MediaError.ffmpeg(opened, url) }
        guard ctx != nil else { throw MediaError("\(url): avformat_open_input returned no context", code: AVError.einval) }
        var unused: [String] = []
        var entry: UnsafeMutablePointer<AVDictionaryEntry>? = nil
        while let next = av_dict_get(dict, "", entry, AV_DICT_IGNORE_SUFFIX) {
            unused.append(String(cString: next.pointee.key))
            entry = next
        }
        unusedOptions = unused.sorted()

        let streamCount = Int(ctx!.pointee.nb_streams)
        // Sizes the container declares, before probing: a probe refused by `maxPixels` leaves 0×0.
        declaredSizes = (0..<streamCount).map { i in
            let par = ctx!.pointee.streams[i]!.pointee.codecpar!.pointee
            return (Int(par.width), Int(par.height))
        }
        var probeOptions = [OpaquePointer?](repeating: nil, count: max(streamCount, 1))
        defer { for i in probeOptions.indices { av_dict_free(&probeOptions[i]) } }
        if maxPixels > 0 {
            for i in 0..<streamCount { av_dict_set(&probeOptions[i], "max_pixels", String(min(maxPixels, Int(Int32.max))), 0) }
        }
        let info = probeOptions.withUnsafeMutableBufferPointer { avformat_find_stream_info(ctx, $0.baseAddress) }
        if info < 0 {
            avformat_close_input(&ctx)
            throw MediaError.ffmpeg(info, url, "cannot read stream information")
        }
        context = ctx
    }

    deinit {
        avformat_close_input(&context)   // no-op when nil; sets it to nil
    }

    /// Number of streams in the container.
    var streamCount: Int { Int(context!.pointee.nb_streams) }

    /// Name of the demuxer ("image2", "mov,mp4,m4a,3gp,3g2,mj2", "png_pipe", …).
    var formatName: String {
        guard let iformat = context!.pointee.iformat, let name = iformat.pointee.name else { return "?" }
        return String(cString: name)
    }

    /// Index of the "best" video stream (av_find_best_stream), skipping nothing else.
    /// Throws "url: no video stream" when there is none.
    func bestVideoStreamIndex() throws -> Int32 {
        let index = av_find_best_stream(context, AVMEDIA_TYPE_VIDEO, -1, -1, nil, 0)
        if index < 0 {
            let why = index == AVError.streamNotFound ? "no video stream" : MediaError.ffmpegMessage(for: index)
            throw MediaError("\(url): \(why)", code: index)
        }
        return index
    }

    /// The picture size of stream `index`: the probed one, else the one the container declared.
    func pictureSize(ofStream index: Int32) -> (width: Int, height: Int) {
        let probed = withCodecParameters(ofStream: index) { (Int($0.pointee.width), Int($0.pointee.height)) }
        if probed.0 > 0 && probed.1 > 0 { return probed }
        return Int(index) < declaredSizes.count ? declaredSizes[Int(index)] : probed
    }

    /// Time base of stream `index` (seconds per timestamp unit).
    func timeBase(ofStream index: Int32) -> AVRational {
        precondition(index >= 0 && Int(index) < streamCount, "stream index \(index) out of range")
        return context!.pointee.streams[Int(index)]!.pointee.time_base
    }

    /// Codec parameters of stream `index`, for `body` only (the pointer belongs to the format context).
    func withCodecParameters<R>(ofStream index: Int32, _ body: (UnsafePointer<AVCodecParameters>) throws -> R) rethrows -> R {
        precondition(index >= 0 && Int(index) < streamCount, "stream index \(index) out of range")
        let stream = context!.pointee.streams[Int(index)]!
        return try body(UnsafePointer(stream.pointee.codecpar!))
    }

    /// The format context, for `body` only (the pointer belongs to this object).
    func withContext<R>(_ body: (UnsafeMutablePointer<AVFormatContext>) throws -> R) rethrows -> R {
        try body(context!)
    }

    /// Stream `index`, for `body` only (the pointer belongs to the format context).
    func withStream<R>(_ index: Int32, _ body: (UnsafeMutablePointer<AVStream>) throws -> R) rethrows -> R {
        precondition(index >= 0 && Int(index) < streamCount, "stream index \(index) out of range")
        return try body(context!.pointee.streams[Int(index)]!)
    }

    /// Index of the best audio stream (related to `videoStream`), nil when there is none.
    func bestAudioStreamIndex(relatedTo videoStream: Int32) -> Int32? {
        let index = av_find_best_stream(context, AVMEDIA_TYPE_AUDIO, -1, videoStream, nil, 0)
        return index >= 0 ? index : nil
    }

    /// The byte reader reached the end of its data (avio_feof), e.g. a truncated file.
    /// Not set by I/O errors (those keep pb->error).
    var reachedEndOfData: Bool {
        guard let pb = context!.pointee.pb else { return false }
        return avio_feof(pb) != 0 && (pb.pointee.error == 0 || pb.pointee.error == AVError.eof)
    }

    /// Reads the next packet into `packet` (replacing its previous payload).
    /// Returns false at end of input; throws MediaError on read errors.
    /// av_read_frame into `packet` (previous payload dropped first); returns FFmpeg's code as is.
    func readRaw(into packet: Packet) -> Int32 {
        packet.unref()
        return av_read_frame(context, packet.pointer)
    }

    func read(into packet: Packet) throws -> Bool {
        packet.unref()
        let ret = av_read_frame(context, packet.pointer)
        if ret == AVError.eof { return false }
        if ret < 0 { throw MediaError.ffmpeg(ret, url, "read error") }
        return true
    }
}

@available(*, unavailable, message: "MediaInput owns an AVFormatContext; use it from one thread at a time")
extension MediaInput: Sendable {}
