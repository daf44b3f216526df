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

/// 64-byte aligned, zeroed, untyped memory, freed in `deinit`: a workspace that kernels of
/// different element types share (each binds it to its type for the length of a call).
/// Not synchronised: its owner decides who uses it when.
public final class AlignedBytes: @unchecked Sendable {
    /// The size in bytes.
    public let count: Int
    /// The first byte; valid for `count` bytes for the lifetime of this object.
    public let pointer: UnsafeMutableRawPointer

    /// Allocates `count` (≥ 0) zeroed bytes. Callable from any thread.
    public init(count: Int) {
        require(count >= 0, "AlignedBytes: count must be >= 0, got \(count)")
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: AlignedBuffer.alignment)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
    }

    deinit {
        pointer.deallocate()
    }
}
