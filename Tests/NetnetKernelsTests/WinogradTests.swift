import Testing
import NetnetKernels

/// Winograd F(4×4, 3×3) on OpenBLAS against the direct convolution and against its plain twin,
/// per output within bounds from the arithmetic (`ErrorBound`): each float32 evaluation lands
/// within γ(winograd) · M_winograd (Winograd) or γ(k+2) · M_direct (direct) of the exact
/// convolution, whatever order OpenBLAS's kernel for this CPU sums in; two evaluations within
/// the sum of their bounds.
@Suite("Winograd F(4x4, 3x3)")
struct WinogradTests {
    struct Outcome {
        var fast: [Float], twin: [Float], direct: [Float]
        /// γ(winograd) · M_winograd and γ(k+2) · M_direct, per output.
        var winogradBound: [Double], directBound: [Double]
    }

    /// Runs the three convolutions on seeded random data; `budget`/`targetTiles` shape the chunks.
    static func run(_ g: ConvolutionGeometry, height h: Int, width w: Int, relu: Bool, accumulate: Bool,
                    withBias: Bool, budget: Int = Winograd.defaultBudget, targetTiles: Int = Winograd.targetTiles,
                    threads: Int = 2, workspaceThreads: Int? = nil, seed: UInt64) -> Outcome {
        var rng = SeededGenerator(seed: seed)
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let input = rng.array(g.inputChannels * h * w)
        let weights = rng.array(g.weightCount, -0.5 ... 0.5)
        let bias = rng.array(g.outputChannels)
        let initial = rng.array(g.outputChannels * oh * ow)
        var fast = initial, twin = initial, direct = initial
        let transformed = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: g))
        let workspace = AlignedBuffer(count: Winograd.workspaceCount(geometry: g, inputHeight: h, inputWidth: w,
                                                                     threads: workspaceThreads ?? threads, budget: budget,
                                                                     targetTiles: targetTiles))
        let savedThreads = KernelThreads.current
        KernelThreads.set(threads)
        defer { KernelThreads.set(savedThreads) }
        input.withPointer { x in
            weights.withPointer { wt in
                bias.withPointer { b in
                    Winograd.transformWeights(geometry: g, weights: wt, transformed: transformed.pointer)
                    fast.withMutablePointer { y in
                        Winograd.forward(geometry: g, input: x, inputHeight: h, inputWidth: w,
                                         transformedWeights: transformed.pointer, bias: withBias ? b : nil,
                                         output: y, relu: relu, accumulate: accumulate,
                                         workspace: workspace.buffer, budget: budget, targetTiles: targetTiles)
                    }
                    twin.withMutablePointer { y in
                        ReferenceKernels.winogradConvolution(geometry: g, input: x, inputHeight: h, inputWidth: w,
                                                             weights: wt, bias: withBias ? b : nil, output: y,
                                                             relu: relu, accumulate: accumulate)
                    }
                    direct.withMutablePointer { y in
                        ReferenceKernels.convolution(geometry: g, input: x, inputHeight: h, inputWidth: w,
                                                     weights: wt, bias: withBias ? b : nil, output: y,
                                                     relu: relu, accumulate: accumulate)
                    }
                }
            }
        }
        let usedBias = withBias ? bias : nil, usedInitial = accumulate ? initial : nil
        let winogradN = ErrorBound.winogradRoundings(inputChannels: g.inputChannels), directN = ErrorBound.directRoundings(g)
        let mw = ErrorBound.winogradMagnitudes(g, input: input, height: h, width: w, weights: weights, bias: usedBias, initial: usedInitial)
        let md = ErrorBound.directMagnitudes(g, input: input, height: h, width: w, weights: weights, bias: usedBias, initial: usedInitial)
        return Outcome(fast: fast, twin: twin, direct: direct, winogradBound: mw.map { ErrorBound.gamma(winogradN) * $0 },
                       directBound: md.map { ErrorBound.gamma(directN) * $0 })
    }

    static func check(_ o: Outcome, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let winogradVsDirect = zip(o.winogradBound, o.directBound).map { $0 + $1 }
        let vsDirect = ErrorBound.compare(o.fast, o.direct, bound: winogradVsDirect)
        #expect(vsDirect.worstRatio <= 1, "\(what) fast vs direct: \(vsDirect)", sourceLocation: sourceLocation)
        let twinVsDirect = ErrorBound.compare(o.twin, o.direct, bound: winogradVsDirect)
        #expect(twinVsDirect.worstRatio <= 1, "\(what) twin vs direct: \(twinVsDirect)", sourceLocation: sourceLocation)
        let vsTwin = ErrorBound.compare(o.fast, o.twin, bound: o.winogradBound.map { 2 * $0 })
        #expect(vsTwin.worstRatio <= 1, "\(what) fast vs twin: \(vsTwin)", sourceLocation: sourceLocation)
    }

    @Test("eligibility: 3x3, stride 1, dilation 1, any padding")
    func eligibility() {
        #expect(Winograd.isEligible(.init(inputChannels: 4, outputChannels: 4, kernel: 3, padding: 1)))
        #expect(Winograd.isEligible(.init(inputChannels: 4, outputChannels: 4, kernel: 3, padding: 0)))
        #expect(!Winograd.isEligible(.init(inputChannels: 4, outputChannels: 4, kernel: 3, stride: 2, padding: 1)))
        #expect(!Winograd.isEligible(.init(inputChannels: 4, outputChannels: 4, kernel: 3, padding: 6, dilation: 6)))
        #expect(!Winograd.isEligible(.init(inputChannels: 4, outputChannels: 4, kernel: 1)))
        #expect(!Winograd.isEligible(.init(inputChannels: 4, outputChannels: 4, kernel: 4, padding: 1)))
    }

    @Test("random shapes: channels, odd/even sizes not multiples of 4, pad 0/1/2, bias, ReLU, accumulate")
    func randomShapes() {
        var rng = SeededGenerator(seed: 0x5EED_0006)
        for index in 0 ..< 40 {
            let pad = [1, 1, 0, 2][index % 4]
            let g = ConvolutionGeometry(inputChannels: rng.int(1 ... 12), outputChannels: rng.int(1 ... 10),
                                        kernel: 3, padding: pad)
            let h = rng.int(max(1, 3 - 2 * pad) ... 17), w = rng.int(max(1, 3 - 2 * pad) ... 17)
            let relu = rng.int(0 ... 1) == 1, accumulate = rng.int(0 ... 3) == 0, withBias = rng.int(0 ... 2) != 0
            // Every third case in small chunks (one tile row each), so chunk edges are exercised.
            let targetTiles = index % 3 == 0 ? 1 : Winograd.targetTiles
            let outcome = Self.run(g, height: h, width: w, relu: relu, accumulate: accumulate, withBias: withBias,
                                   targetTiles: targetTiles, threads: 1 + index % 2, seed: UInt64(index))
            Self.check(outcome, "case \(index): in \(g.inputChannels) out \(g.outputChannels) p \(pad) @ \(h)x\(w) relu \(relu) acc \(accumulate) bias \(withBias) target \(targetTiles)")
        }
    }

    @Test("VGG-like channels (64 in) and a budget that forces several chunks")
    func wideAndChunked() {
        let g = ConvolutionGeometry(inputChannels: 64, outputChannels: 24, kernel: 3, padding: 1)
        // One tile row of 6 tiles needs 36 * 88 * 6 floats; a budget of two rows gives 3 chunks.
        let budget = 36 * 88 * 6 * 2
        let outcome = Self.run(g, height: 23, width: 21, relu: true, accumulate: false, withBias: true,
                               budget: budget, seed: 64)
        Self.check(outcome, "64→24 @ 23x21, budget \(budget)")
    }

    @Test("chunking and threads do not change the result")
    func chunkingIsExact() {
        let g = ConvolutionGeometry(inputChannels: 5, outputChannels: 7, kernel: 3, padding: 1)
        let whole = Self.run(g, height: 19, width: 14, relu: true, accumulate: true, withBias: true,
                             threads: 1, seed: 9)
        let chunked = Self.run(g, height: 19, width: 14, relu: true, accumulate: true, withBias: true,
                               targetTiles: 1, threads: 2, seed: 9)
        expectIdentical(chunked.fast, whole.fast, "one chunk, 1 thread vs one tile row per chunk, 2 threads")
    }

    @Test("workspace size: matches the chunking, and one thread's scratch is enough")
    func workspaceSize() {
        let g = ConvolutionGeometry(inputChannels: 3, outputChannels: 2, kernel: 3, padding: 1)
        // 9x9 output: 3x3 tiles; one chunk of all 9 tiles; scratch per thread: the larger of the
        // input transform's 48 * (3 + 1) and the output transform's 40 rows of 3 tiles padded to
        // 8, plus 8 floats of slack; and 8 floats of slack after the products.
        let slot = max(48 * 4, 40 * 8) + 8, slack = Winograd.productSlack
        #expect(slack == 8)
        #expect(Winograd.workspaceCount(geometry: g, inputHeight: 9, inputWidth: 9, threads: 1) == 36 * 5 * 9 + slack + slot)
        #expect(Winograd.workspaceCount(geometry: g, inputHeight: 9, inputWidth: 9, threads: 2) == 36 * 5 * 9 + slack + 2 * slot)
        #expect(Winograd.workspaceCount(geometry: g, inputHeight: 9, inputWidth: 9, threads: 1, targetTiles: 1) == 36 * 5 * 3 + slack + slot)
        // A workspace sized for one thread still runs (with one thread) when more are allowed.
        let outcome = Self.run(g, height: 9, width: 9, relu: false, accumulate: false, withBias: true,
                               threads: 2, workspaceThreads: 1, seed: 3)
        Self.check(outcome, "3→2 @ 9x9")
    }
}
