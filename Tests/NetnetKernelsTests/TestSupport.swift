import Testing
import NetnetKernels

/// Deterministic SplitMix64 generator, so every test sees the same data on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func float(_ range: ClosedRange<Float> = -1 ... 1) -> Float {
        Float.random(in: range, using: &self)
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }
    mutating func array(_ count: Int, _ range: ClosedRange<Float> = -1 ... 1) -> [Float] {
        (0 ..< count).map { _ in float(range) }
    }
}

/// Largest |a[i] - b[i]| and largest |b[i]| (b is the reference).
func errors(_ a: [Float], _ b: [Float]) -> (maxError: Float, maxReference: Float) {
    precondition(a.count == b.count)
    var e: Float = 0, m: Float = 0
    for i in 0 ..< a.count {
        let d = abs(a[i] - b[i])
        e = (d.isNaN || e.isNaN) ? .nan : max(e, d)
        m = max(m, abs(b[i]))
    }
    return (e, m)
}

/// `errors` as one readable string.
func describe(_ e: (maxError: Float, maxReference: Float)) -> String {
    "max abs err \(e.maxError), max abs ref \(e.maxReference)"
}

extension Array where Element == Float {
    /// Calls `body` with a read-only pointer to the elements (never nil, even when empty).
    func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { return try body(base) }
            var dummy: Float = 0
            return try body(&dummy)
        }
    }

    /// Calls `body` with a mutable pointer to the elements.
    mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { buffer in
            if let base = buffer.baseAddress { return try body(base) }
            var dummy: Float = 0
            return try body(&dummy)
        }
    }
}

/// Bitwise equality of two float arrays, reported compactly (first mismatch, not the arrays).
func expectIdentical(_ actual: [Float], _ expected: [Float], _ what: @autoclosure () -> String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    var firstMismatch: Int? = nil
    if actual.count == expected.count {
        for i in 0 ..< actual.count where actual[i].bitPattern != expected[i].bitPattern
            && !(actual[i] == expected[i]) {
            firstMismatch = i
            break
        }
    }
    let ok = actual.count == expected.count && firstMismatch == nil
    if !ok {
        let detail = firstMismatch.map { "first mismatch at \($0): \(actual[$0]) vs \(expected[$0]); \(describe(errors(actual, expected)))" }
            ?? "count \(actual.count) vs \(expected.count)"
        Issue.record("\(what()): \(detail)", sourceLocation: sourceLocation)
    }
}

/// Rounding-error bounds derived from the arithmetic, so that a test holds on every CPU and for
/// every summation order a correct kernel may use (AVX-512 or AVX2 kernels, FMA or not, blocked
/// or split reductions, any thread count).
///
/// The rule (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1 and
/// Lemma 3.4): an expression of sums and products evaluated in float32, in any order, in which no
/// term goes through more than n roundings, lands within γₙ · M of its exact value, where
/// γₙ = n·u / (1 − n·u), u = 2⁻²⁴, and M is the same expression with every number (operands and
/// the constants of the transforms) replaced by its absolute value. Two evaluations are then
/// within 2γₙ · M of each other. ReLU and max pooling move no value further from the exact one
/// than their inputs were (both are 1-Lipschitz), so the bound passes through them.
///
/// bf16 operands (`ErrorBound.bfloat16Step`): a float32 value rounded to bf16 moves by at most
/// half a step, 2⁻⁹ of its magnitude; two evaluations whose float32 operands differ by a last
/// bit may round one operand to neighbouring bf16 values, a whole step, at most 2⁻⁸ of it (a
/// bf16 significand has 8 bits).
enum ErrorBound {
    static let unitRoundoff = 0x1p-24

    /// γₙ for float32.
    static func gamma(_ n: Int) -> Double { Double(n) * unitRoundoff / (1 - Double(n) * unitRoundoff) }

    /// The most a bf16 rounding of x can move it, relative to |x|: half a step (2⁻⁹).
    static let bfloat16Rounding = 0x1p-9
    /// Two roundings of float32 values a last bit apart can land a whole step apart: 2⁻⁸ of |x|.
    static let bfloat16Step = 0x1p-8

    /// Roundings on any term's path through a direct (or im2col) convolution with reduction
    /// length k = in × kh × kw: one product, k − 1 additions, then + bias and + the old output.
    static func directRoundings(_ g: ConvolutionGeometry) -> Int { g.inputChannels * g.kernelHeight * g.kernelWidth + 2 }

    /// Roundings on any term's path through Winograd F(4×4, 3×3), counted for the longest way a
    /// kernel or the twin may evaluate it: V = Bᵀ d B as two passes of a product and five
    /// additions (12); U = G g Gᵀ computed in double, rounded once (1); U ⊙ V (1); the sum over
    /// the input channels (in − 1, at most in); Aᵀ M A as the twin's one sum of 36 terms of two
    /// products each (37; the fast kernels' two passes take 12); + old output, + bias (2).
    static func winogradRoundings(inputChannels: Int) -> Int { 12 + 1 + 1 + inputChannels + 37 + 2 }

    /// M of a direct convolution, per output (o, y, x): Σ |w| |x| + |bias| + |old output|, in
    /// double. Any dilation, stride and padding.
    static func directMagnitudes(_ g: ConvolutionGeometry, input: [Float], height h: Int, width w: Int,
                                 weights: [Float], bias: [Float]?, initial: [Float]?) -> [Double] {
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let cin = g.inputChannels, kh = g.kernelHeight, kw = g.kernelWidth
        var m = [Double](repeating: 0, count: g.outputChannels * oh * ow)
        for o in 0 ..< g.outputChannels {
            for y in 0 ..< oh {
                for x in 0 ..< ow {
                    var sum = Double(abs(bias?[o] ?? 0)) + Double(abs(initial?[(o * oh + y) * ow + x] ?? 0))
                    for c in 0 ..< cin {
                        for a in 0 ..< kh {
                            let iy = y * g.strideY - g.padY + a * g.dilationY
                            if iy < 0 || iy >= h { continue }
                            for b in 0 ..< kw {
                                let ix = x * g.strideX - g.padX + b * g.dilationX
                                if ix < 0 || ix >= w { continue }
                                sum += Double(abs(weights[((o * cin + c) * kh + a) * kw + b])) * Double(abs(input[(c * h + iy) * w + ix]))
                            }
                        }
                    }
                    m[(o * oh + y) * ow + x] = sum
                }
            }
        }
        return m
    }

    /// M of Winograd F(4×4, 3×3), per output: Σ_in |Aᵀ| ((|G| |g| |Gᵀ|) ⊙ (|Bᵀ| |d| |B|)) |A|
    /// + |bias| + |old output|, in double, for a 3×3 kernel of any dilation (a dilated layer is
    /// one ordinary Winograd convolution per phase, its taps d apart). Which of a tile's 16
    /// places an output takes depends on how a kernel tiles the map, so each output gets the
    /// largest M over all 16 places (rows of Aᵀ bounded by their largest entries column by
    /// column, 1 1 1 8 8 1).
    static func winogradMagnitudes(_ g: ConvolutionGeometry, input: [Float], height h: Int, width w: Int,
                                   weights: [Float], bias: [Float]?, initial: [Float]?) -> [Double] {
        precondition(g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideY == 1 && g.strideX == 1)
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let cin = g.inputChannels, cout = g.outputChannels, dy = g.dilationY, dx = g.dilationX
        let bt = ReferenceKernels.WinogradMatrices.bt.map { $0.map(abs) }
        let gm = ReferenceKernels.WinogradMatrices.g.map { $0.map(abs) }
        let at = ReferenceKernels.WinogradMatrices.at.map { $0.map(abs) }
        let aMax = (0 ..< 6).map { i in at.map { $0[i] }.max()! }
        // |U| per (out, in): 36 values.
        var u = [Double](repeating: 0, count: cout * cin * 36)
        for oc in 0 ..< cout * cin {
            for i in 0 ..< 6 {
                for j in 0 ..< 6 {
                    var s = 0.0
                    for a in 0 ..< 3 { for b in 0 ..< 3 { s += gm[i][a] * Double(abs(weights[oc * 9 + a * 3 + b])) * gm[j][b] } }
                    u[(oc * 6 + i) * 6 + j] = s * aMax[i] * aMax[j]
                }
            }
        }
        // A tile whose first output is (y0, x0) reads input rows y0 - padY + dy·k, k = 0 ..< 6.
        // Tile origins for every place an output can take: y0 from -3·dy to oh - 1.
        let y0s = Array(-3 * dy ..< oh), x0s = Array(-3 * dx ..< ow)
        var v = [Double](repeating: 0, count: 36 * cin)
        var t = [Double](repeating: 0, count: 36)
        var perTile = [Double](repeating: 0, count: cout * y0s.count * x0s.count)
        for (ty, y0) in y0s.enumerated() {
            for (tx, x0) in x0s.enumerated() {
                for c in 0 ..< cin {
                    func d(_ k: Int, _ l: Int) -> Double {
                        let y = y0 - g.padY + dy * k, x = x0 - g.padX + dx * l
                        return y >= 0 && y < h && x >= 0 && x < w ? Double(abs(input[(c * h + y) * w + x])) : 0
                    }
                    for i in 0 ..< 6 { for l in 0 ..< 6 { var s = 0.0; for k in 0 ..< 6 { s += bt[i][k] * d(k, l) }; t[i * 6 + l] = s } }
                    for i in 0 ..< 6 { for j in 0 ..< 6 { var s = 0.0; for l in 0 ..< 6 { s += t[i * 6 + l] * bt[j][l] }; v[c * 36 + i * 6 + j] = s } }
                }
                for o in 0 ..< cout {
                    var s = 0.0
                    for c in 0 ..< cin { for e in 0 ..< 36 { s += u[(o * cin + c) * 36 + e] * v[c * 36 + e] } }
                    perTile[(o * y0s.count + ty) * x0s.count + tx] = s
                }
            }
        }
        var m = [Double](repeating: 0, count: cout * oh * ow)
        for o in 0 ..< cout {
            for y in 0 ..< oh {
                for x in 0 ..< ow {
                    var worst = 0.0
                    for r in 0 ..< 4 {
                        for s in 0 ..< 4 {
                            let ty = y - dy * r + 3 * dy, tx = x - dx * s + 3 * dx
                            worst = max(worst, perTile[(o * y0s.count + ty) * x0s.count + tx])
                        }
                    }
                    m[(o * oh + y) * ow + x] = worst + Double(abs(bias?[o] ?? 0)) + Double(abs(initial?[(o * oh + y) * ow + x] ?? 0))
                }
            }
        }
        return m
    }

    /// The bound array pooled like the outputs (2×2, stride 2, floor or ceil): a max pool's
    /// error is at most the largest error in its window.
    static func maxPooled(_ bound: [Double], channels: Int, height: Int, width: Int, ceilMode: Bool) -> [Double] {
        let ph = ceilMode ? (height + 1) / 2 : height / 2, pw = ceilMode ? (width + 1) / 2 : width / 2
        var pooled = [Double](repeating: 0, count: channels * ph * pw)
        for c in 0 ..< channels {
            for y in 0 ..< ph {
                for x in 0 ..< pw {
                    var worst = 0.0
                    for a in 0 ..< 2 where 2 * y + a < height {
                        for b in 0 ..< 2 where 2 * x + b < width { worst = max(worst, bound[(c * height + 2 * y + a) * width + 2 * x + b]) }
                    }
                    pooled[(c * ph + y) * pw + x] = worst
                }
            }
        }
        return pooled
    }

    /// How `actual` sits against `expected` given a per-element bound: the largest
    /// |actual − expected| / bound (≤ 1 passes), and how many elements exceed their bound.
    struct Report: CustomStringConvertible {
        var worstRatio: Double, beyond: Int, count: Int, worstIndex: Int, worstError: Double, worstBound: Double
        var description: String {
            "worst |error| / bound \(worstRatio) at \(worstIndex) (\(worstError) of \(worstBound)), \(beyond) of \(count) beyond"
        }
    }

    static func compare(_ actual: [Float], _ expected: [Float], bound: [Double]) -> Report {
        precondition(actual.count == expected.count && expected.count == bound.count)
        var report = Report(worstRatio: 0, beyond: 0, count: actual.count, worstIndex: -1, worstError: 0, worstBound: 0)
        for i in 0 ..< actual.count {
            let error = abs(Double(actual[i]) - Double(expected[i]))
            // A zero bound (an output with nothing in it) must match exactly; NaN never passes.
            let ratio = error.isNaN ? .infinity : (error == 0 ? 0 : error / bound[i])
            if ratio > 1 { report.beyond += 1 }
            if ratio > report.worstRatio || report.worstIndex < 0 {
                report = Report(worstRatio: ratio, beyond: report.beyond, count: actual.count, worstIndex: i, worstError: error, worstBound: bound[i])
            }
        }
        return report
    }
}
