/// A decoded picture, packed BGR24 (3 bytes per pixel, rows tightly packed: stride = width*3).
///
/// `pixels.count == width * height * 3`; byte `(y*width + x)*3 + 0/1/2` is B/G/R of pixel (x, y).
/// A plain value (copy-on-write array): Sendable, usable from any thread.
public struct BGRImage: Sendable {
    /// Width in pixels (> 0 for decoded images).
    public let width: Int
    /// Height in pixels (> 0 for decoded images).
    public let height: Int
    /// width*height*3 bytes, B,G,R per pixel, rows top to bottom with no padding.
    public var pixels: [UInt8]

    /// Wraps existing BGR24 bytes. Precondition: width, height >= 0 and pixels.count == width*height*3.
    /// Any thread.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "BGRImage: negative size \(width)x\(height)")
        precondition(pixels.count == width * height * 3,
                     "BGRImage: \(pixels.count) bytes for \(width)x\(height) (expected \(width * height * 3))")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A width×height image filled with one colour. Any thread.
    public init(width: Int, height: Int, blue: UInt8, green: UInt8, red: UInt8) {
        precondition(width >= 0 && height >= 0, "BGRImage: negative size \(width)x\(height)")
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var i = 0
        while i < pixels.count {
            pixels[i] = blue; pixels[i + 1] = green; pixels[i + 2] = red
            i += 3
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// The (b, g, r) triple at (x, y). Precondition: inside the image. Any thread.
    public func pixel(x: Int, y: Int) -> (b: UInt8, g: UInt8, r: UInt8) {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "BGRImage: (\(x),\(y)) outside \(width)x\(height)")
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}
