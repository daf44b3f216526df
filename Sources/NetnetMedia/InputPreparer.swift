import CFFmpeg

/// How a picture becomes network input values: channel order and per-channel (v - mean) / std.
///
/// `mean` and `std` have 3 entries each, indexed in the *output* channel order (for `.rgb`,
/// `mean[0]` is the red mean), in 0…255 pixel units. A plain value: Sendable, any thread.
public struct Normalisation: Sendable, Hashable {
    /// Order of the three planes written by `InputPreparer`.
    public enum Order: String, Sendable {
        /// Plane 0 = blue, 1 = green, 2 = red (Caffe/OpenCV-style models).
        case bgr
        /// Plane 0 = red, 1 = green, 2 = blue (torchvision-style models).
        case rgb
    }

    /// Channel order of the output planes.
    public var order: Order
    /// Per-output-channel mean (3 values, pixel units 0…255).
    public var mean: [Float]
    /// Per-output-channel standard deviation (3 non-zero values, pixel units).
    public var std: [Float]

    /// Stores the values as given; `InputPreparer.prepare` rejects anything but 3 means and 3 non-zero stds.
    /// Any thread.
    public init(order: Order, mean: [Float], std: [Float]) {
        self.order = order
        self.mean = mean
        self.std = std
    }
}

/// Turns a picture into the network input: resize to size×size (libswscale, bilinear; the aspect ratio is NOT kept, as SSD does), then planar float channels in the given order with (v - mean)/std.
///
/// The resize works on each 8-bit colour plane separately (B, G and R are scaled as independent
/// gray planes with SWS_BILINEAR | SWS_ACCURATE_RND), so no colour-space round trip touches the
/// values; for downscaling swscale widens the bilinear kernel to the scale factor (it averages
/// rather than point-samples, unlike OpenCV's INTER_LINEAR). Normalisation is a 256-entry lookup
/// per channel, so equal input bytes give bit-identical floats.
///
/// Not thread-safe and not Sendable: owned by one thread (or task) at a time; it keeps scratch
/// buffers and a SwsContext that `prepare` reuses. Use one InputPreparer per concurrent worker.
public final class InputPreparer {
    /// libswscale flags of the resize.
    static let resizeFlags: Int32 = SWS_BILINEAR | SWS_ACCURATE_RND

    /// Side of the square network input.
    public let inputSize: Int
    /// Channel order and normalisation applied by `prepare`.
    public let normalisation: Normalisation

    private let lookup: [Float]            // 3 × 256: lookup[c*256 + v] = (v - mean[c]) / std[c]
    private let configurationError: MediaError?
    private let planeOfChannel: (Int, Int, Int)   // GBRP plane index (0 G, 1 B, 2 R) for output channel 0, 1, 2
    private let sourcePlanes: Frame        // GBRP at the source size
    private let resizedPlanes: Frame       // GBRP at inputSize × inputSize
    private let scaler = ScaleContext()   // GRAY8 → GRAY8 resize, one plane at a time
    /// Decoded frame → GBRP at inputSize × inputSize in one swscale call (created on first use).
    private var frameConverter: FrameConverter?

    /// Prepares for `inputSize`×`inputSize` output (precondition: 1…16384). An invalid
    /// `normalisation` (not 3 means / 3 non-zero finite stds) makes every `prepare` throw.
    /// Call from the thread that will own it.
    public init(inputSize: Int, normalisation: Normalisation) {
        precondition(inputSize > 0 && inputSize <= 16384, "InputPreparer: inputSize \(inputSize) out of range 1...16384")
        self.inputSize = inputSize
        self.normalisation = normalisation
        self.planeOfChannel = normalisation.order == .bgr ? (1, 0, 2) : (2, 0, 1)

        let n = normalisation
        if n.mean.count != 3 || n.std.count != 3 || n.std.contains(where: { $0 == 0 || !$0.isFinite }) || n.mean.contains(where: { !$0.isFinite }) {
            configurationError = MediaError("InputPreparer: normalisation needs 3 finite means and 3 finite non-zero stds (got mean \(n.mean), std \(n.std))",
                                            code: AVError.einval)
            lookup = [Float](repeating: 0, count: 3 * 256)
        } else {
            configurationError = nil
            var table = [Float](repeating: 0, count: 3 * 256)
            for c in 0..<3 {
                for v in 0..<256 { table[c * 256 + v] = (Float(v) - n.mean[c]) / n.std[c] }
            }
            lookup = table
        }
        // Frame() only fails when malloc does; treat that like any other allocation failure.
        do {
            sourcePlanes = try Frame()
            resizedPlanes = try Frame()
        } catch {
            fatalError("InputPreparer: \(error)")
        }
    }

    /// Writes 3*inputSize*inputSize floats (CHW) at `destination`. Allocation-free after the first call for a given source size.
    ///
    /// `destination` must have room for 3*inputSize*inputSize floats; plane k (in
    /// `normalisation.order`) starts at `destination + k*inputSize*inputSize`, rows top to bottom.
    /// Throws MediaError for an empty/inconsistent image or an invalid normalisation. Call only from
    /// the thread that currently owns this preparer.
    public func prepare(_ image: BGRImage, into destination: UnsafeMutablePointer<Float>) throws {
        if let configurationError { throw configurationError }
        let width = image.width, height = image.height
        guard width > 0, height > 0, width <= 65536, height <= 65536, image.pixels.count == width * height * 3 else {
            throw MediaError("InputPreparer: bad image \(width)x\(height) with \(image.pixels.count) bytes", code: AVError.einval)
        }
        let size = inputSize
        let subject = "InputPreparer"

        // 1. Packed BGR → three aligned 8-bit planes (GBRP layout: 0 G, 1 B, 2 R).
        if sourcePlanes.width != Int32(width) || sourcePlanes.height != Int32(height) || sourcePlanes.plane(0).data == nil {
            try sourcePlanes.allocate(width: Int32(width), height: Int32(height), format: AV_PIX_FMT_GBRP, subject: subject)
        }
        let (g, gStride) = sourcePlanes.plane(0)
        let (b, bStride) = sourcePlanes.plane(1)
        let (r, rStride) = sourcePlanes.plane(2)
        guard let g, let b, let r else { throw MediaError("\(subject): no plane buffers", code: AVError.enomem) }
        image.pixels.withUnsafeBufferPointer { buffer in
            let src = buffer.baseAddress!
            for y in 0..<height {
                let row = src + y * width * 3
                let gRow = g + y * gStride, bRow = b + y * bStride, rRow = r + y * rStride
                for x in 0..<width {
                    bRow[x] = row[3 * x]
                    gRow[x] = row[3 * x + 1]
                    rRow[x] = row[3 * x + 2]
                }
            }
        }

        // 2. Resize each plane to size×size (skipped when the source already has that size).
        let planes: Frame
        if width == size && height == size {
            planes = sourcePlanes
        } else {
            if resizedPlanes.width != Int32(size) || resizedPlanes.plane(0).data == nil {
                try resizedPlanes.allocate(width: Int32(size), height: Int32(size), format: AV_PIX_FMT_GBRP, subject: subject)
            }
            let parameters = ScaleContext.Parameters(sourceWidth: Int32(width), sourceHeight: Int32(height), sourceFormat: AV_PIX_FMT_GRAY8,
                                                     outputWidth: Int32(size), outputHeight: Int32(size), outputFormat: AV_PIX_FMT_GRAY8,
                                                     flags: Self.resizeFlags)
            try scaler.configure(parameters, subject: subject)
            for p in 0..<3 {
                let (s, ss) = sourcePlanes.plane(p)
                let (d, ds) = resizedPlanes.plane(p)
                try scaler.scalePlane(source: s!, sourceStride: ss, destination: d!, destinationStride: ds, subject: subject)
            }
            planes = resizedPlanes
        }

        // 3. Lookup-table normalisation into CHW floats.
        normalise(planes, into: destination)
    }

    /// Lookup-table normalisation of size×size GBRP `planes` into CHW floats at `destination`.
    private func normalise(_ planes: Frame, into destination: UnsafeMutablePointer<Float>) {
        let size = inputSize
        let area = size * size
        let planeOfChannel = self.planeOfChannel
        lookup.withUnsafeBufferPointer { table in
            for c in 0..<3 {
                let lut = table.baseAddress! + c * 256
                let planeIndex = c == 0 ? planeOfChannel.0 : (c == 1 ? planeOfChannel.1 : planeOfChannel.2)
                let (plane, stride) = planes.plane(planeIndex)
                let out = destination + c * area
                for y in 0..<size {
                    let row = plane! + y * stride
                    let outRow = out + y * size
                    for x in 0..<size { outRow[x] = lut[Int(row[x])] }
                }
            }
        }
    }
}

@available(*, unavailable, message: "InputPreparer keeps scratch buffers: use one per thread/task")
extension InputPreparer: Sendable {}

extension InputPreparer {
    /// libswscale flags of the frame path: bilinear (widened to the scale factor when downscaling, as in
    /// the image path), accurate rounding, full chroma interpolation into the RGB planes.
    static let frameFlags: Int32 = SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT

    /// Writes the network input (3×S×S planar, normalised, S = inputSize) straight from a decoded
    /// frame, without a full-size BGR copy: one swscale call converts the frame's own pixel format
    /// (YUV 4:2:0 usually, with its matrix, range and chroma siting) and resizes it to S×S planar RGB,
    /// then the same lookup-table normalisation as `prepare(_:into:)` fills `destination`.
    /// Results match `prepare(_:into:)` on the decoded BGR image to within a few pixel levels
    /// (chroma is interpolated once instead of twice). Allocation-free after the first call for a given
    /// source size/format. Throws MediaError for an empty frame or an invalid normalisation. Call only
    /// from the thread that currently owns this preparer (and the frame).
    public func prepare(frame: VideoFrame, into destination: UnsafeMutablePointer<Float>) throws {
        if let configurationError { throw configurationError }
        guard !frame.isEmpty, frame.width > 0, frame.height > 0 else {
            throw MediaError("InputPreparer: empty video frame", code: AVError.einval)
        }
        let converter: FrameConverter
        if let frameConverter {
            converter = frameConverter
        } else {
            converter = try FrameConverter(outputFormat: AV_PIX_FMT_GBRP, flags: Self.frameFlags, accurateChroma: false)
            frameConverter = converter
        }
        try converter.convert(frame.frame, width: Int32(inputSize), height: Int32(inputSize), subject: "InputPreparer")
        normalise(converter.output, into: destination)
    }
}
