/// A 64-byte aligned, owned, zero-filled float buffer: allocated once in `init`, freed in
/// `deinit`. The engine uses it for weights, activations and the convolution workspace.
///
/// `@unchecked Sendable` is sound because the object itself is immutable (its pointer and count
/// never change); the *contents* are plain memory whose reads and writes the owner must
/// synchronise (e.g. the engine only touches a buffer from the one frame that uses it). Any
/// thread may create, read the properties of, or release the buffer.
public final class AlignedBuffer: @unchecked Sendable {
    /// Alignment of `pointer` in bytes.
    public static let alignment = 64

    /// The number of floats the buffer holds.
    public let count: Int
    private let base: UnsafeMutablePointer<Float>

    /// Allocates `count` floats (`count >= 0`), 64-byte aligned and set to zero.
    /// Callable from any thread.
    public init(count: Int) {
        require(count >= 0, "AlignedBuffer: count must be >= 0, got \(count)")
        self.count = count
        let capacity = max(count, 1)
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: capacity * MemoryLayout<Float>.stride, alignment: AlignedBuffer.alignment)
        base = raw.initializeMemory(as: Float.self, repeating: 0, count: capacity)
    }

    deinit {
        UnsafeMutableRawPointer(base).deallocate()
    }

    /// The first float; valid for `count` floats for the lifetime of this object.
    /// Callable from any thread (the owner synchronises access to the contents).
    public var pointer: UnsafeMutablePointer<Float> { base }

    /// The whole buffer as a buffer pointer; valid for the lifetime of this object.
    /// Callable from any thread (the owner synchronises access to the contents).
    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: base, count: count)
    }
}
