import Testing
import NetnetKernels

/// One convolution test case: a geometry and an input size.
struct ConvCase: CustomStringConvertible, Sendable {
    var name: String
    var geometry: ConvolutionGeometry
    var height: Int, width: Int
    var description: String {
        let g = geometry
        return "\(name): in \(g.inputChannels) out \(g.outputChannels) k \(g.kernelHeight)x\(g.kernelWidth) s \(g.strideY),\(g.strideX) p \(g.padY),\(g.padX) d \(g.dilationY),\(g.dilationX) @ \(height)x\(width)"
    }
}

/// Runs fast vs reference for one case and option set; returns nil on success or a failure text.
func checkConvolution(_ c: ConvCase, relu: Bool, accumulate: Bool, withBias: Bool,
                      columnBudget: Int?, workspaceFloats: Int? = nil, byColumns: KernelTeam? = nil,
                      seed: UInt64) -> String? {
    var rng = SeededGenerator(seed: seed)
    let g = c.geometry
    let oh = g.outputHeight(inputHeight: c.height), ow = g.outputWidth(inputWidth: c.width)
    let input = rng.array(g.inputChannels * c.height * c.width)
    let weights = rng.array(g.weightCount, -0.5 ... 0.5)
    let bias = rng.array(g.outputChannels)
    let initial = rng.array(g.outputChannels * oh * ow)  // what `output` holds before the call
    var fast = initial
    var reference = initial
    let budget = columnBudget ?? Convolution.defaultColumnBudget
    let needed = Convolution.workspaceCount(geometry: g, inputHeight: c.height, inputWidth: c.width, columnBudget: budget)
    let workspace = AlignedBuffer(count: workspaceFloats ?? needed)
    input.withPointer { x in
        weights.withPointer { w in
            bias.withPointer { b in
                fast.withMutablePointer { y in
                    if let team = byColumns {
                        Convolution.forwardPointwiseByColumns(geometry: g, input: x, inputHeight: c.height, inputWidth: c.width,
                                                              weights: w, bias: withBias ? b : nil, output: y,
                                                              relu: relu, accumulate: accumulate, team: team)
                    } else {
                        Convolution.forward(geometry: g, input: x, inputHeight: c.height, inputWidth: c.width,
                                            weights: w, bias: withBias ? b : nil, output: y,
                                            relu: relu, accumulate: accumulate, workspace: workspace.buffer,
                                            columnBudget: budget)
                    }
                }
                reference.withMutablePointer { y in
                    ReferenceKernels.convolution(geometry: g, input: x, inputHeight: c.height, inputWidth: c.width,
                                                 weights: w, bias: withBias ? b : nil, output: y,
                                                 relu: relu, accumulate: accumulate)
                }
            }
        }
    }
    // Both are float32 sums of the same terms (the reference's in another order): each within
    // γ(k+2) · M of the exact value (`ErrorBound`), so within twice that of each other.
    let bound = ErrorBound.directMagnitudes(g, input: input, height: c.height, width: c.width, weights: weights,
                                            bias: withBias ? bias : nil, initial: accumulate ? initial : nil)
        .map { 2 * ErrorBound.gamma(ErrorBound.directRoundings(g)) * $0 }
    let report = ErrorBound.compare(fast, reference, bound: bound)
    if report.worstRatio <= 1 { return nil }
    return "\(c) relu \(relu) accumulate \(accumulate) bias \(withBias) budget \(budget) workspace \(workspace.count): \(report)"
}

/// The geometries NETNet / SSD use, shrunk in channels (and size where it does not matter).
let namedConvCases: [ConvCase] = [
    ConvCase(name: "3x3 p1 (VGG)", geometry: .init(inputChannels: 3, outputChannels: 5, kernel: 3, padding: 1), height: 11, width: 13),
    ConvCase(name: "3x3 p1 larger (parallel im2col)", geometry: .init(inputChannels: 16, outputChannels: 8, kernel: 3, padding: 1), height: 24, width: 26),
    ConvCase(name: "conv6 dilation 6 pad 6 @19", geometry: .init(inputChannels: 4, outputChannels: 5, kernel: 3, stride: 1, padding: 6, dilation: 6), height: 19, width: 19),
    ConvCase(name: "SSD512 last extra 4x4 p1", geometry: .init(inputChannels: 6, outputChannels: 4, kernel: 4, padding: 1), height: 2, width: 2),
    ConvCase(name: "4x4 p1 @5x7", geometry: .init(inputChannels: 3, outputChannels: 4, kernel: 4, padding: 1), height: 5, width: 7),
    ConvCase(name: "3x3 s2 p1 @19", geometry: .init(inputChannels: 5, outputChannels: 6, kernel: 3, stride: 2, padding: 1), height: 19, width: 19),
    ConvCase(name: "3x3 s2 p1 @10", geometry: .init(inputChannels: 5, outputChannels: 6, kernel: 3, stride: 2, padding: 1), height: 10, width: 10),
    ConvCase(name: "3x3 p0 @5", geometry: .init(inputChannels: 4, outputChannels: 3, kernel: 3), height: 5, width: 5),
    ConvCase(name: "3x3 p0 @3 -> 1x1", geometry: .init(inputChannels: 4, outputChannels: 3, kernel: 3), height: 3, width: 3),
    ConvCase(name: "pointwise", geometry: .init(inputChannels: 7, outputChannels: 9, kernel: 1), height: 6, width: 5),
    ConvCase(name: "pointwise large (parallel epilogue)", geometry: .init(inputChannels: 32, outputChannels: 64, kernel: 1), height: 48, width: 48),
    ConvCase(name: "1x1 stride 2 (not pointwise)", geometry: .init(inputChannels: 3, outputChannels: 4, kernel: 1, stride: 2), height: 9, width: 8),
    ConvCase(name: "ResNet projection 1x1 stride 2 @16 (even size)", geometry: .init(inputChannels: 16, outputChannels: 24, kernel: 1, stride: 2), height: 16, width: 16),
    ConvCase(name: "ResNet stem 7x7 s2 p3 @21", geometry: .init(inputChannels: 3, outputChannels: 8, kernel: 7, stride: 2, padding: 3), height: 21, width: 20),
    ConvCase(name: "1x1 pad 1 (not pointwise)", geometry: .init(inputChannels: 3, outputChannels: 4, kernel: 1, padding: 1), height: 4, width: 5),
    ConvCase(name: "rectangular 1x3 / 3x1 mix", geometry: .init(inputChannels: 3, outputChannels: 2, kernelHeight: 1, kernelWidth: 3, strideY: 1, strideX: 2, padY: 0, padX: 1, dilationY: 1, dilationX: 2), height: 6, width: 9),
    ConvCase(name: "kernel wider than input + pad", geometry: .init(inputChannels: 2, outputChannels: 2, kernelHeight: 5, kernelWidth: 5, strideY: 3, strideX: 1, padY: 2, padX: 2, dilationY: 1, dilationX: 1), height: 3, width: 2),
    ConvCase(name: "1x1 input, 3x3 p1", geometry: .init(inputChannels: 3, outputChannels: 2, kernel: 3, padding: 1), height: 1, width: 1),
]

@Suite struct ConvolutionTests {
    @Test(arguments: namedConvCases)
    func namedGeometriesAllOptions(_ c: ConvCase) {
        var seed: UInt64 = 1
        for relu in [false, true] {
            for accumulate in [false, true] {
                for withBias in [false, true] {
                    seed += 1
                    let failure = checkConvolution(c, relu: relu, accumulate: accumulate, withBias: withBias,
                                                   columnBudget: nil, seed: seed)
                    if let failure { Issue.record("\(failure)") }
                }
            }
        }
    }

    /// The 1×1 GEMM cut by columns over a team (`forwardPointwiseByColumns`, what a oneDNN
    /// detector runs on OpenBLAS for ResNet's reducing 1×1s on AVX2 CPUs) against the plain
    /// reference: one part (fewer than 128 columns), two and three parts with a last part shorter
    /// than the others and not a multiple of 16, and a team of one.
    @Test(arguments: [
        ConvCase(name: "pointwise, one part", geometry: .init(inputChannels: 7, outputChannels: 9, kernel: 1), height: 6, width: 5),
        ConvCase(name: "reducing 1x1, two parts", geometry: .init(inputChannels: 64, outputChannels: 16, kernel: 1), height: 33, width: 31),
        ConvCase(name: "widening 1x1, three parts", geometry: .init(inputChannels: 16, outputChannels: 40, kernel: 1), height: 17, width: 13),
    ], [1, 2, 3])
    func pointwiseByColumns(_ c: ConvCase, threads: Int) {
        var seed: UInt64 = 200
        for relu in [false, true] {
            for accumulate in [false, true] {
                for withBias in [false, true] {
                    seed += 1
                    let failure = checkConvolution(c, relu: relu, accumulate: accumulate, withBias: withBias, columnBudget: nil,
                                                   byColumns: KernelTeam(threads: threads, onOpenMP: false), seed: seed)
                    if let failure { Issue.record("threads \(threads): \(failure)") }
                }
            }
        }
    }

    /// Budgets forcing many tiles: 1 float (below one row: one row per tile), exactly one row,
    /// one row minus one, two rows plus a bit, and a workspace larger than the budget.
    @Test(arguments: namedConvCases.filter { !$0.geometry.isPointwise })
    func tinyColumnBudgets(_ c: ConvCase) {
        let g = c.geometry
        let row = g.columnRows * g.outputWidth(inputWidth: c.width)
        var seed: UInt64 = 100
        for budget in [1, row - 1, row, 2 * row + 3, 3 * row] {
            seed += 1
            let failure = checkConvolution(c, relu: true, accumulate: seed % 2 == 0, withBias: true,
                                           columnBudget: budget, seed: seed)
            if let failure { Issue.record("\(failure)") }
        }
        // A workspace bigger than needed (e.g. the engine's shared maximum) with a small budget.
        let failure = checkConvolution(c, relu: false, accumulate: false, withBias: true,
                                       columnBudget: row + 1, workspaceFloats: 5 * row + 7, seed: 999)
        if let failure { Issue.record("\(failure)") }
    }

    /// The default-budget entry point (exact public signature) on a shape with several tiles.
    @Test func defaultEntryPoint() {
        let g = ConvolutionGeometry(inputChannels: 3, outputChannels: 4, kernel: 3, padding: 1)
        let h = 9, w = 10
        var rng = SeededGenerator(seed: 7)
        let x = rng.array(3 * h * w), wt = rng.array(g.weightCount), b = rng.array(4)
        var fast = [Float](repeating: 0, count: 4 * h * w)
        var reference = fast
        let workspace = AlignedBuffer(count: Convolution.workspaceCount(geometry: g, inputHeight: h, inputWidth: w))
        x.withPointer { xp in wt.withPointer { wp in b.withPointer { bp in
            fast.withMutablePointer { yp in
                Convolution.forward(geometry: g, input: xp, inputHeight: h, inputWidth: w, weights: wp, bias: bp,
                                    output: yp, relu: true, accumulate: false, workspace: workspace.buffer)
            }
            reference.withMutablePointer { yp in
                ReferenceKernels.convolution(geometry: g, input: xp, inputHeight: h, inputWidth: w, weights: wp,
                                             bias: bp, output: yp, relu: true, accumulate: false)
            }
        } } }
        let bound = ErrorBound.directMagnitudes(g, input: x, height: h, width: w, weights: wt, bias: b, initial: nil)
            .map { 2 * ErrorBound.gamma(ErrorBound.directRoundings(g)) * $0 }
        let report = ErrorBound.compare(fast, reference, bound: bound)
        #expect(report.worstRatio <= 1, "\(report)")
    }

    /// Random geometries: kernel 1–5 (rectangular), stride 1–3, pad 0–3, dilation 1–3, sizes 1–14.
    @Test func randomGeometries() {
        var rng = SeededGenerator(seed: 2024)
        var tested = 0
        while tested < 60 {
            let kh = rng.int(1 ... 5), kw = rng.int(1 ... 5)
            let g = ConvolutionGeometry(inputChannels: rng.int(1 ... 5), outputChannels: rng.int(1 ... 6),
                                        kernelHeight: kh, kernelWidth: kw,
                                        strideY: rng.int(1 ... 3), strideX: rng.int(1 ... 3),
                                        padY: rng.int(0 ... 3), padX: rng.int(0 ... 3),
                                        dilationY: rng.int(1 ... 3), dilationX: rng.int(1 ... 3))
            let h = rng.int(1 ... 14), w = rng.int(1 ... 14)
            guard g.outputHeight(inputHeight: h) >= 1, g.outputWidth(inputWidth: w) >= 1 else { continue }
            tested += 1
            let c = ConvCase(name: "random #\(tested)", geometry: g, height: h, width: w)
            let row = g.columnRows * g.outputWidth(inputWidth: w)
            let budget: Int? = rng.int(0 ... 2) == 0 ? nil : rng.int(1 ... 3 * row)
            let failure = checkConvolution(c, relu: rng.int(0 ... 1) == 1, accumulate: rng.int(0 ... 1) == 1,
                                           withBias: rng.int(0 ... 1) == 1, columnBudget: budget,
                                           seed: UInt64(tested))
            if let failure { Issue.record("\(failure)") }
        }
    }

    /// workspaceCount: 0 for pointwise; otherwise at least one output row (forward's
    /// precondition) and never more than max(budget, K * ow).
    @Test func workspaceCountRespectsBudgetRule() {
        var rng = SeededGenerator(seed: 77)
        for _ in 0 ..< 2000 {
            let g = ConvolutionGeometry(inputChannels: rng.int(1 ... 1024), outputChannels: rng.int(1 ... 64),
                                        kernel: rng.int(1 ... 5), stride: rng.int(1 ... 3),
                                        padding: rng.int(0 ... 6), dilation: rng.int(1 ... 6))
            let h = rng.int(1 ... 600), w = rng.int(1 ... 600)
            let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
            guard oh >= 1 && ow >= 1 else { continue }
            let budget = [1, rng.int(1 ... 1 << 16), rng.int(1 ... 1 << 24), Convolution.defaultColumnBudget][rng.int(0 ... 3)]
            let count = Convolution.workspaceCount(geometry: g, inputHeight: h, inputWidth: w, columnBudget: budget)
            if g.isPointwise {
                #expect(count == 0)
                continue
            }
            let row = g.columnRows * ow
            #expect(count <= max(budget, row), "\(g) @\(h)x\(w) budget \(budget): \(count)")
            #expect(count >= row, "\(g) @\(h)x\(w) budget \(budget): \(count) < one row \(row)")
            #expect(count % row == 0 && count <= row * oh, "\(g) @\(h)x\(w): \(count) not whole rows")
        }
        // conv1_2 of VGG16 at 300x300 (untiled: 51.8 M floats) stays within the default budget.
        let conv12 = ConvolutionGeometry(inputChannels: 64, outputChannels: 64, kernel: 3, padding: 1)
        #expect(Convolution.workspaceCount(geometry: conv12, inputHeight: 300, inputWidth: 300) <= Convolution.defaultColumnBudget)
    }

    @Test func geometryArithmetic() {
        let conv6 = ConvolutionGeometry(inputChannels: 512, outputChannels: 1024, kernel: 3, stride: 1, padding: 6, dilation: 6)
        #expect(conv6.outputHeight(inputHeight: 19) == 19 && conv6.outputWidth(inputWidth: 19) == 19)
        let s2 = ConvolutionGeometry(inputChannels: 1, outputChannels: 1, kernel: 3, stride: 2, padding: 1)
        #expect(s2.outputHeight(inputHeight: 19) == 10 && s2.outputHeight(inputHeight: 10) == 5 && s2.outputHeight(inputHeight: 5) == 3)
        let p0 = ConvolutionGeometry(inputChannels: 1, outputChannels: 1, kernel: 3)
        #expect(p0.outputHeight(inputHeight: 5) == 3 && p0.outputHeight(inputHeight: 3) == 1 && p0.outputHeight(inputHeight: 2) <= 0)
        let k4 = ConvolutionGeometry(inputChannels: 1, outputChannels: 1, kernel: 4, padding: 1)
        #expect(k4.outputHeight(inputHeight: 2) == 1)
        #expect(ConvolutionGeometry(inputChannels: 8, outputChannels: 4, kernel: 1).isPointwise)
        #expect(!ConvolutionGeometry(inputChannels: 8, outputChannels: 4, kernel: 1, stride: 2).isPointwise)
        #expect(!ConvolutionGeometry(inputChannels: 8, outputChannels: 4, kernel: 1, padding: 1).isPointwise)
        let vgg = ConvolutionGeometry(inputChannels: 64, outputChannels: 64, kernel: 3, padding: 1)
        #expect(vgg.weightCount == 64 * 64 * 9)
        #expect(vgg.multiplyAccumulates(inputHeight: 300, inputWidth: 300) == 64 * 64 * 9 * 90_000)
    }
}
