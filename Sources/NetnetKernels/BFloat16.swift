/// bfloat16 values as their bit patterns (`UInt16`: the top half of a float32), and the
/// conversions the bf16 path (`--precision bf16`) uses: float32 → bf16 rounds to nearest, ties to
/// even (as PyTorch, oneDNN and OpenVINO do); bf16 → float32 is exact.
///
/// Pure functions; callable from any thread.
public enum BFloat16 {
    /// The bf16 nearest to `value` (ties to even). NaN stays NaN (quiet); infinities and values
    /// that round past the largest bf16 become infinities, as in IEEE rounding.
    @inline(__always)
    public static func fromFloat(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        return UInt16(rounding: value)
    }

    /// The float32 equal to the bf16 `bits`.
    @inline(__always)
    public static func toFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Rounds `count` floats to bf16, 16 at a time (the loop the compiler vectorises; finite
    /// inputs only: a NaN input may come out as an infinity, which the engine never feeds it).
    @inline(__always)
    public static func convert(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int) {
        var i = 0
        let raw = UnsafeRawPointer(source)
        while i + 16 <= count {
            let bits = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<UInt32>.self)
            UnsafeMutableRawPointer(destination + i).storeBytes(of: lowHalves(roundedBits(bits)),
                                                                as: SIMD16<UInt16>.self)
            i += 16
        }
        while i < count {
            destination[i] = UInt16(rounding: source[i])
            i += 1
        }
    }

    /// Float32 bit patterns rounded to nearest even at bit 16, lane by lane: the bf16 value in each
    /// lane's low half (finite inputs only), the vector form of `UInt16(rounding:)`.
    @inline(__always)
    static func roundedBits<Bits: SIMD>(_ bits: Bits) -> Bits where Bits.Scalar == UInt32 {
        (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
    }

    /// The low 16 bits of each lane, as shuffles (little-endian, as every target Swift runs the
    /// engine on: a lane's low half is the even `UInt16`). `SIMD8<UInt16>(truncatingIfNeeded:)`
    /// does the same, but in the generic transforms it stayed an out-of-line call per vector
    /// (1.2 % of a bf16 frame's samples in `perf`).
    @inline(__always)
    static func lowHalves(_ bits: SIMD8<UInt32>) -> SIMD8<UInt16> {
        unsafeBitCast(bits, to: SIMD16<UInt16>.self).evenHalf
    }

    /// `lowHalves` for 16 lanes.
    @inline(__always)
    static func lowHalves(_ bits: SIMD16<UInt32>) -> SIMD16<UInt16> {
        unsafeBitCast(bits, to: SIMD32<UInt16>.self).evenHalf
    }

    /// Writes `count` bf16 zeros.
    @inline(__always)
    static func zero(_ destination: UnsafeMutablePointer<UInt16>, count: Int) {
        destination.update(repeating: 0, count: count)
    }
}

/// A 64-byte aligned, zero-filled array of bf16 values (as `UInt16` bit patterns), allocated once
/// and freed in `deinit`: the bf16 weights and workspaces of the bf16 path.
/// Not synchronised: the owner (a `Detector`, a kernel plan) decides who writes when.
public final class BFloat16Buffer: @unchecked Sendable {
    /// The number of bf16 values.
    public let count: Int
    private let base: UnsafeMutablePointer<UInt16>

    /// Allocates `count` (≥ 0) zeroed values. Callable from any thread.
    public init(count: Int) {
        require(count >= 0, "BFloat16Buffer: count must be >= 0, got \(count)")
        self.count = count
        let capacity = max(count, 1)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: AlignedBuffer.alignment)
        base = raw.initializeMemory(as: UInt16.self, repeating: 0, count: capacity)
    }

    /// Rounds `count` floats at `source` into a new buffer. Callable from any thread.
    public convenience init(rounding source: UnsafePointer<Float>, count: Int) {
        self.init(count: count)
        BFloat16.convert(source, into: base, count: count)
    }

    deinit {
        UnsafeMutableRawPointer(base).deallocate()
    }

    /// The first value; valid for `count` values for the lifetime of this object.
    public var pointer: UnsafeMutablePointer<UInt16> { base }
}
