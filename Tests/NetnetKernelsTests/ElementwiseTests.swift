import Foundation
import Testing
import NetnetKernels

@Suite struct ElementwiseTests {
    /// Counts around the vector width and above the threading threshold.
    static let counts = [0, 1, 7, 8, 9, 31, 1000, 200_003]

    @Test(arguments: ElementwiseTests.counts)
    func sigmoid(_ n: Int) {
        var rng = SeededGenerator(seed: UInt64(n) + 5)
        var x = rng.array(n, -12 ... 12)
        if n >= 8 { x[0] = -100; x[1] = 100; x[2] = 0; x[3] = -88; x[4] = 88; x[5] = -1e30; x[6] = 1e30 }
        var fast = [Float](repeating: .nan, count: n)
        var reference = fast
        x.withPointer { xp in
            fast.withMutablePointer { Elementwise.sigmoid(xp, into: $0, count: n) }
            reference.withMutablePointer { ReferenceKernels.sigmoid(xp, into: $0, count: n) }
        }
        // σ = 1 / (1 + e): e within 2 ulp (2⁻²²) of exp(−x) moves σ by at most σ(1 − σ) ≤ ¼ of
        // that, and the addition and division round twice: ≤ 2⁻²⁴ + 2 · 2⁻²⁴ ≈ 1.8e-7, held to 1e-6.
        let e = errors(fast, reference)
        #expect(e.maxError <= 1e-6, "n \(n): \(describe(e))")
        // In place.
        var y = x
        y.withMutablePointer { Elementwise.sigmoid($0, into: $0, count: n) }
        expectIdentical(y, fast, "n \(n): in-place differs")
    }

    @Test(arguments: ElementwiseTests.counts)
    func addReluCopy(_ n: Int) {
        var rng = SeededGenerator(seed: UInt64(n) + 9)
        let a = rng.array(n), b = rng.array(n)
        var sum = [Float](repeating: .nan, count: n), sumRef = sum
        var relu = sum, reluRef = sum, copied = sum
        a.withPointer { ap in b.withPointer { bp in
            sum.withMutablePointer { Elementwise.add(ap, bp, into: $0, count: n) }
            sumRef.withMutablePointer { ReferenceKernels.add(ap, bp, into: $0, count: n) }
            relu.withMutablePointer { Elementwise.relu(ap, into: $0, count: n) }
            reluRef.withMutablePointer { ReferenceKernels.relu(ap, into: $0, count: n) }
            copied.withMutablePointer { Elementwise.copy(ap, into: $0, count: n) }
        } }
        expectIdentical(sum, sumRef, "add n \(n)")
        expectIdentical(relu, reluRef, "relu n \(n)")
        expectIdentical(copied, a, "copy n \(n)")
        // Aliasing: out == a.
        var inPlace = a
        b.withPointer { bp in inPlace.withMutablePointer { Elementwise.add($0, bp, into: $0, count: n) } }
        expectIdentical(inPlace, sumRef, "add in place n \(n)")
        inPlace = a
        inPlace.withMutablePointer { Elementwise.relu($0, into: $0, count: n) }
        expectIdentical(inPlace, reluRef, "relu in place n \(n)")
        inPlace.withMutablePointer { Elementwise.copy($0, into: $0, count: n) }
        expectIdentical(inPlace, reluRef, "copy onto itself n \(n)")
    }

    @Test("sigmoid fused into the erase pass equals sigmoid then gateErase", arguments: ElementwiseTests.counts)
    func sigmoidGateErase(_ n: Int) {
        var rng = SeededGenerator(seed: UInt64(n) + 17)
        let p = rng.array(n, -4 ... 4), logits = rng.array(n, -12 ... 12)
        var gate = [Float](repeating: .nan, count: n)
        var erased = gate, kept = gate, erasedTwoPass = gate, keptTwoPass = gate, erasedRef = gate, keptRef = gate
        p.withPointer { pp in logits.withPointer { lp in
            gate.withMutablePointer { Elementwise.sigmoid(lp, into: $0, count: n) }
            gate.withPointer { gp in erasedTwoPass.withMutablePointer { e in keptTwoPass.withMutablePointer { k in
                Elementwise.gateErase(feature: pp, gate: gp, erased: e, kept: k, count: n)
            } } }
            erased.withMutablePointer { e in kept.withMutablePointer { k in
                Elementwise.sigmoidGateErase(feature: pp, gateLogits: lp, erased: e, kept: k, count: n)
            } }
            erasedRef.withMutablePointer { e in keptRef.withMutablePointer { k in
                ReferenceKernels.sigmoidGateErase(feature: pp, gateLogits: lp, erased: e, kept: k, count: n)
            } }
        } }
        expectIdentical(erased, erasedTwoPass, "n \(n) erased"); expectIdentical(kept, keptTwoPass, "n \(n) kept")
        // erased = p·σ, kept = p − p·σ: σ's 1.8e-7 (above) times |p| ≤ 4 here, plus a rounding
        // of each result (≤ 4 · 2⁻²⁴ twice): under 1.2e-6, held to 1e-5.
        let e = errors(erased, erasedRef), k = errors(kept, keptRef)
        #expect(e.maxError <= 1e-5 && k.maxError <= 1e-5, "n \(n): erased \(describe(e)), kept \(describe(k))")
        // One output at a time, in place over the feature (as the engine runs NEM-less NETMs).
        var onlyErased = [Float](repeating: .nan, count: n), inPlace = p
        p.withPointer { pp in logits.withPointer { lp in
            onlyErased.withMutablePointer { Elementwise.sigmoidGateErase(feature: pp, gateLogits: lp, erased: $0, kept: nil, count: n) }
            inPlace.withMutablePointer { Elementwise.sigmoidGateErase(feature: $0, gateLogits: lp, erased: nil, kept: $0, count: n) }
        } }
        expectIdentical(onlyErased, erasedTwoPass, "n \(n) erased only"); expectIdentical(inPlace, keptTwoPass, "n \(n) kept in place")
    }

    @Test("channel max and mean equal their plain twins bit for bit, on one thread and on the team",
          arguments: [(1, 1), (3, 1444), (64, 361), (128, 70_000)], [ChannelReduction.max, .mean])
    func reduceChannels(_ shape: (channels: Int, count: Int), _ reduction: ChannelReduction) {
        var rng = SeededGenerator(seed: UInt64(shape.channels * 31 + shape.count))
        let input = rng.array(shape.channels * shape.count, -8 ... 8)
        var fast = [Float](repeating: .nan, count: shape.count), single = fast, plain = fast
        input.withPointer { x in
            fast.withMutablePointer { Elementwise.reduceChannels(x, channels: shape.channels, count: shape.count, reduction, into: $0) }
            single.withMutablePointer {
                Elementwise.reduceChannels(x, channels: shape.channels, count: shape.count, reduction, into: $0, team: .single)
            }
            plain.withMutablePointer { ReferenceKernels.reduceChannels(x, channels: shape.channels, count: shape.count, reduction, into: $0) }
        }
        // Both visit each position's channels in order with the same operations: identical bits.
        expectIdentical(fast, plain, "\(reduction) \(shape)")
        expectIdentical(single, plain, "\(reduction) \(shape) single")
        // And the plain twin is what the words say.
        let i = shape.count / 2
        let column = (0..<shape.channels).map { input[$0 * shape.count + i] }
        #expect(reduction == .max ? plain[i] == column.max()! : abs(plain[i] - column.reduce(0, +) / Float(shape.channels)) <= 1e-5)
    }

    @Test("a plane broadcast to every channel")
    func broadcastPlane() {
        let plane: [Float] = [1, 2, 3]
        var out = [Float](repeating: .nan, count: 12)
        plane.withPointer { p in out.withMutablePointer { Elementwise.broadcastPlane(p, count: 3, channels: 4, into: $0) } }
        #expect(out == [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3])
    }

    @Test(arguments: ElementwiseTests.counts)
    func gateErase(_ n: Int) {
        var rng = SeededGenerator(seed: UInt64(n) + 13)
        let p = rng.array(n, -4 ... 4), g = rng.array(n, 0 ... 1)
        var erased = [Float](repeating: .nan, count: n), kept = erased
        var erasedRef = erased, keptRef = erased
        p.withPointer { pp in g.withPointer { gp in
            erasedRef.withMutablePointer { e in keptRef.withMutablePointer { k in
                ReferenceKernels.gateErase(feature: pp, gate: gp, erased: e, kept: k, count: n)
            } }
            erased.withMutablePointer { e in kept.withMutablePointer { k in
                Elementwise.gateErase(feature: pp, gate: gp, erased: e, kept: k, count: n)
            } }
        } }
        expectIdentical(erased, erasedRef, "n \(n)"); expectIdentical(kept, keptRef, "n \(n)")

        // One output at a time, and nil/nil.
        var onlyErased = [Float](repeating: .nan, count: n), onlyKept = onlyErased
        p.withPointer { pp in g.withPointer { gp in
            onlyErased.withMutablePointer { Elementwise.gateErase(feature: pp, gate: gp, erased: $0, kept: nil, count: n) }
            onlyKept.withMutablePointer { Elementwise.gateErase(feature: pp, gate: gp, erased: nil, kept: $0, count: n) }
            Elementwise.gateErase(feature: pp, gate: gp, erased: nil, kept: nil, count: n)
        } }
        expectIdentical(onlyErased, erasedRef, "n \(n) single output"); expectIdentical(onlyKept, keptRef, "n \(n) single output")

        // kept written over the feature, erased over the gate (the engine's in-place use).
        var feature = p, gate = g
        feature.withMutablePointer { fp in gate.withMutablePointer { gp in
            Elementwise.gateErase(feature: fp, gate: gp, erased: gp, kept: fp, count: n)
        } }
        expectIdentical(feature, keptRef, "n \(n) in place"); expectIdentical(gate, erasedRef, "n \(n) in place")
    }
}

@Suite struct SoftmaxTests {
    @Test(arguments: [(37, 81), (5, 1), (3, 7), (3, 8), (4, 9), (6, 16), (9, 21), (2000, 81)])
    func matchesReference(_ shape: (Int, Int)) {
        let (rows, columns) = shape
        var rng = SeededGenerator(seed: UInt64(rows * 1000 + columns))
        var x = rng.array(rows * columns, -8 ... 8)
        // Large magnitudes: a naive exp would overflow.
        for i in stride(from: 0, to: x.count, by: 5) { x[i] *= 40 }
        if columns > 2 { x[0] = 1000; x[1] = 999 }
        var fast = [Float](repeating: .nan, count: rows * columns), reference = fast
        x.withPointer { xp in
            fast.withMutablePointer { Softmax.rows(xp, rows: rows, columns: columns, into: $0) }
            reference.withMutablePointer { ReferenceKernels.softmax(xp, rows: rows, columns: columns, into: $0) }
        }
        // pᵢ = eᵢ / Σ e: each eᵢ within 2 ulp (2⁻²²) of exp (VectorMath.exp), the sum of
        // `columns` of them within γ(columns) more, the division one rounding: relative error
        // ≤ 2 · 2⁻²² + γ(columns + 1) against the double twin, absolute the same since p ≤ 1;
        // a row's sum adds γ(columns) of its own.
        let bound = 2 * 0x1p-22 + ErrorBound.gamma(columns + 1)
        let e = errors(fast, reference)
        #expect(Double(e.maxError) <= bound, "\(rows)x\(columns): \(describe(e)), bound \(bound)")
        for r in 0 ..< rows {
            let s = fast[r * columns ..< (r + 1) * columns].reduce(0, +)
            #expect(Double(abs(s - 1)) <= Double(columns) * bound + ErrorBound.gamma(columns),
                    "\(rows)x\(columns): row \(r) sums to \(s)")
        }
        var inPlace = x
        inPlace.withMutablePointer { Softmax.rows($0, rows: rows, columns: columns, into: $0) }
        expectIdentical(inPlace, fast, "\(rows)x\(columns): in place differs")
    }
}

@Suite struct LayoutTests {
    @Test(arguments: [(5, 3, 4, 5), (5, 3, 4, 9), (324, 38, 38, 324), (81 * 6, 5, 5, 81 * 6 + 3), (1, 1, 1, 1), (37, 70, 3, 40)])
    func nchwToNHWC(_ shape: (Int, Int, Int, Int)) {
        let (c, h, w, rowStride) = shape
        var rng = SeededGenerator(seed: UInt64(c * h * w))
        let x = rng.array(c * h * w)
        let sentinel: Float = 12345
        var fast = [Float](repeating: sentinel, count: h * w * rowStride), reference = fast
        x.withPointer { xp in
            fast.withMutablePointer { Layout.nchwToNHWC(xp, channels: c, height: h, width: w, into: $0, rowStride: rowStride) }
            reference.withMutablePointer { ReferenceKernels.nchwToNHWC(xp, channels: c, height: h, width: w, into: $0, rowStride: rowStride) }
        }
        expectIdentical(fast, reference, "c \(c) \(h)x\(w) stride \(rowStride)")
        if rowStride == c {
            var dense = [Float](repeating: sentinel, count: h * w * c)
            x.withPointer { xp in dense.withMutablePointer { Layout.nchwToNHWC(xp, channels: c, height: h, width: w, into: $0) } }
            expectIdentical(dense, reference, "c \(c) \(h)x\(w) dense")
        }
    }
}

@Suite struct BufferAndBLASTests {
    @Test(arguments: [0, 1, 3, 17, 1000, 1 << 20])
    func alignedBuffer(_ n: Int) {
        let b = AlignedBuffer(count: n)
        #expect(b.count == n && b.buffer.count == n)
        #expect(UInt(bitPattern: b.pointer) % 64 == 0)
        #expect(b.buffer.baseAddress == b.pointer)
        #expect(b.buffer.allSatisfy { $0 == 0 })
        if n > 0 { b.pointer[n - 1] = 3; #expect(b.buffer[n - 1] == 3) }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmMatchesNaive(_ t: (Bool, Bool)) {
        let (ta, tb) = t
        let m = 7, n = 5, k = 9
        var rng = SeededGenerator(seed: 3)
        let a = rng.array(m * k), b = rng.array(k * n)
        var c = rng.array(m * n)
        let initialC = c
        var expected = c
        for i in 0 ..< m {
            for j in 0 ..< n {
                var s: Float = 0
                for l in 0 ..< k {
                    s += (ta ? a[l * m + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * n + j])
                }
                expected[i * n + j] = 2 * s + 0.5 * expected[i * n + j]
            }
        }
        a.withPointer { ap in b.withPointer { bp in c.withMutablePointer { cp in
            GEMM.multiply(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 2, a: ap, lda: ta ? m : k,
                          b: bp, ldb: tb ? k : n, beta: 0.5, c: cp, ldc: n)
        } } }
        // Both are float32 evaluations of 2·Σ a·b + 0.5·c with at most k + 3 roundings on a
        // term's path (product, k − 1 additions, ×2, + 0.5·c): within 2γ(k+3) · M of each other,
        // M = 2·Σ |a b| + 0.5·|c| (`ErrorBound`).
        var bound = [Double](repeating: 0, count: m * n)
        for i in 0 ..< m {
            for j in 0 ..< n {
                var s = 0.0
                for l in 0 ..< k { s += abs(Double(ta ? a[l * m + i] : a[i * k + l]) * Double(tb ? b[j * k + l] : b[l * n + j])) }
                bound[i * n + j] = 2 * ErrorBound.gamma(k + 3) * (2 * s + 0.5 * Double(abs(initialC[i * n + j])))
            }
        }
        let report = ErrorBound.compare(c, expected, bound: bound)
        #expect(report.worstRatio <= 1, "transA \(ta) transB \(tb): \(report)")
    }

    @Test func threadSettings() {
        let blas = BLASThreads.current
        #expect(blas >= 1)
        BLASThreads.set(blas)
        BLASThreads.withOpenBLAS(threads: blas) { #expect(BLASThreads.current == blas) }
        let kernels = KernelThreads.current
        #expect(kernels >= 1)
        KernelThreads.set(kernels)
        #expect(KernelThreads.current == kernels)
    }
}

@Suite("OpenBLAS's process-wide thread count, leased")
struct OpenBLASLeaseTests {
    /// Four threads, two leasing 1 OpenBLAS thread and two leasing 2, each running GEMMs (the
    /// same product each time) inside its lease: every one sees its own count throughout and
    /// gets the same bits every time, as a detector's forward pass must.
    @Test("callers with different counts never overlap; each sees its count and the same bits")
    func countsDoNotOverlap() {
        let m = 64, n = 300, k = 256
        var rng = SeededGenerator(seed: 11)
        let a = rng.array(m * k, -1 ... 1), b = rng.array(k * n, -1 ... 1)
        let violations = LockedCounter()
        // Four threads of our own rather than `concurrentPerform`: that runs only as many at once
        // as there are cores (two here, too few to mix counts reliably), and a lease that
        // deadlocked would hang the whole run there, since a time limit cannot end a blocked
        // synchronous body; here it fails the test.
        let threads = (0..<4).map { index in
            Thread {
                let wanted = index % 2 + 1
                var first: [Float]?
                var c = [Float](repeating: 0, count: m * n)
                for _ in 0..<40 {
                    BLASThreads.withOpenBLAS(threads: wanted) {
                        if BLASThreads.current != wanted { violations.add() }
                        a.withPointer { ap in b.withPointer { bp in c.withMutablePointer { cp in
                            GEMM.multiply(m: m, n: n, k: k, a: ap, lda: k, b: bp, ldb: n, c: cp, ldc: n)
                        } } }
                        if BLASThreads.current != wanted { violations.add() }
                    }
                    if let first, first.map(\.bitPattern) != c.map(\.bitPattern) { violations.add() }
                    if first == nil { first = c }
                }
            }
        }
        for thread in threads { thread.start() }
        #expect(waitUntil(seconds: 120) { threads.allSatisfy(\.isFinished) }, "a lease holder never finished")
        #expect(violations.value == 0, "\(violations.value) GEMMs saw another count or other bits")
    }
}

@Suite("Spatial attention (NETNet's global gate)")
struct SpatialAttentionTests {
    @Test("matches its double-precision twin", arguments: [(8, 8, 1444, 100), (8, 16, 361, 25), (16, 8, 100, 100), (1, 1, 1, 1)])
    func matchesTwin(_ shape: (inner: Int, channels: Int, queries: Int, keys: Int)) {
        var rng = SeededGenerator(seed: UInt64(shape.queries * 7 + shape.keys))
        let q = rng.array(shape.inner * shape.queries, -1 ... 1), k = rng.array(shape.inner * shape.keys, -1 ... 1)
        let v = rng.array(shape.channels * shape.keys, -1 ... 1)
        let scale = 1 / Float(shape.inner).squareRoot()
        var fast = [Float](repeating: .nan, count: shape.channels * shape.queries), plain = fast
        var workspace = [Float](repeating: .nan, count: SpatialAttention.workspaceCount(queries: shape.queries, keys: shape.keys))
        q.withPointer { qp in k.withPointer { kp in v.withPointer { vp in
            workspace.withMutablePointer { w in fast.withMutablePointer { o in
                SpatialAttention.forward(query: qp, key: kp, value: vp, inner: shape.inner, channels: shape.channels,
                                         queries: shape.queries, keys: shape.keys, scale: scale, workspace: w, output: o)
            } }
            plain.withMutablePointer { o in
                ReferenceKernels.spatialAttention(query: qp, key: kp, value: vp, inner: shape.inner, channels: shape.channels,
                                                  queries: shape.queries, keys: shape.keys, scale: scale, output: o)
            }
        } } }
        // A logit is a float32 dot of `inner` terms, |logit| ≤ √inner ≤ 4: off by ≤ inner · 2⁻²⁴ · 4
        // ≤ 4e-6, which moves a softmax weight by that relatively; the output is a float32 sum of
        // `keys` ≤ 100 weighted values |v| ≤ 1: ≤ 100 · 2⁻²⁴ ≈ 6e-6 more. Held to 2e-5.
        let e = errors(fast, plain)
        #expect(e.maxError <= 2e-5, "\(shape): \(describe(e))")
    }
}

/// A count several threads add to.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// Polls `condition` every 10 ms for up to `seconds`.
func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline { if condition() { return true }; Thread.sleep(forTimeInterval: 0.01) }
    return condition()
}
