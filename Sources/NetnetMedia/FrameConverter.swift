import CFFmpeg

/// Converts decoded frames into one output pixel format (optionally resized), owning its libswscale
/// contexts (ScaleContext) and its destination picture (an owned, aligned AVFrame). Contexts and
/// buffers are reused while the source size, pixel format and colour description and the output
/// size stay the same, so steady-state conversion allocates nothing. Not thread-safe: one thread at a time.
///
/// Colour handling:
/// - the source's YUV matrix (AVFrame.colorspace; unspecified → BT.601, like the ffmpeg CLI) and
///   range (yuvj* formats and AVCOL_RANGE_JPEG → full, otherwise limited; gray is full unless the
///   frame says limited) are passed to swscale explicitly; the deprecated yuvj* formats are mapped
///   to their yuv* twins so swscale does not warn;
/// - chroma-subsampled YUV (4:2:0, 4:2:2, NV12, …) going to RGB is converted in two steps: first
///   the chroma planes are upsampled to 4:4:4 with SWS_BILINEAR at the frame's chroma sample
///   position, then 4:4:4 → RGB (SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT). swscale's one-step
///   path does not interpolate chroma properly (up to ±70 per channel at colour edges against a
///   float bilinear reference); the two-step path is within ±1 of that reference and matches
///   libjpeg-turbo's "fancy upsampling" (djpeg) to ±3 (IDCT rounding), mean 0.09. Odd-sized
///   subsampled pictures are copied into an even-sized buffer first (swscale would otherwise
///   stretch the ceil(W/2) chroma samples over W pixels and drift towards the right/bottom edge).
/// - RGB, palette and gray sources are converted without loss (byte shuffles / palette lookups).
final class FrameConverter {
    /// Pixel format written into `output`.
    let outputFormat: AVPixelFormat
    /// SWS_* flags for the final (or only) conversion step.
    let flags: Int32
    /// For YUV outputs: write full range (JPEG) instead of limited range.
    let outputFullRange: Bool
    /// The converted picture (owned; valid until the next conversion).
    let output: Frame

    private let direct = ScaleContext()
    private let upsample = ScaleContext()      // subsampled YUV → 4:4:4
    private let fromUpsampled = ScaleContext() // 4:4:4 → output
    private let upsampled: Frame               // 4:4:4 intermediate
    private let padded: Frame                  // odd-sized subsampled sources, copied to an even size

    /// Subsampled YUV → RGB in two steps (accurate chroma, see above) or in one swscale call (cheaper;
    /// fine when the picture is also downscaled, which averages chroma anyway).
    let accurateChroma: Bool

    /// `flags`: SWS_* interpolation/accuracy flags for the final step, e.g. SWS_BILINEAR | SWS_ACCURATE_RND.
    /// `accurateChroma: false` converts subsampled YUV to RGB in a single swscale step (no full-size
    /// 4:4:4 intermediate).
    init(outputFormat: AVPixelFormat, flags: Int32, outputFullRange: Bool = false, accurateChroma: Bool = true) throws {
        self.outputFormat = outputFormat
        self.flags = flags
        self.outputFullRange = outputFullRange
        self.accurateChroma = accurateChroma
        self.output = try Frame()
        self.upsampled = try Frame()
        self.padded = try Frame()
    }

    /// Maps the deprecated full-range yuvj* formats to yuv* plus a full-range flag.
    static func dejpeg(_ format: AVPixelFormat) -> (AVPixelFormat, fullRange: Bool) {
        switch format {
        case AV_PIX_FMT_YUVJ420P: return (AV_PIX_FMT_YUV420P, true)
        case AV_PIX_FMT_YUVJ422P: return (AV_PIX_FMT_YUV422P, true)
        case AV_PIX_FMT_YUVJ444P: return (AV_PIX_FMT_YUV444P, true)
        case AV_PIX_FMT_YUVJ440P: return (AV_PIX_FMT_YUV440P, true)
        case AV_PIX_FMT_YUVJ411P: return (AV_PIX_FMT_YUV411P, true)
        default: return (format, false)
        }
    }

    /// Colour model of a pixel format, as far as swscale's colour details are concerned.
    enum Model: Equatable { case yuv(subsampled: Bool, deep: Bool), gray, rgbOrPalette }

    static func model(of format: AVPixelFormat) -> Model {
        guard let desc = av_pix_fmt_desc_get(format) else { return .rgbOrPalette }
        let d = desc.pointee
        if d.flags & UInt64(AV_PIX_FMT_FLAG_RGB) != 0 || d.flags & UInt64(AV_PIX_FMT_FLAG_PAL) != 0 { return .rgbOrPalette }
        if d.nb_components <= 2 { return .gray }
        return .yuv(subsampled: d.log2_chroma_w > 0 || d.log2_chroma_h > 0, deep: d.comp.0.depth > 8)
    }

    static func swsMatrix(_ space: AVColorSpace) -> Int32 {
        switch space {
        case AVCOL_SPC_BT709: return SWS_CS_ITU709
        case AVCOL_SPC_FCC: return SWS_CS_FCC
        case AVCOL_SPC_BT470BG, AVCOL_SPC_SMPTE170M: return SWS_CS_ITU601
        case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M
        case AVCOL_SPC_BT2020_NCL, AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020
        default: return SWS_CS_DEFAULT
        }
    }

    private static func ensure(_ frame: Frame, width: Int32, height: Int32, format: AVPixelFormat, subject: @autoclosure () -> String) throws {
        if frame.width != width || frame.height != height || frame.pixelFormat != format || frame.plane(0).data == nil {
            try frame.allocate(width: width, height: height, format: format, subject: subject())
        } else {
            try check(av_frame_make_writable(frame.pointer), subject(), "cannot get a writable picture")
        }
    }

    /// Converts the whole of `source` into `output`, at width×height (the source size when nil).
    /// `subject` names the input in error messages.
    func convert(_ source: Frame, width: Int32? = nil, height: Int32? = nil, subject: @autoclosure () -> String) throws {
        let sw = source.width, sh = source.height
        let dw = width ?? sw, dh = height ?? sh
        guard sw > 0, sh > 0, dw > 0, dh > 0 else {
            throw MediaError("\(subject()): cannot convert a \(sw)x\(sh) picture to \(dw)x\(dh)", code: AVError.einval)
        }
        let (format, jpegRange) = Self.dejpeg(source.pixelFormat)
        guard format != AV_PIX_FMT_NONE else {
            throw MediaError("\(subject()): decoded picture has no pixel format", code: AVError.einval)
        }
        let sourceModel = Self.model(of: format)
        let outputModel = Self.model(of: outputFormat)

        var p = ScaleContext.Parameters(sourceWidth: sw, sourceHeight: sh, sourceFormat: format,
                                        outputWidth: dw, outputHeight: dh, outputFormat: outputFormat, flags: flags)
        switch sourceModel {
        case .yuv:
            p.sourceMatrix = Self.swsMatrix(source.colorSpace)
            p.sourceFullRange = (jpegRange || source.colorRange == AVCOL_RANGE_JPEG) ? 1 : 0
        case .gray:
            if source.colorRange == AVCOL_RANGE_MPEG { p.sourceFullRange = 0 }
        case .rgbOrPalette:
            break
        }
        // Chroma sample position (1/256 luma sample) for the subsampled directions only; -513 lets
        // swscale use its default (centred, right for JPEG; H.264/MPEG-2 streams say "left").
        var chromaX: Int32 = -513, chromaY: Int32 = -513
        if let desc = av_pix_fmt_desc_get(format),
           avcodec_enum_to_chroma_pos(&chromaX, &chromaY, source.pointer.pointee.chroma_location) >= 0 {
            if desc.pointee.log2_chroma_w == 0 { chromaX = -513 }
            if desc.pointee.log2_chroma_h == 0 { chromaY = -513 }
        } else {
            chromaX = -513; chromaY = -513
        }
        if case .yuv = outputModel {
            p.outputMatrix = SWS_CS_DEFAULT
            p.outputFullRange = outputFullRange ? 1 : 0
        }

        try Self.ensure(output, width: dw, height: dh, format: outputFormat, subject: subject())
        if case .yuv = outputModel { output.pointer.pointee.color_range = outputFullRange ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG }

        if accurateChroma, case .yuv(subsampled: true, let deep) = sourceModel, outputModel == .rgbOrPalette, let desc = av_pix_fmt_desc_get(format) {
            // swscale maps a chroma plane of ceil(W/2) samples onto W pixels by stretching, which
            // drifts by up to a whole chroma sample across an odd-sized picture. So an odd-sized
            // picture is first copied into an even-sized (zero-padded) one; the padding is dropped again
            // in step 2.
            let alignX = Int32(1) << Int32(desc.pointee.log2_chroma_w), alignY = Int32(1) << Int32(desc.pointee.log2_chroma_h)
            let pw = (sw + alignX - 1) / alignX * alignX, ph = (sh + alignY - 1) / alignY * alignY
            var stepSource = source
            if pw != sw || ph != sh {
                if padded.width != pw || padded.height != ph || padded.pixelFormat != source.pixelFormat || padded.plane(0).data == nil {
                    try padded.allocate(width: pw, height: ph, format: source.pixelFormat, subject: subject())   // zero-filled
                }
                netnet_frame_copy_pixels(padded.pointer, source.pointer, source.pixelFormat, sw, sh)
                stepSource = padded
            }
            // Step 1: chroma → 4:4:4 (same range, no matrix), bilinear at the real chroma position.
            let full444 = deep ? netnet_pix_fmt_yuv444p16() : AV_PIX_FMT_YUV444P
            var up = ScaleContext.Parameters(sourceWidth: pw, sourceHeight: ph, sourceFormat: format,
                                             outputWidth: pw, outputHeight: ph, outputFormat: full444,
                                             flags: SWS_BILINEAR | SWS_ACCURATE_RND)
            up.sourceChromaX = chromaX; up.sourceChromaY = chromaY
            up.sourceMatrix = p.sourceMatrix; up.outputMatrix = p.sourceMatrix
            up.sourceFullRange = p.sourceFullRange; up.outputFullRange = p.sourceFullRange
            try upsample.configure(up, subject: subject())
            try Self.ensure(upsampled, width: pw, height: ph, format: full444, subject: subject())
            try upsample.scale(stepSource, into: upsampled, subject: subject())
            // Step 2: the sw×sh part of the 4:4:4 picture → output.
            p.sourceFormat = full444
            p.flags = flags | SWS_FULL_CHR_H_INT
            try fromUpsampled.configure(p, subject: subject())
            try fromUpsampled.scale(upsampled, into: output, subject: subject())
        } else {
            if case .yuv(subsampled: true, _) = sourceModel { p.sourceChromaX = chromaX; p.sourceChromaY = chromaY }
            try direct.configure(p, subject: subject())
            try direct.scale(source, into: output, subject: subject())
        }
    }

    /// Converts `source` to a packed BGR24 `BGRImage` at its own size (requires outputFormat == BGR24).
    func bgrImage(from source: Frame, subject: @autoclosure () -> String) throws -> BGRImage {
        precondition(outputFormat == AV_PIX_FMT_BGR24, "bgrImage needs a BGR24 converter")
        try convert(source, subject: subject())
        let width = Int(output.width), height = Int(output.height)
        let rowBytes = width * 3
        let (data, linesize) = output.plane(0)
        guard let data, linesize >= rowBytes else {
            throw MediaError("\(subject()): converted picture has no data", code: AVError.einval)
        }
        let pixels = [UInt8](unsafeUninitializedCapacity: rowBytes * height) { buffer, count in
            let dst = buffer.baseAddress!
            for y in 0..<height {
                (dst + y * rowBytes).initialize(from: data + y * linesize, count: rowBytes)
            }
            count = rowBytes * height
        }
        return BGRImage(width: width, height: height, pixels: pixels)
    }
}

@available(*, unavailable, message: "FrameConverter owns SwsContexts; use it from one thread at a time")
extension FrameConverter: Sendable {}
