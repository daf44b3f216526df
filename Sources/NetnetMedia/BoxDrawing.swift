import CFFmpeg
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A box to draw: corners in the frame's pixels, and the text drawn above it.
///
/// `label` is drawn as is (the caller formats it, e.g. "person 0.91"); an empty label draws only the
/// rectangle. `classIndex` picks the rectangle's colour from a fixed 20-colour palette (index modulo
/// 20; negative indices use colour 0). A plain value: any thread.
public struct DrawnBox: Sendable, Hashable {
    /// Left edge (pixels from the frame's left; may be outside the frame: it is clipped).
    public var x1: Float
    /// Top edge.
    public var y1: Float
    /// Right edge (the rectangle spans x1…x2 inclusive after rounding).
    public var x2: Float
    /// Bottom edge.
    public var y2: Float
    /// Text drawn just above the box (inside it when there is no room above).
    public var label: String
    /// Class index: picks the colour.
    public var classIndex: Int
    /// Drawn dashed: a box the tracker predicted on a frame without inference.
    public var dashed: Bool

    /// Stores the values as given (corners in any order; they are sorted when drawing). Any thread.
    public init(x1: Float, y1: Float, x2: Float, y2: Float, label: String, classIndex: Int, dashed: Bool = false) {
        self.x1 = x1
        self.y1 = y1
        self.x2 = x2
        self.y2 = y2
        self.label = label
        self.classIndex = classIndex
        self.dashed = dashed
    }

    /// The palette colour (red, green, blue) used for `classIndex`. Any thread.
    public static func colour(forClass classIndex: Int) -> (red: UInt8, green: UInt8, blue: UInt8) {
        let rgb = BoxPainter.palette[classIndex >= 0 ? classIndex % BoxPainter.palette.count : 0]
        return (UInt8(rgb >> 16), UInt8((rgb >> 8) & 0xFF), UInt8(rgb & 0xFF))
    }
}

/// Draws box outlines straight into the Y, U and V planes of an 8-bit YUV 4:2:0 picture.
///
/// Corners are snapped outwards to even luma coordinates and the line thickness is even, so each
/// outline covers whole chroma samples: the luma and chroma edges coincide and no colour bleeds
/// outside the line. Only the outline's pixels are touched (four memset-style fills per plane per box).
/// Stateless apart from its configuration: a value, any thread (the picture belongs to the caller).
struct BoxPainter {
    /// Distinct, saturated colours (0xRRGGBB), the usual detection palette order.
    static let palette: [UInt32] = [
        0xFF3838, 0x2C99A8, 0xFF9D97, 0x48F90A, 0xFFB21D, 0x8438FF, 0xCFD231, 0x00C2FF, 0xFF701F, 0x3DDB86,
        0x344593, 0x92CC17, 0xFF37C7, 0x1A9334, 0x6473FF, 0x00D4BB, 0xCB38FF, 0x0018EC, 0xFF95C8, 0x520085,
    ]

    /// Outline thickness in luma pixels (even, >= 2).
    let thickness: Int
    /// A dashed outline's dash and gap, in luma pixels (even, so luma and chroma dashes coincide).
    static let dash = 8
    /// Palette converted to (Y, Cb, Cr) for the picture's matrix and range.
    let yuv: [(UInt8, UInt8, UInt8)]

    /// `colorSpace` picks the RGB → YUV matrix (BT.709, BT.2020; anything else BT.601); `fullRange`
    /// the range (0…255 instead of 16…235 / 16…240).
    init(thickness: Int, colorSpace: AVColorSpace, fullRange: Bool) {
        self.thickness = max(2, thickness + (thickness & 1))
        yuv = Self.palette.map { Self.yuv($0, colorSpace: colorSpace, fullRange: fullRange) }
    }

    /// `rgb` (0xRRGGBB) as (Y, Cb, Cr) for the picture's matrix (BT.709, BT.2020, SMPTE 240M;
    /// anything else BT.601) and range. Pure.
    static func yuv(_ rgb: UInt32, colorSpace: AVColorSpace, fullRange: Bool) -> (UInt8, UInt8, UInt8) {
        let (kr, kb): (Double, Double)
        switch colorSpace {
        case AVCOL_SPC_BT709: (kr, kb) = (0.2126, 0.0722)
        case AVCOL_SPC_BT2020_NCL, AVCOL_SPC_BT2020_CL: (kr, kb) = (0.2627, 0.0593)
        case AVCOL_SPC_SMPTE240M: (kr, kb) = (0.212, 0.087)
        default: (kr, kb) = (0.299, 0.114)
        }
        let r = Double(rgb >> 16) / 255, g = Double((rgb >> 8) & 0xFF) / 255, b = Double(rgb & 0xFF) / 255
        let y = kr * r + (1 - kr - kb) * g + kb * b
        let pb = (b - y) / (2 * (1 - kb)), pr = (r - y) / (2 * (1 - kr))
        func byte(_ v: Double) -> UInt8 { UInt8(min(max(v.rounded(), 0), 255)) }
        if fullRange {
            return (byte(255 * y), byte(128 + 255 * pb), byte(128 + 255 * pr))
        }
        return (byte(16 + 219 * y), byte(128 + 224 * pb), byte(128 + 224 * pr))
    }

    /// The integer rectangle (inclusive luma corners, snapped to even/odd) a box covers inside a
    /// width×height picture; nil when it lies entirely outside or has non-finite corners.
    static func rectangle(_ box: DrawnBox, width: Int, height: Int) -> (x1: Int, y1: Int, x2: Int, y2: Int)? {
        guard box.x1.isFinite, box.y1.isFinite, box.x2.isFinite, box.y2.isFinite, width >= 2, height >= 2 else { return nil }
        let left = min(box.x1, box.x2), right = max(box.x1, box.x2)
        let top = min(box.y1, box.y2), bottom = max(box.y1, box.y2)
        if right < 0 || bottom < 0 || left > Float(width - 1) || top > Float(height - 1) { return nil }
        func clampInt(_ v: Float, _ hi: Int) -> Int { Int(min(max(v.rounded(), 0), Float(hi))) }
        let evenWidth = width & ~1, evenHeight = height & ~1
        let x1 = clampInt(left, evenWidth - 1) & ~1, y1 = clampInt(top, evenHeight - 1) & ~1
        let x2 = clampInt(right, evenWidth - 1) | 1, y2 = clampInt(bottom, evenHeight - 1) | 1
        return (x1, y1, x2, y2)
    }

    /// Draws the outlines of `boxes` on `frame` (YUV 4:2:0, 8-bit, writable).
    func paint(_ boxes: [DrawnBox], on frame: Frame) {
        let width = Int(frame.width), height = Int(frame.height)
        let (yData, yStride) = frame.plane(0)
        let (uData, uStride) = frame.plane(1)
        let (vData, vStride) = frame.plane(2)
        guard let yData, let uData, let vData else { return }
        let chromaWidth = (width + 1) / 2, chromaHeight = (height + 1) / 2
        for box in boxes {
            guard let r = Self.rectangle(box, width: width, height: height) else { continue }
            let colour = yuv[box.classIndex >= 0 ? box.classIndex % yuv.count : 0]
            let t = min(thickness, r.x2 - r.x1 + 1, r.y2 - r.y1 + 1)
            let dash = box.dashed ? Self.dash : 0
            Self.outline(yData, stride: yStride, planeWidth: width, planeHeight: height,
                         x1: r.x1, y1: r.y1, x2: r.x2, y2: r.y2, thickness: t, dash: dash, value: colour.0)
            let c = (x1: r.x1 / 2, y1: r.y1 / 2, x2: r.x2 / 2, y2: r.y2 / 2, t: max(1, t / 2))
            Self.outline(uData, stride: uStride, planeWidth: chromaWidth, planeHeight: chromaHeight,
                         x1: c.x1, y1: c.y1, x2: c.x2, y2: c.y2, thickness: c.t, dash: dash / 2, value: colour.1)
            Self.outline(vData, stride: vStride, planeWidth: chromaWidth, planeHeight: chromaHeight,
                         x1: c.x1, y1: c.y1, x2: c.x2, y2: c.y2, thickness: c.t, dash: dash / 2, value: colour.2)
        }
    }

    /// A hollow rectangle x1…x2 × y1…y2 (inclusive) with lines `thickness` wide, inside the
    /// rectangle; with `dash` > 0, dashes and gaps `dash` long counted from the top-left corner.
    private static func outline(_ plane: UnsafeMutablePointer<UInt8>, stride: Int, planeWidth: Int, planeHeight: Int,
                                x1: Int, y1: Int, x2: Int, y2: Int, thickness: Int, dash: Int = 0, value: UInt8) {
        let x2 = min(x2, planeWidth - 1), y2 = min(y2, planeHeight - 1)
        guard x1 <= x2, y1 <= y2 else { return }
        let w = x2 - x1 + 1, t = max(1, thickness)
        for y in y1...y2 {
            let row = plane + y * stride
            if dash > 0 {
                if y < y1 + t || y > y2 - t {
                    var x = x1
                    while x <= x2 {
                        (row + x).update(repeating: value, count: min(dash, x2 - x + 1))
                        x += 2 * dash
                    }
                } else if (y - y1) / dash % 2 == 0 {
                    (row + x1).update(repeating: value, count: min(t, w))
                    let right = max(x1, x2 - t + 1)
                    (row + right).update(repeating: value, count: x2 - right + 1)
                }
            } else if y < y1 + t || y > y2 - t {
                (row + x1).update(repeating: value, count: w)
            } else {
                (row + x1).update(repeating: value, count: min(t, w))
                let right = max(x1, x2 - t + 1)
                (row + right).update(repeating: value, count: x2 - right + 1)
            }
        }
    }
}

/// Draws label texts on frames with FFmpeg's drawtext filter (libfreetype), fed through
/// AV_FRAME_DATA_DETECTION_BBOXES side data: a filter graph buffer → drawtext
/// (text_source=side_data_detection_bboxes) → buffersink, built once for one picture size/format.
///
/// drawtext draws each box's `detect_label` with its left edge at the box's x and its top at
/// (box y − fontsize); `render` places that anchor so the text sits just above the outline, or just
/// inside it when the box touches the top of the picture. White text on a translucent black
/// background (box=1) reads on any colour. `expansion=none`: labels are drawn literally ('%' and '\'
/// included). Owns the AVFilterGraph (avfilter_graph_free in deinit). Not thread-safe.
final class LabelRenderer {
    private var graph: UnsafeMutablePointer<AVFilterGraph>?
    private let source: UnsafeMutablePointer<AVFilterContext>
    private let sink: UnsafeMutablePointer<AVFilterContext>
    let fontSize: Int
    let border: Int
    private let subject: String

    /// A renderer for width×height `format` pictures in `timeBase`. Throws MediaError when the font
    /// file cannot be read or the filters are missing from this FFmpeg build.
    init(width: Int32, height: Int32, format: AVPixelFormat, timeBase: AVRational, sampleAspectRatio: AVRational,
         fontFile: String, fontSize: Int, subject: String) throws {
        self.fontSize = fontSize
        self.border = max(1, fontSize / 6)
        self.subject = subject
        if !fontFile.isEmpty {
            guard let f = fopen(fontFile, "rb") else {
                throw MediaError("\(subject): cannot read the label font \(fontFile): \(MediaError.ffmpegMessage(for: netnet_averror(errno)))",
                                 code: netnet_averror(errno))
            }
            fclose(f)
        }
        guard let bufferFilter = avfilter_get_by_name("buffer"), let sinkFilter = avfilter_get_by_name("buffersink") else {
            throw MediaError("\(subject): this FFmpeg has no buffer/buffersink filters", code: AVError.einval)
        }
        guard let drawtext = avfilter_get_by_name("drawtext") else {
            throw MediaError("\(subject): this FFmpeg has no drawtext filter (libfreetype) to draw labels", code: AVError.einval)
        }
        guard let g = avfilter_graph_alloc() else { throw MediaError("\(subject): avfilter_graph_alloc: out of memory", code: AVError.enomem) }
        var owned: UnsafeMutablePointer<AVFilterGraph>? = g
        g.pointee.nb_threads = 1   // drawtext has no slice threading; no thread pool needed
        do {
            guard let src = avfilter_graph_alloc_filter(g, bufferFilter, "in"),
                  let text = avfilter_graph_alloc_filter(g, drawtext, "labels"),
                  let out = avfilter_graph_alloc_filter(g, sinkFilter, "out") else {
                throw MediaError("\(subject): avfilter_graph_alloc_filter: out of memory", code: AVError.enomem)
            }
            guard let parameters = av_buffersrc_parameters_alloc() else {
                throw MediaError("\(subject): av_buffersrc_parameters_alloc: out of memory", code: AVError.enomem)
            }
            parameters.pointee.format = format.rawValue
            parameters.pointee.width = width
            parameters.pointee.height = height
            parameters.pointee.time_base = timeBase
            parameters.pointee.sample_aspect_ratio = sampleAspectRatio.num > 0 ? sampleAspectRatio : AVRational(num: 1, den: 1)
            let set = av_buffersrc_parameters_set(src, parameters)
            av_free(parameters)
            try check(set, subject, "cannot configure the label filter source")
            try check(avfilter_init_str(src, nil), subject, "cannot initialise the label filter source")

            var dict: OpaquePointer? = nil
            defer { av_dict_free(&dict) }
            var textOptions: [(String, String)] = [
                ("text_source", "side_data_detection_bboxes"), ("expansion", "none"),
                ("fontsize", String(fontSize)), ("fontcolor", "white"),
                ("box", "1"), ("boxcolor", "black@0.6"), ("boxborderw", String(border)), ("fix_bounds", "1"),
            ]
            // text_shaping=0 is required, not cosmetic: with libfribidi, FFmpeg 5.1's drawtext shapes its
            // (still empty) text at init and shrinks the 320-byte label buffer to 1 byte, which every
            // later label longer than the malloc slack (~23 bytes) then overflows (heap corruption).
            // The option exists only in builds with libfribidi.
            if Self.hasOption(drawtext, "text_shaping") { textOptions.append(("text_shaping", "0")) }
            if !fontFile.isEmpty { textOptions.append(("fontfile", fontFile)) }
            for (key, value) in textOptions { try check(av_dict_set(&dict, key, value, 0), subject, "drawtext option \(key)") }
            let initText = avfilter_init_dict(text, &dict)
            if initText < 0 {
                throw MediaError.ffmpeg(initText, subject, "cannot set up drawtext with the font \(fontFile.isEmpty ? "(fontconfig default)" : fontFile)")
            }
            if av_dict_count(dict) > 0, let entry = av_dict_get(dict, "", nil, AV_DICT_IGNORE_SUFFIX) {
                throw MediaError("\(subject): this drawtext does not know the option \(String(cString: entry.pointee.key))", code: AVError.einval)
            }
            try check(avfilter_init_str(out, nil), subject, "cannot initialise the label filter sink")
            try check(avfilter_link(src, 0, text, 0), subject, "cannot link the label filters")
            try check(avfilter_link(text, 0, out, 0), subject, "cannot link the label filters")
            try check(avfilter_graph_config(g, nil), subject, "cannot configure the label filter graph")
            let outFormat = av_buffersink_get_format(out)
            guard outFormat == format.rawValue, av_buffersink_get_w(out) == width, av_buffersink_get_h(out) == height else {
                throw MediaError("\(subject): the label filter graph changes the picture format", code: AVError.einval)
            }
            source = src
            sink = out
            graph = g
        } catch {
            avfilter_graph_free(&owned)
            throw error
        }
    }

    deinit {
        avfilter_graph_free(&graph)
    }

    /// Whether `filter` has a private option named `name`.
    private static func hasOption(_ filter: UnsafePointer<AVFilter>, _ name: String) -> Bool {
        guard filter.pointee.priv_class != nil else { return false }
        var cls: UnsafePointer<AVClass>? = filter.pointee.priv_class
        return withUnsafeMutablePointer(to: &cls) { av_opt_find(UnsafeMutableRawPointer($0), name, nil, 0, AV_OPT_SEARCH_FAKE_OBJ) != nil }
    }

    /// The drawtext anchor for a label of `rect`: above its top edge, or inside it at the top when
    /// the text would not fit above.
    func anchor(for rect: (x1: Int, y1: Int, x2: Int, y2: Int), thickness: Int) -> (x: Int32, y: Int32) {
        let textHeight = fontSize + 2 * border
        let top: Int
        if rect.y1 - textHeight >= 0 {
            top = rect.y1 - fontSize - border        // text box's bottom edge on the outline's top edge
        } else {
            top = rect.y1 + thickness + border       // inside, under the top line
        }
        return (Int32(rect.x1 + border), Int32(top + fontSize))   // drawtext draws at y - fontsize
    }

    /// The drawtext anchor of an overlay text: its text box's top-left corner at the text's point
    /// (drawtext keeps it inside the picture, `fix_bounds`).
    func anchor(for text: OverlayText) -> (x: Int32, y: Int32, text: String) {
        guard text.x.isFinite, text.y.isFinite else { return (0, Int32(fontSize), text.text) }
        let x = Int32(max(0, text.x.rounded()) + Float(border)), y = Int32(max(0, text.y.rounded()) + Float(border + fontSize))
        return (x, y, text.text)
    }

    /// Draws `labels` (anchor from `anchor(for:)`, text) on `frame` in place: the frame travels through
    /// the graph without a pixel copy (it must be writable and referenced only by `frame`) and comes
    /// back with the same buffers. Allocates only the small side-data block per call.
    func render(_ labels: [(x: Int32, y: Int32, text: String)], on frame: Frame) throws {
        guard !labels.isEmpty else { return }
        guard let header = av_detection_bbox_create_side_data(frame.pointer, UInt32(labels.count)) else {
            throw MediaError("\(subject): cannot attach label side data: out of memory", code: AVError.enomem)
        }
        let maxBytes = Int(netnet_detection_label_max_size()) - 1
        for (i, label) in labels.enumerated() {
            let bbox = netnet_detection_bbox(header, UInt32(i))!
            let text = Self.truncatedUTF8(label.text, maxBytes: maxBytes)
            text.withCString { netnet_detection_bbox_set(bbox, label.x, label.y, 1, 1, $0) }
        }
        try check(av_buffersrc_add_frame_flags(source, frame.pointer, 0), subject, "cannot draw the labels")   // takes the reference
        let ret = av_buffersink_get_frame(sink, frame.pointer)
        try check(ret, subject, "cannot draw the labels")
        av_frame_remove_side_data(frame.pointer, AV_FRAME_DATA_DETECTION_BBOXES)
    }

    /// `text` cut to at most `maxBytes` UTF-8 bytes on a character boundary.
    static func truncatedUTF8(_ text: String, maxBytes: Int) -> String {
        if text.utf8.count <= maxBytes { return text }
        var result = ""
        var used = 0
        for ch in text {
            let n = String(ch).utf8.count
            if used + n > maxBytes { break }
            result.append(ch)
            used += n
        }
        return result
    }
}

@available(*, unavailable, message: "LabelRenderer owns an AVFilterGraph; use it from one thread at a time")
extension LabelRenderer: Sendable {}
