import CFFmpeg

/// Writes a BGR image as a PNG or JPEG (by extension) through FFmpeg's encoders — used by tests and later by snapshots.
///
/// Stateless: each call owns its own FFmpeg objects, so any thread, concurrently (different paths).
public enum ImageEncoder {
    /// Writes `image` to `path`: ".png" → lossless PNG (rgb24); ".jpg"/".jpeg" → baseline JPEG,
    /// full-range 4:2:0, high quality (qscale `jpegQuality`, 2 by default; 1 best … 31 worst).
    /// The file is created or truncated. Throws MediaError (unsupported extension, empty image,
    /// encoder or I/O failure, e.g. "path: No such file or directory" for a missing folder). Any thread.
    public static func write(_ image: BGRImage, to path: String) throws {
        try write(image, to: path, jpegQuality: 2)
    }

    /// Same as `write(_:to:)` with an explicit JPEG qscale (1…31, lower is better; ignored for PNG). Any thread.
    public static func write(_ image: BGRImage, to path: String, jpegQuality: Int) throws {
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            throw MediaError("\(path): cannot write an empty or inconsistent \(image.width)x\(image.height) image", code: AVError.einval)
        }
        let ext = path.split(separator: "/").last.flatMap { name -> Substring? in
            guard let dot = name.lastIndex(of: ".") else { return nil }
            return name[name.index(after: dot)...]
        }?.lowercased() ?? ""
        let codecID: AVCodecID, pixelFormat: AVPixelFormat
        switch ext {
        case "png": (codecID, pixelFormat) = (AV_CODEC_ID_PNG, AV_PIX_FMT_RGB24)
        case "jpg", "jpeg": (codecID, pixelFormat) = (AV_CODEC_ID_MJPEG, AV_PIX_FMT_YUV420P)
        default:
            throw MediaError("\(path): unsupported image extension \"\(ext)\" (use .png, .jpg or .jpeg)", code: AVError.einval)
        }
        let jpeg = codecID == AV_CODEC_ID_MJPEG
        let quality = Int32(min(max(jpegQuality, 1), 31))

        // BGRImage → owned BGR24 frame → owned frame in the encoder's format.
        let source = try Frame()
        try source.allocate(width: Int32(image.width), height: Int32(image.height), format: AV_PIX_FMT_BGR24, subject: path)
        let (data, linesize) = source.plane(0)
        guard let data else { throw MediaError("\(path): no picture buffer", code: AVError.enomem) }
        let rowBytes = image.width * 3
        image.pixels.withUnsafeBufferPointer { buffer in
            for y in 0..<image.height {
                (data + y * linesize).update(from: buffer.baseAddress! + y * rowBytes, count: rowBytes)
            }
        }
        let converter = try FrameConverter(outputFormat: pixelFormat, flags: SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP,
                                           outputFullRange: jpeg)
        try converter.convert(source, subject: path)
        let picture = converter.output
        picture.pointer.pointee.pts = 0
        if jpeg { picture.pointer.pointee.quality = quality * FF_QP2LAMBDA }

        let encoder = try ImageEncoderContext(codecID: codecID, width: Int32(image.width), height: Int32(image.height),
                                              pixelFormat: pixelFormat, jpegQuality: jpeg ? quality : nil, subject: path)
        let packet = try Packet()
        let output = try OutputFile(path: path)
        try encoder.encode(picture, packet: packet, into: output)
        try output.close()
    }
}

/// Owns an encoder AVCodecContext for one still picture. Not thread-safe.
final class ImageEncoderContext {
    private var context: UnsafeMutablePointer<AVCodecContext>?
    private let subject: String

    init(codecID: AVCodecID, width: Int32, height: Int32, pixelFormat: AVPixelFormat, jpegQuality: Int32?, subject: String) throws {
        self.subject = subject
        guard let codec = avcodec_find_encoder(codecID) else {
            throw MediaError("\(subject): no \(String(cString: avcodec_get_name(codecID))) encoder in this FFmpeg build",
                             code: AVError.encoderNotFound)
        }
        guard let ctx = avcodec_alloc_context3(codec) else {
            throw MediaError("\(subject): avcodec_alloc_context3: out of memory", code: AVError.enomem)
        }
        ctx.pointee.width = width
        ctx.pointee.height = height
        ctx.pointee.pix_fmt = pixelFormat
        ctx.pointee.time_base = AVRational(num: 1, den: 25)
        ctx.pointee.thread_count = 1
        if let jpegQuality {
            ctx.pointee.color_range = AVCOL_RANGE_JPEG   // full-range yuv420p: what mjpeg wants instead of the deprecated yuvj420p
            ctx.pointee.flags |= AV_CODEC_FLAG_QSCALE
            ctx.pointee.global_quality = jpegQuality * FF_QP2LAMBDA
        }
        var owned: UnsafeMutablePointer<AVCodecContext>? = ctx
        // PNG: predict each row from its neighbours (Paeth) before deflating; FFmpeg's default, no
        // prediction, makes camera pictures a third larger for the same pixels.
        var options: OpaquePointer? = nil
        defer { av_dict_free(&options) }
        if codecID == AV_CODEC_ID_PNG { av_dict_set(&options, "pred", "paeth", 0) }
        let opened = avcodec_open2(ctx, codec, &options)
        if opened < 0 {
            avcodec_free_context(&owned)
            throw MediaError.ffmpeg(opened, subject, "cannot open the \(String(cString: codec.pointee.name)) encoder")
        }
        context = owned
    }

    deinit { avcodec_free_context(&context) }

    /// Encodes one picture, drains the encoder and writes every packet to `output`.
    func encode(_ frame: Frame, packet: Packet, into output: OutputFile) throws {
        try encode(frame, packet: packet) { _ in } write: { try output.write($0) }
    }

    /// Encodes one picture, drains the encoder and hands each packet's bytes to `collect`.
    func encode(_ frame: Frame, packet: Packet, collect: (UnsafeBufferPointer<UInt8>) -> Void) throws {
        try encode(frame, packet: packet, collect: collect) { _ in }
    }

    private func encode(_ frame: Frame, packet: Packet, collect: (UnsafeBufferPointer<UInt8>) -> Void,
                        write: (Packet) throws -> Void) throws {
        try check(avcodec_send_frame(context, frame.pointer), subject, "cannot encode")
        try check(avcodec_send_frame(context, nil), subject, "cannot finish encoding")
        var wrote = false
        while true {
            packet.unref()
            let ret = avcodec_receive_packet(context, packet.pointer)
            if ret == AVError.eof { break }
            try check(ret, subject, "cannot encode")
            if let data = packet.pointer.pointee.data, packet.pointer.pointee.size > 0 {
                collect(UnsafeBufferPointer(start: data, count: Int(packet.pointer.pointee.size)))
            }
            try write(packet)
            wrote = true
        }
        packet.unref()
        if !wrote { throw MediaError("\(subject): the encoder produced no data", code: AVError.einval) }
    }
}

@available(*, unavailable)
extension ImageEncoderContext: Sendable {}

/// Owns an AVIOContext opened for writing (avio_open / avio_closep). Not thread-safe.
final class OutputFile {
    private var io: UnsafeMutablePointer<AVIOContext>?
    let path: String

    init(path: String) throws {
        self.path = path
        var io: UnsafeMutablePointer<AVIOContext>? = nil
        try check(avio_open(&io, path, AVIO_FLAG_WRITE), path)
        self.io = io
    }

    deinit { avio_closep(&io) }

    func write(_ packet: Packet) throws {
        guard let io else { throw MediaError("\(path): already closed", code: AVError.einval) }
        let size = packet.pointer.pointee.size
        if size > 0, let bytes = packet.pointer.pointee.data { avio_write(io, bytes, size) }
        if io.pointee.error < 0 { throw MediaError.ffmpeg(io.pointee.error, path, "write error") }
    }

    /// Flushes and closes; reports the first I/O error.
    func close() throws {
        guard io != nil else { return }
        avio_flush(io)
        let pending = io!.pointee.error
        let closed = avio_closep(&io)
        try check(pending, path, "write error")
        try check(closed, path, "cannot close")
    }
}

@available(*, unavailable)
extension OutputFile: Sendable {}
