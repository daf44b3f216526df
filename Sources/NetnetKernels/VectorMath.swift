/// Vectorised single-precision exp (Cephes-style: 2^n * p(r), r in [-ln2/2, ln2/2], degree-6
/// polynomial), relative error ~2 ulp over the clamped range; uses only SSE2-level operations so it
/// vectorises on baseline x86-64 and arm64.
enum VectorMath {
    typealias V = SIMD8<Float>

    static let lowerClamp: Float = -87.33654   // e^x stays a normal float

    /// Lane-wise maximum as compare + select (the stdlib's `pointwiseMax` is an out-of-line
    /// scalar loop with NaN handling on baseline x86-64).
    @inline(__always)
    static func maximum(_ a: V, _ b: V) -> V {
        a.replacing(with: b, where: a .< b)
    }

    @inline(__always)
    static func minimum(_ a: V, _ b: V) -> V {
        a.replacing(with: b, where: b .< a)
    }

    /// Largest lane.
    @inline(__always)
    static func horizontalMaximum(_ v: V) -> Float {
        let a = maximum(v.lowHalf, v.highHalf)  // SIMD4
        let b = a.lowHalf.replacing(with: a.highHalf, where: a.lowHalf .< a.highHalf)
        return Swift.max(b[0], b[1])
    }

    @inline(__always)
    static func maximum(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> {
        a.replacing(with: b, where: a .< b)
    }

    /// Sum of the lanes.
    @inline(__always)
    static func horizontalSum(_ v: V) -> Float {
        let a = v.lowHalf + v.highHalf
        let b = a.lowHalf + a.highHalf
        return b[0] + b[1]
    }

    @inline(__always)
    static func exp(_ xIn: V) -> V {
        let x = minimum(maximum(xIn, V(repeating: lowerClamp)), V(repeating: 88.0))
        // n = round(x / ln2) via the 1.5*2^23 trick; its bit pattern minus the magic's is n.
        let magic = V(repeating: 12_582_912)
        let t = x * V(repeating: 1.442_695_04) + magic
        let n = t - magic
        let r = x - n * V(repeating: 0.693_359_375) - n * V(repeating: -2.121_944_4e-4)
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + V(repeating: 1.398_199_95e-3)
        p = p * r + V(repeating: 8.333_451_9e-3)
        p = p * r + V(repeating: 4.166_579_59e-2)
        p = p * r + V(repeating: 1.666_666_55e-1)
        p = p * r + V(repeating: 5.000_000_12e-1)
        p = p * (r * r) + r + V(repeating: 1)
        let tBits = unsafeBitCast(t, to: SIMD8<Int32>.self)
        let magicBits = unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let exponent = (tBits &- magicBits &+ SIMD8<Int32>(repeating: 127)) &<< SIMD8<Int32>(repeating: 23)
        return p * unsafeBitCast(exponent, to: V.self)
    }

    /// Loads up to 8 floats (`count` in 1...8), padding the rest with `fill`.
    @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float) -> V {
        var v = V(repeating: fill)
        for i in 0 ..< count { v[i] = p[i] }
        return v
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    @inline(__always)
    static func storePartial(_ v: V, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0 ..< count { p[i] = v[i] }
    }
}
