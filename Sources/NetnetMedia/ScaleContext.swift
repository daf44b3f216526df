import CFFmpeg

/// Owns one libswscale context (SwsContext, sws_freeContext in deinit) and rebuilds it only when its
/// parameters change, so a steady stream of same-shaped pictures reuses it. Not thread-safe.
final class ScaleContext {
    /// Everything the SwsContext depends on.
    struct Parameters: Equatable {
        var sourceWidth: Int32
        var sourceHeight: Int32
        var sourceFormat: AVPixelFormat
        var outputWidth: Int32
        var outputHeight: Int32
        var outputFormat: AVPixelFormat
        var flags: Int32
        /// Source chroma sample position in 1/256 luma samples (-513: swscale's default).
        var sourceChromaX: Int32 = -513
        var sourceChromaY: Int32 = -513
        /// YUV matrix (SWS_CS_*) and range (1 full, 0 limited) of the source / output; -1 keeps swscale's choice.
        var sourceMatrix: Int32 = -1
        var sourceFullRange: Int32 = -1
        var outputMatrix: Int32 = -1
        var outputFullRange: Int32 = -1
    }

    private var sws: OpaquePointer?
    private(set) var parameters: Parameters?

    deinit { sws_freeContext(sws) }   // NULL-safe

    /// Makes the context match `wanted` (no-op when it already does).
    func configure(_ wanted: Parameters, subject: @autoclosure () -> String) throws {
        if wanted == parameters, sws != nil { return }
        sws_freeContext(sws)
        sws = nil
        parameters = nil
        var error: Int32 = 0
        guard let ctx = netnet_sws_create(wanted.sourceWidth, wanted.sourceHeight, wanted.sourceFormat,
                                          wanted.outputWidth, wanted.outputHeight, wanted.outputFormat,
                                          wanted.flags, wanted.sourceChromaX, wanted.sourceChromaY, &error) else {
            throw MediaError.ffmpeg(error < 0 ? error : AVError.einval, subject(),
                                    "swscale cannot convert \(Self.name(wanted.sourceFormat)) \(wanted.sourceWidth)x\(wanted.sourceHeight) to \(Self.name(wanted.outputFormat)) \(wanted.outputWidth)x\(wanted.outputHeight)")
        }
        sws = ctx
        if wanted.sourceMatrix >= 0 || wanted.sourceFullRange >= 0 || wanted.outputMatrix >= 0 || wanted.outputFullRange >= 0 {
            try check(netnet_sws_set_colorspace(ctx, wanted.sourceMatrix, wanted.sourceFullRange, wanted.outputMatrix, wanted.outputFullRange),
                      subject(), "swscale refused the colour space details")
        }
        parameters = wanted
    }

    /// Scales the configured sourceWidth×sourceHeight region (top-left) of `source` into `output`;
    /// both frames' buffers must be at least that large / the configured output size.
    func scale(_ source: Frame, into output: Frame, subject: @autoclosure () -> String) throws {
        guard let sws, let parameters else { throw MediaError("\(subject()): scaler not configured", code: AVError.einval) }
        precondition(source.width >= parameters.sourceWidth && source.height >= parameters.sourceHeight
                     && output.width >= parameters.outputWidth && output.height >= parameters.outputHeight,
                     "ScaleContext: frame smaller than the configured conversion")
        let ret = netnet_sws_scale_frame(sws, source.pointer, parameters.sourceHeight, output.pointer)
        if ret <= 0 {
            throw MediaError.ffmpeg(ret < 0 ? ret : AVError.einval, subject(),
                                    "sws_scale \(Self.name(parameters.sourceFormat))→\(Self.name(parameters.outputFormat))")
        }
    }

    /// Scales one 8-bit plane (for GRAY8 → GRAY8 contexts).
    func scalePlane(source: UnsafePointer<UInt8>, sourceStride: Int, destination: UnsafeMutablePointer<UInt8>, destinationStride: Int,
                    subject: @autoclosure () -> String) throws {
        guard let sws, let parameters else { throw MediaError("\(subject()): scaler not configured", code: AVError.einval) }
        let ret = netnet_sws_scale_plane(sws, source, Int32(sourceStride), parameters.sourceHeight, destination, Int32(destinationStride))
        if ret <= 0 { throw MediaError.ffmpeg(ret < 0 ? ret : AVError.einval, subject(), "sws_scale (resize)") }
    }

    static func name(_ format: AVPixelFormat) -> String {
        guard let n = av_get_pix_fmt_name(format) else { return "pix_fmt \(format.rawValue)" }
        return String(cString: n)
    }
}

@available(*, unavailable, message: "ScaleContext owns a SwsContext; use it from one thread at a time")
extension ScaleContext: Sendable {}
