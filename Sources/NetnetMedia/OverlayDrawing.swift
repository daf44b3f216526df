import CFFmpeg

/// A point in a frame's pixels (x right, y down). A plain value: any thread.
public struct OverlayPoint: Sendable, Hashable {
    /// Pixels from the left edge.
    public var x: Float
    /// Pixels from the top edge.
    public var y: Float
    /// A point. Pure.
    public init(_ x: Float, _ y: Float) { self.x = x; self.y = y }
}

/// One shape of an overlay: a polyline or polygon in the frame's pixels, outlined and/or filled.
///
/// NetnetMedia knows nothing of scenes (as it knows nothing of the network): the pipeline turns
/// lines, zones and masks into these. A plain value: any thread.
public struct OverlayShape: Sendable, Hashable {
    /// How the inside of a closed shape is painted.
    public enum Fill: Sendable, Hashable {
        /// Not at all (an open polyline is never filled).
        case none
        /// Solid, in the shape's colour (an arrow head).
        case solid
        /// Blended with the picture: `quarters`/4 of the shape's colour (1…3).
        case tint(quarters: Int)
        /// Diagonal stripes in the shape's colour over the picture darkened by half.
        case hatch
    }

    /// The corners, in order.
    public var points: [OverlayPoint]
    /// Whether the last point joins the first (a polygon) or not (a polyline).
    public var closed: Bool
    /// Outline width in pixels; 0 draws no outline.
    public var thickness: Float
    /// The inside (closed shapes only).
    public var fill: Fill
    /// Colour as 0xRRGGBB.
    public var colour: UInt32

    /// Stores the values as given. Pure.
    public init(points: [OverlayPoint], closed: Bool, thickness: Float, fill: Fill = .none, colour: UInt32) {
        self.points = points
        self.closed = closed
        self.thickness = thickness
        self.fill = fill
        self.colour = colour
    }
}

/// A text of an overlay: drawn like the box labels (white on translucent black) with its top-left
/// corner at (`x`, `y`) in the frame's pixels, kept inside the picture. A plain value: any thread.
public struct OverlayText: Sendable, Hashable {
    /// Left edge.
    public var x: Float
    /// Top edge.
    public var y: Float
    /// The text, drawn literally (ASCII reads best in every font).
    public var text: String
    /// Stores the values as given. Pure.
    public init(x: Float, y: Float, text: String) { self.x = x; self.y = y; self.text = text }
}

/// What is drawn over every frame besides the boxes: fixed shapes (rasterised once per picture
/// size and kept while they stay equal) and texts that may change from frame to frame (running
/// counts). Shapes are drawn under the boxes, texts with the box labels. A plain value: any thread.
public struct OverlayDrawing: Sendable, Hashable {
    /// Shapes, painted in order (later ones on top).
    public var shapes: [OverlayShape]
    /// Texts.
    public var texts: [OverlayText]
    /// Stores the values as given. Pure.
    public init(shapes: [OverlayShape], texts: [OverlayText]) { self.shapes = shapes; self.texts = texts }
}

/// `OverlayDrawing.shapes` rasterised for one picture size and colour description: runs of pixels
/// per row, for the luma plane and (from the even luma rows) the chroma planes, each with the
/// operation that paints it. Building it allocates; `paint` then only walks the runs, so a frame
/// costs no allocation. Any thread builds it; `paint` needs the picture's owner thread.
struct OverlayRaster {
    /// A run of pixels x0…x1 (inclusive) on one row, painted with `operations[operation]`.
    struct Run { var row: Int32; var x0: Int32; var x1: Int32; var operation: Int32 }
    /// How a run is painted, with its colour already in Y, Cb, Cr.
    struct Operation {
        enum Mode { case solid, blend(quarters: Int), hatch }
        var mode: Mode
        var y: UInt8, u: UInt8, v: UInt8
    }

    let shapes: [OverlayShape]
    let width: Int, height: Int
    private(set) var luma: [Run] = []
    private(set) var chroma: [Run] = []
    private(set) var operations: [Operation] = []
    /// Hatch stripes: `hatchOn` of every `hatchPeriod` diagonals, in luma pixels.
    static let hatchPeriod = 12, hatchOn = 3

    /// Rasterises `shapes` for a width×height 4:2:0 picture with the given colour description
    /// (as `BoxPainter`). Pure.
    init(_ shapes: [OverlayShape], width: Int, height: Int, colorSpace: AVColorSpace, fullRange: Bool) {
        self.shapes = shapes
        self.width = width
        self.height = height
        for shape in shapes where shape.points.count >= 2 {
            let colour = BoxPainter.yuv(shape.colour, colorSpace: colorSpace, fullRange: fullRange)
            // The inside first, the outline over it.
            if shape.closed, shape.points.count >= 3 {
                switch shape.fill {
                case .none: break
                case .solid: add(polygon: shape.points, Operation(mode: .solid, y: colour.0, u: colour.1, v: colour.2))
                case let .tint(quarters):
                    add(polygon: shape.points, Operation(mode: .blend(quarters: min(max(quarters, 1), 3)), y: colour.0, u: colour.1, v: colour.2))
                case .hatch:
                    let black = BoxPainter.yuv(0x000000, colorSpace: colorSpace, fullRange: fullRange)
                    add(polygon: shape.points, Operation(mode: .blend(quarters: 2), y: black.0, u: black.1, v: black.2))
                    add(polygon: shape.points, Operation(mode: .hatch, y: colour.0, u: colour.1, v: colour.2))
                }
            }
            guard shape.thickness > 0 else { continue }
            let solid = Operation(mode: .solid, y: colour.0, u: colour.1, v: colour.2)
            let count = shape.points.count
            for i in 0..<(shape.closed ? count : count - 1) {
                add(polygon: Self.thickSegment(shape.points[i], shape.points[(i + 1) % count], width: shape.thickness), solid)
            }
        }
    }

    /// The quadrilateral covering the segment a–b drawn `width` wide, its ends extended by half the
    /// width (square caps, so the outlines of a polygon meet at its corners).
    static func thickSegment(_ a: OverlayPoint, _ b: OverlayPoint, width: Float) -> [OverlayPoint] {
        let dx = b.x - a.x, dy = b.y - a.y
        let length = (dx * dx + dy * dy).squareRoot()
        guard length > 0 else {
            let h = width / 2
            return [OverlayPoint(a.x - h, a.y - h), OverlayPoint(a.x + h, a.y - h), OverlayPoint(a.x + h, a.y + h), OverlayPoint(a.x - h, a.y + h)]
        }
        let h = width / 2
        let ux = dx / length * h, uy = dy / length * h   // along, half the width
        let nx = -uy, ny = ux                              // across
        return [OverlayPoint(a.x - ux + nx, a.y - uy + ny), OverlayPoint(b.x + ux + nx, b.y + uy + ny),
                OverlayPoint(b.x + ux - nx, b.y + uy - ny), OverlayPoint(a.x - ux - nx, a.y - uy - ny)]
    }

    /// Adds the runs of the pixels whose centres lie inside `polygon` (even-odd rule), clipped to
    /// the picture, and their chroma runs.
    private mutating func add(polygon: [OverlayPoint], _ operation: Operation) {
        guard polygon.allSatisfy({ $0.x.isFinite && $0.y.isFinite }) else { return }
        let index = Int32(operations.count)
        operations.append(operation)
        let top = max(0, Int((polygon.map(\.y).min()! - 0.5).rounded(.up)))
        let bottom = min(height - 1, Int((polygon.map(\.y).max()! - 0.5).rounded(.down)))
        guard top <= bottom else { return }
        var crossings: [Float] = []
        for row in top...bottom {
            let cy = Float(row) + 0.5
            crossings.removeAll(keepingCapacity: true)
            var j = polygon.count - 1
            for i in polygon.indices {
                let u = polygon[i], v = polygon[j]
                if (u.y > cy) != (v.y > cy) { crossings.append(u.x + (cy - u.y) * (v.x - u.x) / (v.y - u.y)) }
                j = i
            }
            crossings.sort()
            var k = 0
            while k + 1 < crossings.count {
                let x0 = max(0, Int((crossings[k] - 0.5).rounded(.up)))
                let x1 = min(width - 1, Int((crossings[k + 1] - 0.5).rounded(.down)))
                if x0 <= x1 {
                    luma.append(Run(row: Int32(row), x0: Int32(x0), x1: Int32(x1), operation: index))
                    // A chroma sample takes the operation of its top-left luma pixel.
                    if row & 1 == 0, (x0 + 1) / 2 <= x1 / 2 {
                        chroma.append(Run(row: Int32(row / 2), x0: Int32((x0 + 1) / 2), x1: Int32(x1 / 2), operation: index))
                    }
                }
                k += 2
            }
        }
    }

    /// Paints the runs on `frame` (YUV 4:2:0, 8-bit, writable, at least width×height). No allocation.
    func paint(on frame: Frame) {
        guard Int(frame.width) >= width, Int(frame.height) >= height else { return }
        let (yData, yStride) = frame.plane(0)
        let (uData, uStride) = frame.plane(1)
        let (vData, vStride) = frame.plane(2)
        guard let yData, let uData, let vData else { return }
        for run in luma {
            let o = operations[Int(run.operation)]
            Self.paint(yData + Int(run.row) * yStride, run, scale: 1, o.mode, o.y)
        }
        for run in chroma {
            let o = operations[Int(run.operation)]
            Self.paint(uData + Int(run.row) * uStride, run, scale: 2, o.mode, o.u)
            Self.paint(vData + Int(run.row) * vStride, run, scale: 2, o.mode, o.v)
        }
    }

    /// One run on one plane row; `scale` converts the plane's coordinates to luma ones (the hatch
    /// pattern is laid out in luma pixels, so the chroma stripes coincide with the luma ones).
    private static func paint(_ row: UnsafeMutablePointer<UInt8>, _ run: Run, scale: Int, _ mode: Operation.Mode, _ value: UInt8) {
        let x0 = Int(run.x0), x1 = Int(run.x1)
        switch mode {
        case .solid:
            (row + x0).update(repeating: value, count: x1 - x0 + 1)
        case let .blend(quarters):
            let c = Int(value) * quarters, keep = 4 - quarters
            for x in x0...x1 { row[x] = UInt8((Int(row[x]) * keep + c + 2) >> 2) }
        case .hatch:
            let y = Int(run.row) * scale
            for x in x0...x1 where (x * scale + y) % hatchPeriod < hatchOn { row[x] = value }
        }
    }
}
