import CFFmpeg
#if canImport(Glibc)
import Glibc
#endif

/// Options for writing an annotated video. A plain value: any thread.
public struct VideoWriterOptions: Sendable {
    /// Output file; the container follows the extension (mp4, mkv, mov, avi, ts, …) unless `format`
    /// names one. "-": standard output (FFmpeg's `pipe:1`), which needs `format`.
    public var path: String
    /// The container by FFmpeg muxer name ("matroska", "mpegts", "nut", "flv", "mp4", …); nil: from
    /// the extension of `path`. A pipe cannot seek back, so it wants a streamable muxer: matroska/webm,
    /// mpegts, nut and flv are; mp4 and mov are written fragmented (as they are to files), which
    /// needs no seeking either.
    public var format: String?
    /// Video encoder by FFmpeg name ("libx264", "libx265", "mpeg4", …); it must accept yuv420p.
    public var codec: String = "libx264"
    /// Constant rate factor (libx264/libx265; ignored by encoders without a "crf" option).
    public var crf: Int = 23
    /// Encoder preset (libx264/libx265; ignored by encoders without a "preset" option).
    public var preset: String = "veryfast"
    /// libx264/libx265 parameters, `key=value:key=value` (FFmpeg's `-x264-params`/`-x265-params`),
    /// applied after the preset; nil: `automaticEncoderParams(codec:preset:)`; "" for none.
    public var encoderParams: String?
    /// Encoder threads; 0 = the encoder's automatic count.
    public var encoderThreads: Int = 0
    /// TrueType font for the labels; "" = fontconfig's default sans font.
    public var fontFile: String = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    /// Copy the source's audio stream (when it has one). With false the output has video only.
    public var copyAudio: Bool = true
    /// Label text height in pixels; nil: 2.8 % of the picture height, at least 10.
    public var fontSize: Int?
    /// Box outline thickness in pixels (rounded up to even); nil: 2 per 540 lines, at least 2.
    public var boxThickness: Int?

    /// Options with the defaults above for `path`. Any thread.
    public init(path: String) {
        self.path = path
    }

    /// The parameters `encoderParams` nil gives: `me=dia:subme=1` for libx264 at the `veryfast`
    /// preset (superfast's motion search, keeping veryfast's partitions, B-frames and macroblock
    /// tree: on vtest.avi a third less encoder CPU, about the same size, 0.2 dB lower PSNR at
    /// CRF 23, see docs/media.md), "" otherwise. Pure.
    public static func automaticEncoderParams(codec: String, preset: String) -> String {
        codec == "libx264" && preset == "veryfast" ? "me=dia:subme=1" : ""
    }

    /// The private option that carries `encoderParams` for `codec` (nil: the encoder has none). Pure.
    public static func encoderParamsOption(codec: String) -> String? {
        switch codec {
        case "libx264", "libx264rgb": "x264-params"
        case "libx265": "x265-params"
        default: nil
        }
    }

    /// Checks `params` is a `key=value` list joined by ':' (what the x264/x265 parameter options
    /// parse), that `codec` takes parameters when there are any, and that the encoder library's
    /// own parser (x264's or x265's) takes each pair (FFmpeg only warns about a pair the library
    /// refuses, and goes on without it); the problem in words, or nil. Any thread.
    public static func encoderParamsProblem(_ params: String, codec: String) -> String? {
        if params.isEmpty { return nil }
        guard let option = encoderParamsOption(codec: codec) else {
            return "the \(codec) encoder takes no parameter list (libx264 and libx265 do)"
        }
        for item in params.split(separator: ":", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count != 2 || parts[0].isEmpty || parts[1].isEmpty {
                return "'\(item)' is not key=value (the list is key=value:key=value, e.g. me=dia:subme=1)"
            }
            let (library, verdict) = option == "x264-params"
                ? ("x264", netnet_x264_param_check(String(parts[0]), String(parts[1])))
                : ("x265", netnet_x265_param_check(String(parts[0]), String(parts[1])))
            switch verdict {
            case -1: return "\(library) has no parameter '\(parts[0])'"
            case -2: return "\(library) does not take '\(parts[1])' for \(parts[0])"
            default: continue
            }
        }
        return nil
    }

    /// The label text height `fontSize` nil gives a picture `height` lines high. Pure.
    public static func defaultFontSize(height: Int) -> Int { max(10, Int((Double(height) * 0.028).rounded())) }

    /// The box outline thickness `boxThickness` nil gives a picture `height` lines high. Pure.
    public static func defaultBoxThickness(height: Int) -> Int { max(2, 2 * Int((Double(height) / 540).rounded())) }
}

/// Encodes frames with boxes and labels drawn on them and muxes them with the source's audio copied
/// unchanged (no re-encode).
///
/// One thread at a time (the writer thread): create it there (from `source.streams`, which is
/// Sendable) or create it anywhere and hand it over before use. Timestamps: the source's video pts
/// are kept (shifted by the input's start time, as the ffmpeg CLI does, so the output starts at 0)
/// and rescaled to the output time base; frames without pts get index ÷ frame rate; a pts that does
/// not increase is bumped to one output tick after the previous one, so the muxer never sees
/// non-monotonic DTS. Audio packets get
/// the same shift and are rescaled; av_interleaved_write_frame interleaves the two.
public final class VideoWriter {
    /// The options it was created with. Writer thread.
    public let options: VideoWriterOptions
    /// Frames encoded so far (sent to the encoder). Writer thread.
    public private(set) var framesWritten = 0
    /// Audio packets dropped because their timestamps went backwards (broken sources). Writer thread.
    public private(set) var audioPacketsDropped = 0
    /// Output picture size (the source size, rounded down to even numbers for 4:2:0). Writer thread.
    public let width: Int
    /// Output picture size. Writer thread.
    public let height: Int

    private let path: String
    private let streams: SourceStreams
    private let container: OutputContainer
    private let encoder: VideoEncoder
    private let videoStream: Int32
    private let audioStream: Int32?
    private let encoderTimeBase: AVRational
    private let frameDuration: Int64          // one frame in encoder ticks (>= 1)
    private var minimumStep: Int64 = 1        // encoder ticks per output-stream tick, rounded up (>= 1)
    private let canvas: Frame                 // yuv420p, the picture drawn on and encoded
    private let scaler = ScaleContext()
    private let painter: BoxPainter
    private let labels: LabelRenderer
    private let packet: Packet
    /// ADTS → MPEG-4 AAC for a fragmented MP4/MOV, whose muxer does not insert it by itself.
    private let audioFilter: BitstreamFilter?
    private let filteredAudio: Packet
    private let fullRange: Bool
    private var startOffset: Int64?           // microseconds subtracted from every timestamp
    private var lastVideoPts: Int64?
    private var lastAudioDts: Int64?
    private var finished = false
    private var labelScratch: [(x: Int32, y: Int32, text: String)] = []
    /// The overlay's shapes rasterised for the output size; rebuilt only when the shapes change.
    private var overlayRaster: OverlayRaster?
    /// How often the overlay's shapes were rasterised (once per distinct shapes; tests check it).
    private(set) var overlayRasterisations = 0
    /// How often the canvas got new buffers (1 in the steady state; tests check it).
    private(set) var canvasAllocations = 0

    /// Same as `init(options:streams:)` with `source.streams`. Call on the thread that owns `source`.
    public convenience init(options: VideoWriterOptions, source: VideoSource) throws {
        try self.init(options: options, streams: source.streams)
    }

    /// Creates the file, opens the encoder (source size, source time base and frame rate, yuv420p)
    /// and adds the audio stream (codec parameters copied) when the source has one; writes the header.
    /// Throws MediaError naming the path: unknown extension, missing encoder, a container that cannot
    /// carry the audio codec ("out.mp4: the mp4 container cannot carry pcm_s16le audio …"), unreadable
    /// font, I/O errors. Any thread (then use it from one thread at a time).
    public init(options: VideoWriterOptions, streams: SourceStreams) throws {
        self.options = options
        self.streams = streams
        let toStandardOutput = options.path == "-"
        let path = toStandardOutput ? "standard output" : options.path
        self.path = path
        guard streams.width >= 2, streams.height >= 2 else {
            throw MediaError("\(path): cannot encode a \(streams.width)x\(streams.height) video", code: AVError.einval)
        }
        width = streams.width & ~1
        height = streams.height & ~1
        fullRange = streams.colorRange == AVCOL_RANGE_JPEG || FrameConverter.dejpeg(streams.pixelFormat).fullRange

        // Time base: the source's video time base (timestamps keep their precision); else 1/rate.
        var timeBase = streams.videoTimeBase
        let rate = streams.frameRateQ.num > 0 && streams.frameRateQ.den > 0 ? streams.frameRateQ : AVRational(num: 25, den: 1)
        if timeBase.num <= 0 || timeBase.den <= 0 { timeBase = av_inv_q(rate) }
        encoderTimeBase = timeBase
        frameDuration = max(1, av_rescale_q(1, av_inv_q(rate), timeBase))

        container = try OutputContainer(url: toStandardOutput ? "pipe:1" : options.path, format: options.format, name: path)
        encoder = try VideoEncoder(options: options, width: Int32(width), height: Int32(height), timeBase: timeBase,
                                   frameRate: rate, streams: streams, fullRange: fullRange,
                                   globalHeader: container.needsGlobalHeader, subject: path)
        videoStream = try container.addStream(from: encoder, timeBase: timeBase, frameRate: rate, displayMatrix: streams.displayMatrix)
        if options.copyAudio, let audio = streams.audio {
            audioStream = try container.addCopiedStream(audio, timeBase: streams.audioTimeBase)
        } else {
            audioStream = nil
        }
        // AAC from MPEG-TS (ADTS headers, no extradata): FFmpeg's mov muxer adds aac_adtstoasc
        // itself only when it is not fragmented ("Malformed AAC bitstream" otherwise).
        if audioStream != nil, let audio = streams.audio, audio.codecID == AV_CODEC_ID_AAC, !audio.hasExtradata,
           !OutputContainer.muxerOptions(formatName: container.formatName).isEmpty {
            audioFilter = try BitstreamFilter(name: "aac_adtstoasc", parameters: audio, timeBase: streams.audioTimeBase, subject: path)
        } else {
            audioFilter = nil
        }
        filteredAudio = try Packet()
        packet = try Packet()
        canvas = try Frame()
        let thickness = options.boxThickness ?? VideoWriterOptions.defaultBoxThickness(height: height)
        painter = BoxPainter(thickness: thickness, colorSpace: streams.colorSpace, fullRange: fullRange)
        labels = try LabelRenderer(width: Int32(width), height: Int32(height), format: AV_PIX_FMT_YUV420P, timeBase: timeBase,
                                   sampleAspectRatio: streams.sampleAspectRatio, fontFile: options.fontFile,
                                   fontSize: options.fontSize ?? VideoWriterOptions.defaultFontSize(height: height), subject: path)
        startOffset = streams.startTime
        try container.writeHeader(videoCodec: encoder.codecName, audioCodec: audioStream != nil ? streams.audioCodecName : nil)
        // Consecutive pts must stay distinct after rescaling to the muxer's (possibly coarser) time base.
        minimumStep = max(1, av_rescale_q_rnd(1, container.timeBase(ofStream: videoStream), timeBase, AV_ROUND_UP))
    }

    deinit {
        if !finished { try? finish() }
    }

    /// Draws `overlay` (its shapes under the boxes, its texts with the labels) and `boxes` (outlines in
    /// their class colours, labels above them) on a copy of `frame` at full resolution, encodes it and
    /// muxes the packets; `frame` itself is not modified (decoders may still reference its pixels). The
    /// overlay is in the frame's pixels (not rescaled on a mid-stream size change, unlike the boxes);
    /// its shapes are rasterised once and reused while they stay equal. The pts is kept (see the
    /// type's notes). Throws MediaError on encoder or I/O errors, or after `finish()`. Writer thread.
    public func write(_ frame: VideoFrame, boxes: [DrawnBox], overlay: OverlayDrawing? = nil) throws {
        guard !finished else { throw MediaError("\(path): write after finish()", code: AVError.einval) }
        guard !frame.isEmpty else { throw MediaError("\(path): cannot write an empty frame", code: AVError.einval) }

        // 1. The canvas: a writable yuv420p picture of the output size holding the frame's pixels.
        try prepareCanvas(from: frame.frame)

        // 2. Outlines, then labels on top. Boxes are in the frame's pixels; a frame of another size than
        // the output (a mid-stream resolution change) was scaled to the output size, and so are they.
        var boxes = boxes
        if !boxes.isEmpty, frame.width & ~1 != width || frame.height & ~1 != height, frame.width > 0, frame.height > 0 {
            let sx = Float(width) / Float(frame.width), sy = Float(height) / Float(frame.height)
            for i in boxes.indices {
                boxes[i].x1 *= sx; boxes[i].x2 *= sx
                boxes[i].y1 *= sy; boxes[i].y2 *= sy
            }
        }
        if let overlay, !overlay.shapes.isEmpty {
            if overlayRaster?.shapes != overlay.shapes {
                overlayRaster = OverlayRaster(overlay.shapes, width: width, height: height, colorSpace: streams.colorSpace,
                                              fullRange: fullRange)
                overlayRasterisations += 1
            }
            overlayRaster!.paint(on: canvas)
        }
        labelScratch.removeAll(keepingCapacity: true)
        if let overlay {
            for text in overlay.texts where !text.text.isEmpty { labelScratch.append(labels.anchor(for: text)) }
        }
        if !boxes.isEmpty {
            painter.paint(boxes, on: canvas)
            for box in boxes where !box.label.isEmpty {
                guard let rect = BoxPainter.rectangle(box, width: width, height: height) else { continue }
                let anchor = labels.anchor(for: rect, thickness: painter.thickness)
                labelScratch.append((anchor.x, anchor.y, box.label))
            }
        }
        try labels.render(labelScratch, on: canvas)

        // 3. Timestamp: the source pts (shifted to start at 0), or index / rate; strictly increasing.
        var pts: Int64
        if let sourcePts = frame.pts {
            let sourceTB = frame.timeBaseDen != 0 ? AVRational(num: frame.timeBaseNum, den: frame.timeBaseDen) : streams.videoTimeBase
            if startOffset == nil { startOffset = av_rescale_q(sourcePts, sourceTB, Self.microseconds) }
            pts = av_rescale_q(sourcePts, sourceTB, encoderTimeBase) - av_rescale_q(startOffset!, Self.microseconds, encoderTimeBase)
        } else {
            pts = Int64(frame.index) * frameDuration
        }
        if let last = lastVideoPts, pts < last + minimumStep { pts = last + minimumStep }
        lastVideoPts = pts
        canvas.pointer.pointee.pts = pts
        canvas.pointer.pointee.pict_type = AV_PICTURE_TYPE_NONE   // let the encoder choose frame types

        // 4. Encode and mux.
        try encoder.send(canvas, subject: path)
        framesWritten += 1
        try drainEncoder()
    }

    /// Copies `packet` (a source audio packet) into the output's audio stream: timestamps shifted like
    /// the video's and rescaled to the output time base; the payload reference moves to the muxer (the
    /// packet is left empty). Dropped silently when the output has no audio stream; dropped and counted
    /// in `audioPacketsDropped` when its DTS does not increase. Writer thread.
    public func writeAudio(_ packet: AudioPacket) throws {
        guard !finished else { throw MediaError("\(path): writeAudio after finish()", code: AVError.einval) }
        guard let audioStream, !packet.isEmpty else { packet.reset(); return }
        let p = packet.packet.pointer
        let sourceTB = packet.timeBaseDen != 0 ? AVRational(num: packet.timeBaseNum, den: packet.timeBaseDen) : streams.audioTimeBase
        let nopts = netnet_nopts_value()
        if startOffset == nil {
            let first = p.pointee.dts != nopts ? p.pointee.dts : p.pointee.pts
            if first != nopts { startOffset = av_rescale_q(first, sourceTB, Self.microseconds) }
        }
        let shift = av_rescale_q(startOffset ?? 0, Self.microseconds, sourceTB)
        if p.pointee.pts != nopts { p.pointee.pts -= shift }
        if p.pointee.dts != nopts { p.pointee.dts -= shift } else { p.pointee.dts = p.pointee.pts }
        if let audioFilter {
            // The filter keeps timestamps (in the source time base it was opened with).
            try audioFilter.send(p, subject: path)
            packet.reset()
            while try audioFilter.receive(into: filteredAudio, subject: path) {
                try muxAudio(filteredAudio.pointer, from: sourceTB, stream: audioStream)
            }
            return
        }
        try muxAudio(p, from: sourceTB, stream: audioStream)
        packet.reset()
    }

    /// Rescales an audio packet (already shifted) to the output stream, drops it (counted) when its
    /// DTS does not increase, and hands it to the muxer.
    private func muxAudio(_ p: UnsafeMutablePointer<AVPacket>, from sourceTB: AVRational, stream audioStream: Int32) throws {
        let nopts = netnet_nopts_value()
        let outTB = container.timeBase(ofStream: audioStream)
        av_packet_rescale_ts(p, sourceTB, outTB)
        if p.pointee.dts != nopts {
            if let last = lastAudioDts, p.pointee.dts <= last {
                audioPacketsDropped += 1
                av_packet_unref(p)
                return
            }
            lastAudioDts = p.pointee.dts
        }
        p.pointee.stream_index = audioStream
        p.pointee.pos = -1
        try container.write(p, what: "audio")
    }

    /// Flushes the encoder (its delayed frames), writes the trailer and closes the file: afterwards the
    /// file is complete and plays, however few frames were written. Idempotent (later calls do
    /// nothing); also done, errors ignored, when the writer is released without it. Writer thread.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        var firstError: (any Error)? = nil
        do {
            try encoder.send(nil, subject: path)
            try drainEncoder()
        } catch {
            firstError = error
        }
        do { try container.finish() } catch { if firstError == nil { firstError = error } }
        if let firstError { throw firstError }
    }

    private static let microseconds = AVRational(num: 1, den: AV_TIME_BASE)

    /// Receives every packet the encoder has ready and hands it to the muxer.
    private func drainEncoder() throws {
        let outTB = container.timeBase(ofStream: videoStream)
        while try encoder.receive(into: packet, subject: path) {
            let p = packet.pointer
            if p.pointee.duration <= 0 { p.pointee.duration = frameDuration }
            av_packet_rescale_ts(p, encoderTimeBase, outTB)
            p.pointee.stream_index = videoStream
            try container.write(p, what: "video")
        }
    }

    /// Makes `canvas` a writable width×height yuv420p picture holding `source`'s pixels: a plane copy
    /// when the source is already 8-bit 4:2:0 of that size (an odd last row/column is dropped), otherwise
    /// one swscale conversion (other formats, another range, a size that changed mid-stream).
    /// Reuses the canvas buffers whenever nothing else references them (the usual case: the encoder
    /// copies the picture and lets go), so the steady state allocates nothing.
    private func prepareCanvas(from source: Frame) throws {
        if canvas.plane(0).data == nil || canvas.width != Int32(width) || canvas.height != Int32(height)
            || canvas.pixelFormat != AV_PIX_FMT_YUV420P || av_frame_is_writable(canvas.pointer) == 0 {
            try canvas.allocate(width: Int32(width), height: Int32(height), format: AV_PIX_FMT_YUV420P, subject: path)
            canvasAllocations += 1
            canvas.pointer.pointee.color_range = fullRange ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG
            canvas.pointer.pointee.colorspace = streams.colorSpace
            canvas.pointer.pointee.color_primaries = streams.colorPrimaries
            canvas.pointer.pointee.color_trc = streams.colorTransfer
            canvas.pointer.pointee.sample_aspect_ratio = streams.sampleAspectRatio
        }
        let (format, jpegFormat) = FrameConverter.dejpeg(source.pixelFormat)
        let sourceFull = jpegFormat || source.colorRange == AVCOL_RANGE_JPEG
        if format == AV_PIX_FMT_YUV420P, source.width & ~1 == Int32(width), source.height & ~1 == Int32(height), sourceFull == fullRange {
            netnet_frame_copy_pixels(canvas.pointer, source.pointer, AV_PIX_FMT_YUV420P, Int32(width), Int32(height))
            return
        }
        guard format != AV_PIX_FMT_NONE, source.width > 0, source.height > 0 else {
            throw MediaError("\(path): frame has no picture", code: AVError.einval)
        }
        var p = ScaleContext.Parameters(sourceWidth: source.width, sourceHeight: source.height, sourceFormat: format,
                                        outputWidth: Int32(width), outputHeight: Int32(height), outputFormat: AV_PIX_FMT_YUV420P,
                                        flags: SWS_BICUBIC | SWS_ACCURATE_RND)
        if case .yuv = FrameConverter.model(of: format) {
            let matrix = FrameConverter.swsMatrix(source.colorSpace)
            p.sourceMatrix = matrix
            p.outputMatrix = matrix
            p.sourceFullRange = sourceFull ? 1 : 0
        } else {
            p.outputMatrix = FrameConverter.swsMatrix(streams.colorSpace)
        }
        p.outputFullRange = fullRange ? 1 : 0
        try scaler.configure(p, subject: path)
        try scaler.scale(source, into: canvas, subject: path)
    }
}

@available(*, unavailable, message: "VideoWriter owns an encoder and a muxer; use it from one thread at a time")
extension VideoWriter: Sendable {}

/// Owns an output AVFormatContext (avformat_alloc_output_context2) and its AVIOContext (avio_open),
/// closed and freed in deinit. Not thread-safe.
final class OutputContainer {
    /// The output as messages name it ("standard output" for `pipe:1`).
    let path: String
    private let url: String
    private var context: UnsafeMutablePointer<AVFormatContext>?
    private var ioOpen = false
    private var headerWritten = false
    private var closed = false

    /// The muxers a pipe takes, for messages.
    static let streamableFormats = "matroska, webm, mpegts, nut, flv, mp4"

    /// A muxer for `url` (a path, or `pipe:1`): the one named `format`, else the one the extension
    /// names. `name` is the output in messages.
    init(url: String, format: String?, name: String) throws {
        self.path = name
        self.url = url
        // Looked up first: avformat_alloc_output_context2 would log its own line for an unknown name.
        if let format, av_guess_format(format, nil, nil) == nil {
            throw MediaError("\(name): no container format (muxer) named '\(format)' in this FFmpeg build (e.g. \(Self.streamableFormats))",
                             code: AVError.einval)
        }
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        let ret = avformat_alloc_output_context2(&ctx, nil, format, url)
        guard ret >= 0, let ctx else {
            let code = ret < 0 ? ret : AVError.einval
            if let format {
                throw MediaError("\(name): no container format (muxer) named '\(format)' in this FFmpeg build (e.g. \(Self.streamableFormats))",
                                 code: code)
            }
            if url.hasPrefix("pipe:") {
                throw MediaError("\(name): name a container format (\(Self.streamableFormats))", code: code)
            }
            throw MediaError("\(name): cannot choose a container from the file name (use .mp4, .mkv, .mov, .avi or .ts)",
                             code: code)
        }
        context = ctx
    }

    deinit {
        if let context {
            if ioOpen {
                var pb = context.pointee.pb
                avio_closep(&pb)
                context.pointee.pb = nil
            }
            avformat_free_context(context)
        }
    }

    /// Short name of the muxer ("mp4", "matroska", …).
    var formatName: String {
        guard let name = context!.pointee.oformat.pointee.name else { return "?" }
        return String(cString: name)
    }

    /// The container wants codec headers in extradata (AVFMT_GLOBALHEADER).
    var needsGlobalHeader: Bool { (context!.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER) != 0 }

    /// Adds a stream for `encoder`'s output; returns its index.
    func addStream(from encoder: VideoEncoder, timeBase: AVRational, frameRate: AVRational, displayMatrix: [Int32]?) throws -> Int32 {
        guard let st = avformat_new_stream(context, nil) else {
            throw MediaError("\(path): avformat_new_stream: out of memory", code: AVError.enomem)
        }
        try encoder.copyParameters(to: st.pointee.codecpar, subject: path)
        st.pointee.time_base = timeBase
        st.pointee.avg_frame_rate = frameRate
        if let displayMatrix, displayMatrix.count == 9 {
            guard let data = av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, 36) else {
                throw MediaError("\(path): av_stream_new_side_data: out of memory", code: AVError.enomem)
            }
            for (i, v) in displayMatrix.enumerated() { UnsafeMutableRawPointer(data).storeBytes(of: v, toByteOffset: 4 * i, as: Int32.self) }
        }
        return st.pointee.index
    }

    /// Adds a stream carrying packets with `parameters` unchanged (stream copy); returns its index.
    /// Throws when the container cannot carry that codec.
    func addCopiedStream(_ parameters: CodecParameters, timeBase: AVRational) throws -> Int32 {
        let oformat = context!.pointee.oformat!
        if avformat_query_codec(oformat, parameters.codecID, FF_COMPLIANCE_NORMAL) == 0 {
            throw MediaError("\(path): the \(formatName) container cannot carry \(parameters.codecName) audio (from the input); use .mkv, or leave the audio out",
                             code: AVError.einval)
        }
        guard let st = avformat_new_stream(context, nil) else {
            throw MediaError("\(path): avformat_new_stream: out of memory", code: AVError.enomem)
        }
        try check(avcodec_parameters_copy(st.pointee.codecpar, parameters.pointer), path, "cannot copy the audio parameters")
        st.pointee.codecpar.pointee.codec_tag = 0   // let this muxer pick its own tag
        st.pointee.time_base = timeBase
        return st.pointee.index
    }

    /// Muxer options that keep a file readable up to the last second written when the process dies
    /// before `finish()` (a second SIGINT, SIGKILL, power loss). MP4/MOV: fragmented — the `moov`
    /// written with the first fragment, then a `moof`+`mdat` fragment at every keyframe and at
    /// least every second (`frag_duration`, µs); `default_base_moof` for players that need it.
    /// `delay_moov` rather than `empty_moov`: an empty `moov` is written before any packet, so it
    /// cannot hold the edit list that starts the video at 0 despite x264's B-frame delay, and the
    /// video would play two frames late against the audio. Matroska, MPEG-TS and the other stream
    /// formats need nothing.
    static func muxerOptions(formatName: String) -> [(String, String)] {
        switch formatName {
        case "mp4", "mov":
            return [("movflags", "frag_keyframe+delay_moov+default_base_moof"), ("frag_duration", "1000000")]
        default:
            return []
        }
    }

    /// Opens the file (unless the muxer needs none) and writes the header; stream time bases are final afterwards.
    func writeHeader(videoCodec: String, audioCodec: String?) throws {
        let ctx = context!
        if (ctx.pointee.oformat.pointee.flags & AVFMT_NOFILE) == 0 {
            var io: UnsafeMutablePointer<AVIOContext>? = nil
            try check(avio_open(&io, url, AVIO_FLAG_WRITE), path)
            ctx.pointee.pb = io
            ioOpen = true
        }
        // Every finished fragment or cluster goes to the kernel at once, not when the 32 KiB I/O
        // buffer fills, so an abrupt exit loses at most the fragment in progress.
        ctx.pointee.flush_packets = 1
        var dict: OpaquePointer? = nil
        defer { av_dict_free(&dict) }
        for (key, value) in Self.muxerOptions(formatName: formatName) {
            try check(av_dict_set(&dict, key, value, 0), path, "muxer option \(key)=\(value)")
        }
        let ret = avformat_write_header(ctx, &dict)
        if ret < 0 {
            let streams = audioCodec.map { "\(videoCodec) video, \($0) audio" } ?? "\(videoCodec) video"
            throw MediaError.ffmpeg(ret, path, "the \(formatName) container cannot be written with \(streams)")
        }
        headerWritten = true
    }

    func timeBase(ofStream index: Int32) -> AVRational {
        context!.pointee.streams[Int(index)]!.pointee.time_base
    }

    /// av_interleaved_write_frame: the muxer takes the packet's reference (the packet is left blank).
    func write(_ packet: UnsafeMutablePointer<AVPacket>, what: String) throws {
        guard headerWritten, !closed else {
            av_packet_unref(packet)
            throw MediaError("\(path): the file is already closed", code: AVError.einval)
        }
        let ret = av_interleaved_write_frame(context, packet)
        if ret < 0 {
            av_packet_unref(packet)
            if ret == -EPIPE {   // SIGPIPE ignored (SignalTrap): the pipe's reader went away
                throw MediaError("\(path): the reader closed the pipe (\(MediaError.ffmpegMessage(for: ret))); cannot write \(what)", code: ret)
            }
            throw MediaError.ffmpeg(ret, path, "cannot write \(what)")
        }
    }

    /// Writes the trailer (flushing the interleaving queue) and closes the file. Idempotent.
    func finish() throws {
        guard !closed else { return }
        closed = true
        var trailer: Int32 = 0
        if headerWritten { trailer = av_write_trailer(context) }
        var closeResult: Int32 = 0
        if ioOpen {
            var pb = context!.pointee.pb
            if let pb { avio_flush(pb); if pb.pointee.error < 0 && trailer >= 0 { trailer = pb.pointee.error } }
            closeResult = avio_closep(&pb)
            context!.pointee.pb = nil
            ioOpen = false
        }
        try check(trailer, path, "cannot finish the file")
        try check(closeResult, path, "cannot close the file")
    }
}

@available(*, unavailable)
extension OutputContainer: Sendable {}

/// Owns the video encoder (AVCodecContext, avcodec_free_context in deinit). Not thread-safe.
final class VideoEncoder {
    private var context: UnsafeMutablePointer<AVCodecContext>?
    let codecName: String

    init(options: VideoWriterOptions, width: Int32, height: Int32, timeBase: AVRational, frameRate: AVRational,
         streams: SourceStreams, fullRange: Bool, globalHeader: Bool, subject: String) throws {
        guard let codec = avcodec_find_encoder_by_name(options.codec) else {
            throw MediaError("\(subject): no encoder named \(options.codec) in this FFmpeg build", code: AVError.encoderNotFound)
        }
        guard codec.pointee.type == AVMEDIA_TYPE_VIDEO else {
            throw MediaError("\(subject): \(options.codec) is not a video encoder", code: AVError.einval)
        }
        codecName = String(cString: codec.pointee.name)
        if let formats = codec.pointee.pix_fmts {
            var i = 0, found = false
            while formats[i] != AV_PIX_FMT_NONE { if formats[i] == AV_PIX_FMT_YUV420P { found = true; break }; i += 1 }
            if !found { throw MediaError("\(subject): the \(codecName) encoder does not take yuv420p pictures", code: AVError.einval) }
        }
        guard let ctx = avcodec_alloc_context3(codec) else {
            throw MediaError("\(subject): avcodec_alloc_context3: out of memory", code: AVError.enomem)
        }
        var owned: UnsafeMutablePointer<AVCodecContext>? = ctx
        ctx.pointee.width = width
        ctx.pointee.height = height
        ctx.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        ctx.pointee.time_base = timeBase
        ctx.pointee.framerate = frameRate
        if streams.sampleAspectRatio.num > 0 && streams.sampleAspectRatio.den > 0 {
            ctx.pointee.sample_aspect_ratio = streams.sampleAspectRatio
        }
        ctx.pointee.color_range = fullRange ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG
        ctx.pointee.colorspace = streams.colorSpace
        ctx.pointee.color_primaries = streams.colorPrimaries
        ctx.pointee.color_trc = streams.colorTransfer
        ctx.pointee.thread_count = Int32(clamping: max(0, options.encoderThreads))
        if globalHeader { ctx.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }

        var dict: OpaquePointer? = nil
        defer { av_dict_free(&dict) }
        // Private options the encoder may not have (unused entries are left in the dictionary and ignored).
        av_dict_set(&dict, "crf", String(options.crf), 0)
        av_dict_set(&dict, "preset", options.preset, 0)
        let params = options.encoderParams ?? VideoWriterOptions.automaticEncoderParams(codec: codecName, preset: options.preset)
        if let problem = VideoWriterOptions.encoderParamsProblem(params, codec: codecName) {
            avcodec_free_context(&owned)
            throw MediaError("\(subject): encoder parameters '\(params)': \(problem)", code: AVError.einval)
        }
        if let key = VideoWriterOptions.encoderParamsOption(codec: codecName), !params.isEmpty {
            av_dict_set(&dict, key, params, 0)
        }
        let opened = avcodec_open2(ctx, codec, &dict)
        if opened < 0 {
            avcodec_free_context(&owned)
            throw MediaError.ffmpeg(opened, subject, "cannot open the \(codecName) encoder (\(width)x\(height), preset \(options.preset), crf \(options.crf))")
        }
        context = owned
    }

    deinit { avcodec_free_context(&context) }

    func copyParameters(to parameters: UnsafeMutablePointer<AVCodecParameters>, subject: String) throws {
        try check(avcodec_parameters_from_context(parameters, context), subject, "cannot describe the video stream")
    }

    /// Sends one picture (nil: end of stream, start draining).
    func send(_ frame: Frame?, subject: String) throws {
        let ret = avcodec_send_frame(context, frame?.pointer)
        if ret == AVError.eof && frame == nil { return }
        try check(ret, subject, "cannot encode (\(codecName))")
    }

    /// Receives one packet into `packet`; false when the encoder needs more input or is drained.
    func receive(into packet: Packet, subject: String) throws -> Bool {
        packet.unref()
        let ret = avcodec_receive_packet(context, packet.pointer)
        if ret == AVError.eagain || ret == AVError.eof { return false }
        try check(ret, subject, "cannot encode (\(codecName))")
        return true
    }
}

@available(*, unavailable)
extension VideoEncoder: Sendable {}
