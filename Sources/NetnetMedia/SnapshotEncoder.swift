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
/// colours (labels are not drawn) and an overlay (a scene's shapes and texts): for
/// `/api/streams/{id}/snapshot.jpg`; and writes such a picture to a PNG or JPEG file (`netnet scene
/// draw`). Owns its converters, the overlay's rasterisation and its text renderer and reuses them
/// while the frame size and format stay the same; the encoder is opened per picture.
/// One thread at a time.
public final class SnapshotEncoder {
    private var converter: FrameConverter?
    private var resizer: FrameConverter?
    /// The `jpeg(width:)` scaler (bilinear: a live picture, not a file to keep).
    private var shrinker: FrameConverter?
    private var overlayRaster: OverlayRaster?
    private var labels: LabelRenderer?
    /// The picture size `labels` was made for, or tried and failed for (then texts are left out).
    private var labelsSize: (width: Int, height: Int)?
    private let fontFile: String

    /// An encoder that draws overlay texts in `fontFile` (default: the annotated video's); nothing
    /// is allocated until the first picture. Any thread.
    public init(fontFile: String = VideoWriterOptions(path: "").fontFile) { self.fontFile = fontFile }

    /// The JPEG bytes of `frame` (full-range 4:2:0, qscale `quality`: 1 best … 31 worst) with
    /// `overlay` drawn and `boxes` (in the frame's pixels) outlined, at full resolution or, with
    /// `width` narrower than the frame, scaled down to it after drawing (the height in proportion,
    /// both even). `frame` is not modified. Throws MediaError for an empty frame or an encoder
    /// failure; a font that cannot be loaded leaves the overlay's texts out rather than failing the
    /// snapshot. Owner thread.
    public func jpeg(_ frame: VideoFrame, boxes: [DrawnBox], overlay: OverlayDrawing? = nil, quality: Int = 4,
                     width: Int? = nil) throws -> [UInt8] {
        var picture = try drawn(frame, boxes: boxes, overlay: overlay, subject: "snapshot", requireTexts: false)
        if let width, width >= 2, Int32(width) < picture.width {
            let outWidth = Int32(width) & ~1
            let outHeight = max(2, Int32((Double(picture.height) * Double(outWidth) / Double(picture.width)).rounded()) & ~1)
            if shrinker == nil {
                shrinker = try FrameConverter(outputFormat: AV_PIX_FMT_YUV420P, flags: SWS_BILINEAR, outputFullRange: true)
            }
            try shrinker!.convert(picture, width: outWidth, height: outHeight, subject: "snapshot")
            picture = shrinker!.output
            picture.pointer.pointee.pts = 0
            picture.pointer.pointee.color_range = AVCOL_RANGE_JPEG
        }
        let q = Int32(min(max(quality, 1), 31))
        picture.pointer.pointee.quality = q * FF_QP2LAMBDA
        let encoder = try ImageEncoderContext(codecID: AV_CODEC_ID_MJPEG, width: picture.width, height: picture.height,
                                              pixelFormat: AV_PIX_FMT_YUV420P, jpegQuality: q, subject: "snapshot")
        let packet = try Packet()
        var bytes: [UInt8] = []
        try encoder.encode(picture, packet: packet) { data in bytes.append(contentsOf: data) }
        return bytes
    }

    /// Writes `frame` with `overlay` and `boxes` drawn to `path`, by extension: ".png" (lossless
    /// rgb24) or ".jpg"/".jpeg" (full-range 4:2:0, qscale 2), scaled to `width` pixels wide (the
    /// height in proportion) when given; drawn at full size first, so the overlay scales with the
    /// picture. Creates or truncates the file. Throws MediaError naming `path` (unsupported
    /// extension, empty frame, the font, encoder or I/O failure). Owner thread.
    public func write(_ frame: VideoFrame, boxes: [DrawnBox], overlay: OverlayDrawing?, to path: String, width: Int? = nil) throws {
        let ext = path.split(separator: "/").last.flatMap { name -> Substring? in
            guard let dot = name.lastIndex(of: ".") else { return nil }
            return name[name.index(after: dot)...]
        }?.lowercased() ?? ""
        guard ["png", "jpg", "jpeg"].contains(ext) else {
            throw MediaError("\(path): unsupported image extension \"\(ext)\" (use .png, .jpg or .jpeg)", code: AVError.einval)
        }
        let png = ext == "png"
        let picture = try drawn(frame, boxes: boxes, overlay: overlay, subject: path, requireTexts: true)
        var outWidth = picture.width, outHeight = picture.height
        if let width, width > 0, Int32(width) != picture.width {
            outWidth = Int32(width)
            outHeight = max(2, Int32((Double(picture.height) * Double(width) / Double(picture.width)).rounded()))
            if !png { outWidth = max(2, outWidth & ~1); outHeight &= ~1 }
        }
        var encoded = picture
        if png || outWidth != picture.width || outHeight != picture.height {
            if resizer == nil || resizer!.outputFormat != (png ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P) {
                resizer = png
                    ? try FrameConverter(outputFormat: AV_PIX_FMT_RGB24, flags: SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT)
                    : try FrameConverter(outputFormat: AV_PIX_FMT_YUV420P, flags: SWS_BICUBIC | SWS_ACCURATE_RND, outputFullRange: true)
            }
            try resizer!.convert(picture, width: outWidth, height: outHeight, subject: path)
            encoded = resizer!.output
            encoded.pointer.pointee.pts = 0
            if !png { encoded.pointer.pointee.color_range = AVCOL_RANGE_JPEG }
        }
        let quality: Int32 = 2
        if !png { encoded.pointer.pointee.quality = quality * FF_QP2LAMBDA }
        let encoder = try ImageEncoderContext(codecID: png ? AV_CODEC_ID_PNG : AV_CODEC_ID_MJPEG, width: outWidth, height: outHeight,
                                              pixelFormat: png ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P,
                                              jpegQuality: png ? nil : quality, subject: path)
        let packet = try Packet()
        let output = try OutputFile(path: path)
        try encoder.encode(encoded, packet: packet, into: output)
        try output.close()
    }

    /// `frame` converted to full-range 4:2:0 (BT.601) with the overlay's shapes, the boxes and the
    /// overlay's texts drawn; the converter's picture, valid until the next call. Without a usable
    /// font the texts are an error when `requireTexts`, else left out.
    private func drawn(_ frame: VideoFrame, boxes: [DrawnBox], overlay: OverlayDrawing?, subject: String, requireTexts: Bool) throws -> Frame {
        guard !frame.isEmpty, frame.width > 1, frame.height > 1 else {
            throw MediaError("\(subject): no picture to encode", code: AVError.einval)
        }
        if converter == nil {
            converter = try FrameConverter(outputFormat: AV_PIX_FMT_YUV420P, flags: SWS_BILINEAR, outputFullRange: true,
                                           accurateChroma: false)
        }
        let converter = converter!
        try converter.convert(frame.frame, subject: subject)
        let picture = converter.output
        let width = Int(picture.width), height = Int(picture.height)
        picture.pointer.pointee.pts = 0
        picture.pointer.pointee.color_range = AVCOL_RANGE_JPEG
        picture.pointer.pointee.colorspace = AVCOL_SPC_BT470BG
        if let overlay, !overlay.shapes.isEmpty {
            if overlayRaster?.shapes != overlay.shapes || overlayRaster?.width != width || overlayRaster?.height != height {
                overlayRaster = OverlayRaster(overlay.shapes, width: width, height: height, colorSpace: AVCOL_SPC_BT470BG, fullRange: true)
            }
            overlayRaster!.paint(on: picture)
        }
        if !boxes.isEmpty {
            let thickness = VideoWriterOptions.defaultBoxThickness(height: height)
            BoxPainter(thickness: thickness, colorSpace: AVCOL_SPC_BT470BG, fullRange: true).paint(boxes, on: picture)
        }
        if let overlay, overlay.texts.contains(where: { !$0.text.isEmpty }) {
            if labelsSize == nil || labelsSize! != (width, height) {
                labels = nil
                labelsSize = (width, height)
                do {
                    labels = try LabelRenderer(width: Int32(width), height: Int32(height), format: AV_PIX_FMT_YUV420P,
                                               timeBase: AVRational(num: 1, den: 25), sampleAspectRatio: AVRational(num: 1, den: 1),
                                               fontFile: fontFile, fontSize: VideoWriterOptions.defaultFontSize(height: height),
                                               subject: subject)
                } catch {
                    if requireTexts { labelsSize = nil; throw error }
                }
            }
            if let labels {
                try labels.render(overlay.texts.filter { !$0.text.isEmpty }.map { labels.anchor(for: $0) }, on: picture)
                // The filter graph hands back the picture; keep the fields the encoders read.
                picture.pointer.pointee.pts = 0
                picture.pointer.pointee.color_range = AVCOL_RANGE_JPEG
                picture.pointer.pointee.colorspace = AVCOL_SPC_BT470BG
            }
        }
        return picture
    }
}
