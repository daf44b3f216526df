import CFFmpeg
#if canImport(Glibc)
import Glibc
#endif

/// Options for opening a video input. A plain value: any thread.
public struct VideoSourceOptions: Sendable {
    /// A path, a URL libavformat understands (rtsp://, http(s)://, udp://, tcp://, …), or "-" for
    /// standard input.
    public var url: String
    /// Decoder threads; 0 = FFmpeg's automatic count (frame + slice threading).
    public var decoderThreads: Int = 0
    /// Seconds the open (connect + probing the streams) may take on network inputs; <= 0: no limit.
    /// Enforced through the interrupt callback, so it covers every protocol.
    public var openTimeout: Double = 10
    /// Seconds one read may wait for data on network inputs before it fails; <= 0: no limit.
    public var readTimeout: Double = 10
    /// RTSP lower transport ("tcp", "udp", "udp_multicast", "http"); nil: FFmpeg's default (UDP, then TCP).
    public var rtspTransport: String? = "tcp"
    /// Flip it from any thread to make a blocked open/read return soon with "interrupted"; may be
    /// shared by several sources (e.g. one per process, set by the SIGINT handler). Create the source
    /// with it, keep a reference, and call `interrupter.interrupt()` even while `VideoSource.init` blocks.
    public var interrupter: Interrupter = Interrupter()
    /// Called (on the reader thread, inside `nextFrame`) with one line per skipped corrupt packet or
    /// frame — after the first 20, only every 100th, with the running count — and for other recoverable
    /// oddities (e.g. a truncated file). Nil: silent (the count is still in `decodeErrors`).
    public var onWarning: (@Sendable (String) -> Void)?
    /// Extra demuxer/protocol options passed to avformat_open_input (e.g. ["probesize": "32"]); they
    /// override the ones netnet sets. A key FFmpeg does not take (still in the dictionary after the
    /// open) makes `VideoSource.init` throw `InputOptionError` naming it.
    public var formatOptions: [String: String] = [:]
    /// The largest frame, in pixels (width × height), the source decodes; a larger one is an error
    /// naming its size, raised before its picture is allocated (the stream's declared size is checked
    /// at open, every decoded frame before its buffer is allocated). <= 0: no limit.
    public var maxFramePixels: Int = VideoSourceOptions.defaultMaxFramePixels

    /// The default `maxFramePixels`: 8192 × 8192 (67 megapixels), which covers 8K UHD (7680 × 4320),
    /// DCI 8K (8192 × 4320) and 48-megapixel photos. A yuv420p frame of that size takes 96 MiB.
    public static let defaultMaxFramePixels = 8192 * 8192

    /// Options with the defaults above for `url`. Any thread.
    public init(url: String) {
        self.url = url
    }
}

/// The parameters of a source's streams that a VideoWriter needs (size, time bases, frame rate,
/// colour description, a copy of the audio codec parameters).
///
/// Immutable after creation: Sendable, any thread. `@unchecked` because it holds an owned C copy of
/// the audio AVCodecParameters, which is only ever read (avcodec_parameters_copy reads its source)
/// after init; it does not reference the demuxer, so it outlives the VideoSource.
public final class SourceStreams: @unchecked Sendable {
    /// The source's name as used in messages (its path/URL). Any thread.
    public let sourceName: String
    /// Picture width of the video stream. Any thread.
    public let width: Int
    /// Picture height of the video stream. Any thread.
    public let height: Int
    /// Average frame rate, if known. Any thread.
    public let frameRate: Double?
    /// Name of the audio codec ("aac", "mp3", …), nil without audio. Any thread.
    public let audioCodecName: String?
    /// True when the source has an audio stream (its packets can be copied). Any thread.
    public var hasAudio: Bool { audio != nil }

    let videoTimeBase: AVRational
    /// avg_frame_rate, else r_frame_rate; {0, 1} when unknown.
    let frameRateQ: AVRational
    let sampleAspectRatio: AVRational
    let pixelFormat: AVPixelFormat
    let colorRange: AVColorRange
    let colorSpace: AVColorSpace
    let colorPrimaries: AVColorPrimaries
    let colorTransfer: AVColorTransferCharacteristic
    /// Start of the input (AVFormatContext.start_time, microseconds); nil when unknown.
    let startTime: Int64?
    let audio: CodecParameters?
    let audioTimeBase: AVRational
    /// The video stream's display matrix (rotation/flip players apply), 9 values, if it has one.
    let displayMatrix: [Int32]?

    init(sourceName: String, width: Int, height: Int, frameRateQ: AVRational, videoTimeBase: AVRational,
         sampleAspectRatio: AVRational, pixelFormat: AVPixelFormat, colorRange: AVColorRange, colorSpace: AVColorSpace,
         colorPrimaries: AVColorPrimaries, colorTransfer: AVColorTransferCharacteristic, startTime: Int64?,
         audio: CodecParameters?, audioTimeBase: AVRational, displayMatrix: [Int32]?) {
        self.displayMatrix = displayMatrix
        self.sourceName = sourceName
        self.width = width
        self.height = height
        self.frameRateQ = frameRateQ
        self.frameRate = frameRateQ.num > 0 && frameRateQ.den > 0 ? av_q2d(frameRateQ) : nil
        self.videoTimeBase = videoTimeBase
        self.sampleAspectRatio = sampleAspectRatio
        self.pixelFormat = pixelFormat
        self.colorRange = colorRange
        self.colorSpace = colorSpace
        self.colorPrimaries = colorPrimaries
        self.colorTransfer = colorTransfer
        self.startTime = startTime
        self.audio = audio
        self.audioCodecName = audio?.codecName
        self.audioTimeBase = audioTimeBase
    }
}

/// A demuxer + video decoder for one input (file, URL or standard input).
///
/// One thread at a time (the reader thread): create it there, call `nextFrame` there, and let it go
/// there. Exception: `interrupt()` — and `options.interrupter.interrupt()`, which works even while
/// `init` is still blocked opening a network input — may be called from any thread.
public final class VideoSource {
    /// The options it was opened with. Reader thread.
    public let options: VideoSourceOptions
    /// Name used in messages: the URL/path, or "-" for standard input. Reader thread.
    public let name: String
    /// Everything a VideoWriter needs to know about the streams. Reader thread (the value is Sendable:
    /// hand it to the writer thread).
    public let streams: SourceStreams

    private let ioGuard: IOGuard
    private let input: MediaInput
    private let decoder: VideoDecoder
    private let audioStreamIndex: Int32?
    private let packet: Packet
    private let audioScratch = AudioPacket()
    private let isNetwork: Bool
    private let videoTimeBase: AVRational
    private let videoStreamStart: Int64
    private var packetPending = false   // `packet` holds a video packet the decoder refused (EAGAIN)
    private var draining = false        // input exhausted, decoder told (send(nil))
    private var ended = false
    private var warningsEmitted = 0

    /// Opens the input, finds its best video stream (and best audio stream) and opens the decoder.
    /// Blocks up to `options.openTimeout` on network inputs; `options.interrupter` aborts it.
    /// Throws MediaError naming the URL: "URL: No such file or directory", "URL: Connection refused",
    /// "URL: Invalid data found when processing input", "URL: no video stream", "URL: interrupted",
    /// "URL: timed out after 10 s while opening", …, and `InputOptionError` for a key of
    /// `options.formatOptions` that FFmpeg did not take. Call on the reader thread.
    public init(options: VideoSourceOptions) throws {
        self.options = options
        // Every message names the input without its credentials; only FFmpeg gets them.
        let url = Redaction.redact(options.url)
        let isStdin = options.url == "-"
        let openURL = isStdin ? "pipe:0" : options.url
        name = url
        let scheme = Self.scheme(of: openURL)
        let isNetwork = scheme.map { !["file", "pipe", "fd", "data", "subfile", "cache", "concat", "crypto"].contains($0) } ?? false

        self.isNetwork = isNetwork
        var formatOptions: [String: String] = [:]
        if isNetwork {
            if options.readTimeout > 0 {
                formatOptions["rw_timeout"] = String(Int64(options.readTimeout * 1_000_000))   // generic URLContext option, µs
            }
            if scheme == "udp" {
                formatOptions["overrun_nonfatal"] = "1"   // a full receive buffer drops data instead of ending the input
            }
            if scheme == "rtsp" || scheme == "rtsps" {
                if let transport = options.rtspTransport { formatOptions["rtsp_transport"] = transport }
                if options.readTimeout > 0 { formatOptions["timeout"] = String(Int64(options.readTimeout * 1_000_000)) }   // rtsp: socket I/O, µs
            }
        }
        for (key, value) in options.formatOptions { formatOptions[key] = value }

        // A FIFO named by its path is a pipe too (stat does not open it, so it cannot block).
        var fileInfo = stat()
        let isFIFOPath = (scheme == nil || scheme == "file")
            && stat(scheme == "file" ? String(openURL.dropFirst(5)) : openURL, &fileInfo) == 0
            && (fileInfo.st_mode & S_IFMT) == S_IFIFO
        isPipe = isStdin || scheme == "pipe" || scheme == "fd" || isFIFOPath

        let ioGuard = IOGuard(interrupter: options.interrupter)
        self.ioGuard = ioGuard
        if options.interrupter.isInterrupted { throw MediaError("\(url): interrupted", code: netnet_averror_exit()) }
        ioGuard.arm(seconds: isNetwork ? options.openTimeout : nil)
        defer { ioGuard.disarm() }
        let maxPixels = max(0, options.maxFramePixels)
        let input: MediaInput
        do {
            input = try MediaInput(url: openURL, options: formatOptions, ioGuard: ioGuard, name: url, maxPixels: maxPixels)
        } catch let error as MediaError {
            throw Self.explain(error, guardReason: ioGuard.reason, subject: url, while: "while opening",
                               timeout: options.openTimeout)
        }
        self.input = input
        // A key of the caller's that FFmpeg did not take is not an option of this input. (netnet's
        // own keys are left out: `rw_timeout` means nothing to a demuxer without a protocol, RTSP's.)
        let unknown = input.unusedOptions.filter { options.formatOptions[$0] != nil }
        if !unknown.isEmpty {
            let demuxer = input.formatName.split(separator: ",").first.map(String.init) ?? "?"
            throw InputOptionError(input: url, keys: unknown, demuxer: demuxer, protocolName: input.protocolName)
        }
        let videoIndex = try input.bestVideoStreamIndex()
        let declared = input.pictureSize(ofStream: videoIndex)
        if maxPixels > 0, declared.0 > 0, declared.1 > 0, declared.0 * declared.1 > maxPixels {
            throw MediaError("\(url): the video is \(declared.0)x\(declared.1) (\(declared.0 * declared.1) pixels), over the limit of \(maxPixels) pixels per frame",
                             code: netnet_averror_erange())
        }
        decoder = try VideoDecoder(input: input, streamIndex: videoIndex, threadCount: Int32(clamping: max(0, options.decoderThreads)),
                                   maxPixels: maxPixels)
        audioStreamIndex = input.bestAudioStreamIndex(relatedTo: videoIndex)
        packet = try Packet()

        // Stream facts.
        let (tb, rate, sar, start, size, format, color) = input.withStream(videoIndex) { st in
            let par = st.pointee.codecpar!.pointee
            var rate = st.pointee.avg_frame_rate
            if rate.num <= 0 || rate.den <= 0 { rate = st.pointee.r_frame_rate }
            if rate.num <= 0 || rate.den <= 0 { rate = AVRational(num: 0, den: 1) }
            var sar = par.sample_aspect_ratio
            if sar.num <= 0 || sar.den <= 0 { sar = st.pointee.sample_aspect_ratio }
            return (st.pointee.time_base, rate, sar, st.pointee.start_time, (Int(par.width), Int(par.height)),
                    AVPixelFormat(rawValue: par.format), (par.color_range, par.color_space, par.color_primaries, par.color_trc))
        }
        videoTimeBase = tb
        let formatStart = input.withContext { $0.pointee.start_time }
        if start != netnet_nopts_value() {
            videoStreamStart = start
        } else if formatStart != netnet_nopts_value() {
            videoStreamStart = av_rescale_q(formatStart, AVRational(num: 1, den: AV_TIME_BASE), tb)
        } else {
            videoStreamStart = 0
        }
        var audioCopy: CodecParameters? = nil
        var audioTB = AVRational(num: 1, den: 1)
        if let audioStreamIndex {
            audioCopy = try input.withCodecParameters(ofStream: audioStreamIndex) { try CodecParameters(copying: $0, subject: url) }
            audioTB = input.timeBase(ofStream: audioStreamIndex)
        }
        let matrix: [Int32]? = input.withStream(videoIndex) { st in
            var size = 0
            guard let data = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size), size >= 36 else { return nil }
            return (0..<9).map { i in UnsafeRawPointer(data).loadUnaligned(fromByteOffset: 4 * i, as: Int32.self) }
        }
        streams = SourceStreams(sourceName: url, width: size.0, height: size.1, frameRateQ: rate, videoTimeBase: tb,
                                sampleAspectRatio: sar, pixelFormat: format, colorRange: color.0, colorSpace: color.1,
                                colorPrimaries: color.2, colorTransfer: color.3,
                                startTime: formatStart != netnet_nopts_value() ? formatStart : nil,
                                audio: audioCopy, audioTimeBase: audioTB, displayMatrix: matrix)
        let durationSeconds: Double? = input.withStream(videoIndex) { st in
            if st.pointee.duration > 0 && st.pointee.duration != netnet_nopts_value() {
                return Double(st.pointee.duration) * av_q2d(st.pointee.time_base)
            }
            let d = input.withContext { $0.pointee.duration }
            return d > 0 && d != netnet_nopts_value() ? Double(d) / Double(AV_TIME_BASE) : nil
        }
        duration = durationSeconds
        let nbFrames = input.withStream(videoIndex) { Int($0.pointee.nb_frames) }
        if nbFrames > 0 {
            estimatedFrameCount = nbFrames
        } else if let durationSeconds, let fps = streams.frameRate {
            estimatedFrameCount = Int((durationSeconds * fps).rounded())
        } else {
            estimatedFrameCount = nil
        }
        let httpLike = scheme.map { ["http", "https", "ftp", "sftp", "hls"].contains($0) } ?? false
        isLive = isStdin || scheme == "pipe" || scheme == "fd" || (isNetwork && (!httpLike || durationSeconds == nil))
    }

    /// Picture width of the video stream. Reader thread (the value never changes).
    public var width: Int { streams.width }
    /// Picture height of the video stream. Reader thread (the value never changes).
    public var height: Int { streams.height }
    /// Average frame rate, if known. Reader thread.
    public var frameRate: Double? { streams.frameRate }
    /// Duration in seconds (video stream's, else the container's), if known. Reader thread.
    public let duration: Double?
    /// The stream's frame count from the container (nb_frames), else duration × rate, rounded; nil when
    /// neither is known (live inputs). For progress display only. Reader thread.
    public let estimatedFrameCount: Int?
    /// True for network protocols other than finite HTTP/FTP files, and for pipes/standard input: the
    /// input will not wait for a slow consumer (the pipeline should drop frames rather than block). Reader thread.
    public let isLive: Bool
    /// True for standard input ("-"), `pipe:N`, `fd:` and a path that names a FIFO: a reader whose
    /// writer waits while netnet is busy, so nothing is lost by blocking (unlike a camera, which
    /// goes on sending). `isLive` is also true for the URL forms; the pipeline's default policy is
    /// `latest` only for live inputs that are not pipes. Reader thread.
    public let isPipe: Bool
    /// True when the input has an audio stream (its packets go to `nextFrame`'s `audioSink`). Reader thread.
    public var hasAudio: Bool { audioStreamIndex != nil }
    /// Name of the video decoder ("h264", "mpeg4", …). Reader thread.
    public var codecName: String { decoder.codecName }

    /// Corrupt packets and frames skipped so far (never thrown). Reader thread.
    public private(set) var decodeErrors = 0
    /// Frames returned by `nextFrame` so far. Reader thread.
    public private(set) var framesDecoded = 0

    /// Any thread: makes a blocked open/read return soon (≤ ~0.1 s on network protocols) with an
    /// "interrupted" error, and every later read too (used on SIGINT/SIGTERM). Sets
    /// `options.interrupter`, so every source sharing that Interrupter stops.
    ///
    /// VideoSource is not Sendable; to interrupt from another thread, keep `options.interrupter`
    /// (which is) and call its `interrupt()`. Standard input and local files are not network
    /// reads: a read blocked on a pipe returns when the pipe delivers data or closes.
    public func interrupt() {
        options.interrupter.interrupt()
    }

    /// Decodes the next video frame into `frame` (reused; its previous content is released). Audio
    /// packets read on the way are handed to `audioSink` in read order (nil: dropped); the packet is
    /// valid only during the call — move it (`AudioPacket.move(to:)`) to keep it. Returns false at the
    /// end of the input (and on every later call).
    ///
    /// A corrupt packet or frame is skipped and counted in `decodeErrors` (reported through
    /// `options.onWarning`), never thrown; a truncated file ends cleanly. Errors that end the input
    /// throw MediaError naming the URL: I/O errors, "URL: timed out: no data for 10 s",
    /// "URL: interrupted". Reader thread.
    public func nextFrame(into frame: VideoFrame, audioSink: ((AudioPacket) -> Void)?) throws -> Bool {
        frame.reset()
        if ended { return false }
        var receiveErrorsInARow = 0
        var readErrorsInARow = 0
        while true {
            // 1. A frame the decoder already has?
            let got: VideoDecoder.Receive
            do {
                got = try decoder.receive(into: frame.frame)
                receiveErrorsInARow = 0
            } catch let error as MediaError {
                try checkFrameLimit()
                receiveErrorsInARow += 1
                skipped("cannot decode a frame (\(MediaError.ffmpegMessage(for: error.code)))")
                if receiveErrorsInARow > 1000 {
                    ended = true
                    throw MediaError("\(name): the \(decoder.codecName) decoder keeps failing: \(MediaError.ffmpegMessage(for: error.code))", code: error.code)
                }
                continue
            }
            switch got {
            case .frame:
                if frame.frame.isCorrupt {
                    skipped("skipped a corrupt frame")
                    frame.frame.unref()
                    continue
                }
                let best = frame.frame.pointer.pointee.best_effort_timestamp
                frame.pts = best != netnet_nopts_value() ? best : nil
                frame.index = framesDecoded
                frame.timeBaseNum = videoTimeBase.num
                frame.timeBaseDen = videoTimeBase.den
                frame.streamStart = videoStreamStart
                framesDecoded += 1
                return true
            case .endOfStream:
                try checkFrameLimit()   // frame threads report a refused frame only as a missing one
                ended = true
                return false
            case .needsInput:
                if draining {   // drained but no EOF yet: should not happen; treat as the end
                    try checkFrameLimit()
                    ended = true
                    return false
                }
            }

            // 2. A packet the decoder refused earlier? (Never read over it.)
            if packetPending {
                if try sendPending() { continue }
                // The decoder wants neither input nor output: against the API contract; drop the packet
                // rather than spin.
                packetPending = false
                packet.unref()
                skipped("the decoder refused a packet")
                continue
            }

            // 3. Read the next packet.
            ioGuard.arm(seconds: isNetwork ? options.readTimeout : nil)
            let ret = input.readRaw(into: packet)
            ioGuard.disarm()
            if ioGuard.reason == .interrupted {
                // A stop request cut this read short: whatever it returned (often a truncated
                // packet flagged corrupt) is not damage in the input. Drop it and stop.
                packet.unref()
                ended = true
                throw MediaError("\(name): interrupted", code: netnet_averror_exit())
            }
            if ret == AVError.eof || (ret < 0 && ret != AVError.eagain && input.reachedEndOfData && ioGuard.reason == .none) {
                if ret != AVError.eof {
                    warn("\(name): input ends early (\(MediaError.ffmpegMessage(for: ret))); truncated?")
                }
                draining = true
                do { _ = try decoder.send(nil) } catch {}
                continue
            }
            if ret == AVError.eagain {   // only non-blocking demuxers say "try again"
                av_usleep(1000)
                continue
            }
            if ret < 0 {
                switch ioGuard.reason {
                case .interrupted:
                    ended = true
                    throw MediaError("\(name): interrupted", code: netnet_averror_exit())
                case .timedOut:
                    ended = true
                    throw MediaError("\(name): timed out: no data for \(Self.seconds(options.readTimeout))", code: netnet_averror_etimedout())
                case .none:
                    if ret == netnet_averror_exit() {   // someone else's interrupt callback semantics; still an interrupt
                        ended = true
                        throw MediaError("\(name): interrupted", code: ret)
                    }
                }
                if ret == AVError.invalidData && readErrorsInARow < 1000 {
                    readErrorsInARow += 1
                    skipped("skipped unreadable data (\(MediaError.ffmpegMessage(for: ret)))")
                    continue
                }
                ended = true
                throw MediaError.ffmpeg(ret, name, "read error")
            }
            readErrorsInARow = 0
            let index = packet.streamIndex
            if index == decoder.streamIndex {
                if (packet.pointer.pointee.flags & AV_PKT_FLAG_CORRUPT) != 0 {
                    // Damaged in transit (e.g. MPEG-TS continuity errors): still decoded, since the decoder
                    // conceals what it can; frames it cannot repair come out flagged and are skipped below.
                    skipped("damaged packet from the demuxer (decoding it anyway)")
                }
                packetPending = true
                _ = try sendPending()
            } else if let audioStreamIndex, index == audioStreamIndex, let audioSink {
                av_packet_move_ref(audioScratch.packet.pointer, packet.pointer)
                audioScratch.timeBaseNum = streams.audioTimeBase.num
                audioScratch.timeBaseDen = streams.audioTimeBase.den
                audioSink(audioScratch)
                audioScratch.reset()
            }
        }
    }

    /// Sends the pending video packet. Returns true when it was consumed (accepted or skipped as
    /// corrupt), false when the decoder is full (receive first, then send again).
    private func sendPending() throws -> Bool {
        do {
            if try decoder.send(packet) {
                packetPending = false
                packet.unref()
                return true
            }
            return false
        } catch let error as MediaError {
            packetPending = false
            packet.unref()
            try checkFrameLimit()
            skipped("skipped a corrupt packet (\(MediaError.ffmpegMessage(for: error.code)))")
            return true
        }
    }

    /// Throws (and ends the input) when the decoder refused a frame for being over `maxFramePixels`.
    private func checkFrameLimit() throws {
        guard let size = decoder.refusedFrameSize else { return }
        ended = true
        throw VideoDecoder.limitError("\(name): frame \(framesDecoded)", width: size.width, height: size.height,
                                      maxPixels: decoder.maxPixels)
    }

    private func skipped(_ what: String) {
        decodeErrors += 1
        let n = decodeErrors
        if n <= 20 {
            warn("\(name): frame \(framesDecoded): \(what)")
        } else if n % 100 == 0 {
            warn("\(name): frame \(framesDecoded): \(what) (\(n) decode errors so far)")
        }
    }

    private func warn(_ line: String) {
        warningsEmitted += 1
        options.onWarning?(line)
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    /// The scheme of "scheme://…" or "scheme:…" (lowercased) for protocol URLs; nil for plain paths.
    static func scheme(of url: String) -> String? {
        guard let colon = url.firstIndex(of: ":") else { return nil }
        let scheme = url[..<colon]
        guard scheme.count >= 2, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }),
              scheme.first!.isLetter else { return nil }   // "C:\…" and relative paths stay paths
        return scheme.lowercased()
    }

    /// Rewrites an open/read failure caused by the interrupt callback into "interrupted" / "timed out".
    static func explain(_ error: MediaError, guardReason: IOGuard.Reason, subject: String, while doing: String,
                        timeout: Double) -> MediaError {
        switch guardReason {
        case .interrupted: return MediaError("\(subject): interrupted \(doing)", code: netnet_averror_exit())
        case .timedOut: return MediaError("\(subject): timed out after \(seconds(timeout)) \(doing)", code: netnet_averror_etimedout())
        case .none: return error
        }
    }
}

@available(*, unavailable, message: "VideoSource owns a demuxer and decoder: create and use it on one thread; interrupt it through options.interrupter")
extension VideoSource: Sendable {}
