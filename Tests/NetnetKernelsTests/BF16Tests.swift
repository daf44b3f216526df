import Testing
@testable import NetnetKernels

/// Whether this machine runs the bf16 path (AVX512_BF16 or AMX); the machine this project is
/// built and tested on does, so in CI these tests run.
enum BF16Support {
    static let available: Bool = (try? OneDNNRuntime.checkBF16Support()) != nil
}

/// bf16 conversions against their plain twin, and `OneDNNConvolution` (oneDNN matmul) against the
/// direct convolution and the Winograd twin.
///
/// Every bound is per output and comes from the arithmetic (`ErrorBound`, `Run.bound`): γₙ · M
/// for the float32 sums of each side, plus, with bf16 operands, the roundings to bf16 that one
/// side makes and the other does not. So they hold for any summation order oneDNN picks on any
/// ISA (AVX-512 brgemm, AVX2 gemm:jit, 1–3 threads). What bf16 costs in detections is measured
/// as AP50 (docs/performance.md).
@Suite("bf16 (oneDNN)")
struct BF16Tests {
    @Test("float32 → bf16 rounds to nearest even, like the plain twin")
    func conversion() {
        var rng = SeededGenerator(seed: 41)
        var values: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
                               Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000),   // ties: to even (down, up)
                               Float(bitPattern: 0x3F80_8001), Float(bitPattern: 0x3F80_7FFF),
                               Float(bitPattern: 0x7F7F_FFFF), Float(bitPattern: 0x0000_8000)]
        for _ in 0 ..< 20_000 {
            values.append(Float(bitPattern: UInt32.random(in: 0 ... 0x7F7F_FFFF, using: &rng)) * (rng.int(0...1) == 0 ? 1 : -1))
        }
        values += rng.array(5_000, -300 ... 300)
        var fast = [UInt16](repeating: 0, count: values.count)
        values.withPointer { source in
            fast.withUnsafeMutableBufferPointer { BFloat16.convert(source, into: $0.baseAddress!, count: values.count) }
        }
        var mismatches = 0
        for (i, value) in values.enumerated() {
            let expected = ReferenceKernels.bfloat16(value)
            if fast[i] != expected || BFloat16.fromFloat(value) != expected {
                mismatches += 1
                if mismatches <= 3 { Issue.record("\(value) (0x\(String(value.bitPattern, radix: 16))): fast 0x\(String(fast[i], radix: 16)), scalar 0x\(String(BFloat16.fromFloat(value), radix: 16)), twin 0x\(String(expected, radix: 16))") }
            }
        }
        #expect(mismatches == 0)
        #expect(BFloat16.fromFloat(.nan).bitPattern16IsNaN)
        // Every finite bf16 survives the trip through float32 unchanged.
        for bits in UInt16.min ... UInt16.max where (bits & 0x7F80) != 0x7F80 {
            #expect(BFloat16.fromFloat(BFloat16.toFloat(bits)) == bits)
        }
    }

    struct Case: CustomStringConvertible, Sendable {
        var geometry: ConvolutionGeometry
        var height: Int, width: Int
        var relu = true, accumulate = false
        var columnBudget = Convolution.defaultColumnBudget
        var description: String { "\(geometry) at \(height)x\(width) relu \(relu) accumulate \(accumulate) budget \(columnBudget)" }
    }

    /// One layer run against its reference, with what the bound is made of.
    struct Run {
        var fast: [Float], reference: [Float]
        var kernel: OneDNNConvolution.Kernel, twin: Bool, operands: OneDNNMatmul.Operands
        var geometry: ConvolutionGeometry, height: Int, width: Int, pool: Winograd.FusedPool?, poolCeilMode: Bool?
        /// The float32 data as drawn, and as the direct reference took it (bf16-rounded for bf16).
        var input: [Float], weights: [Float], bias: [Float], initial: [Float]?
        var roundedInput: [Float], roundedWeights: [Float]

        /// The largest |fast − reference| and |reference|.
        var errors: (Float, Float) { let e = NetnetKernelsTests.errors(fast, reference); return (e.maxError, e.maxReference) }

        /// Per output, the most a correct layer may differ from the reference:
        /// - im2col (any operands) against the direct convolution of the same (rounded) operands:
        ///   bf16 products are exact in float32, so both are float32 sums of the same terms,
        ///   2γ(k+2) · M_direct.
        /// - Winograd against its twin, float32: 2γ(winograd) · M_winograd.
        /// - Winograd against its twin, bf16: both round U and V, but from float32 values that
        ///   may differ in the last bits, so an operand may land on neighbouring bf16 values: on
        ///   top of `tightBound`, (1 + 2⁻⁸)² − 1 of M_winograd.
        /// - Winograd (or dilated Winograd) against the direct convolution: each side's float32
        ///   error from the exact convolution of the drawn data, γ(winograd) · M_winograd +
        ///   γ(k+2) · M_direct; with bf16, also each side's own roundings to bf16, at most half a
        ///   step of every operand: (1 + 2⁻⁹)² − 1 of M_winograd (U, V) and of M_direct (the
        ///   rounded weights and inputs).
        /// A fused max pool takes each window's largest bound.
        func bound() -> [Double] { bounds().worst }

        /// `bound` without the neighbouring-bf16 allowance: what holds wherever both sides
        /// rounded every operand to the same bf16 value (every output, in float32).
        func tightBound() -> [Double] { bounds().tight }

        private func bounds() -> (worst: [Double], tight: [Double]) {
            let g = geometry, n = ErrorBound.directRoundings(g)
            let winogradN = ErrorBound.winogradRoundings(inputChannels: g.inputChannels)
            let bf16 = operands == .bf16
            // |bf16(x)| ≤ (1 + 2⁻⁹)|x|: M of the rounded U and V.
            let scale = bf16 ? (1 + ErrorBound.bfloat16Rounding) * (1 + ErrorBound.bfloat16Rounding) : 1
            let halfSteps = scale - 1
            let step = bf16 ? (1 + ErrorBound.bfloat16Step) * (1 + ErrorBound.bfloat16Step) - 1 : 0
            var worst: [Double], tight: [Double]
            switch (kernel, twin) {
            case (.im2col, _):
                let m = ErrorBound.directMagnitudes(g, input: roundedInput, height: height, width: width, weights: roundedWeights,
                                                    bias: bias, initial: initial)
                tight = m.map { 2 * ErrorBound.gamma(n) * $0 }
                worst = tight
            case (_, true):
                let m = ErrorBound.winogradMagnitudes(g, input: input, height: height, width: width, weights: weights,
                                                      bias: bias, initial: initial)
                tight = m.map { 2 * ErrorBound.gamma(winogradN) * scale * $0 }
                worst = zip(tight, m).map { $0 + step * scale * $1 }
            case (_, false):
                let mw = ErrorBound.winogradMagnitudes(g, input: input, height: height, width: width, weights: weights,
                                                       bias: bias, initial: initial)
                let md = ErrorBound.directMagnitudes(g, input: input, height: height, width: width, weights: weights,
                                                     bias: bias, initial: initial)
                tight = zip(mw, md).map { w, d in
                    (ErrorBound.gamma(winogradN) * scale + halfSteps) * w + (ErrorBound.gamma(n) * scale + halfSteps) * d
                }
                worst = tight
            }
            if let poolCeilMode {
                let oh = g.outputHeight(inputHeight: height), ow = g.outputWidth(inputWidth: width)
                worst = ErrorBound.maxPooled(worst, channels: g.outputChannels, height: oh, width: ow, ceilMode: poolCeilMode)
                tight = ErrorBound.maxPooled(tight, channels: g.outputChannels, height: oh, width: ow, ceilMode: poolCeilMode)
            }
            return (worst, tight)
        }

        /// `fast` against `reference` within `bound`.
        func report() -> ErrorBound.Report { ErrorBound.compare(fast, reference, bound: bound()) }
    }

    /// Runs `OneDNNConvolution` and its reference on the same seeded data: for im2col the direct
    /// convolution of the bf16-rounded weights and inputs; for Winograd the plain Winograd twin
    /// that rounds U and V to bf16 (`twin`), or, with `twin` false, the direct convolution of the
    /// rounded operands. With `operands: .f32` nothing is rounded: the references take the
    /// float32 data as is. `poolCeilMode`: the layer is made with a fused 2×2 max pool in that
    /// mode, and the reference pools its output with the plain `ReferenceKernels.maxPool`.
    static func run(_ c: Case, kernel: OneDNNConvolution.Kernel, seed: UInt64, twin: Bool = false,
                    operands: OneDNNMatmul.Operands = .bf16, threads: Int = KernelThreads.current,
                    split: OneDNNConvolution.WinogradSplit = .automatic,
                    way: OneDNNConvolution.WinogradWay? = nil, poolCeilMode: Bool? = nil) throws -> Run {
        var rng = SeededGenerator(seed: seed)
        let g = c.geometry
        let oh = g.outputHeight(inputHeight: c.height), ow = g.outputWidth(inputWidth: c.width)
        let input = rng.array(g.inputChannels * c.height * c.width)
        let weights = rng.array(g.weightCount, -0.5 ... 0.5)
        let bias = rng.array(g.outputChannels)
        let initial = rng.array(g.outputChannels * oh * ow)
        let round = { (x: [Float]) in operands == .f32 ? x : x.map { BFloat16.toFloat(ReferenceKernels.bfloat16($0)) } }
        let roundedInput = round(input), roundedWeights = round(weights)
        var direct = initial
        let pool = poolCeilMode.map { Winograd.FusedPool(outputHeight: oh, outputWidth: ow, ceilMode: $0) }
        // NaN where the layer should write nothing: any output it leaves unwritten shows.
        var fast = pool.map { [Float](repeating: .nan, count: g.outputChannels * $0.height * $0.width) } ?? initial
        let runtime = try OneDNNRuntime()
        let layer = try weights.withPointer { w in
            try OneDNNConvolution(runtime: runtime, operands: operands, geometry: g, inputHeight: c.height, inputWidth: c.width, weights: w,
                                kernel: kernel, hasBias: true, relu: c.relu, accumulate: c.accumulate,
                                columnBudget: c.columnBudget, threads: threads, split: split, pool: pool)
        }
        if let way { layer.way = way }
        let columns = AlignedBytes(count: layer.columnWorkspaceBytes)
        let floats = AlignedBuffer(count: layer.floatWorkspaceCount)
        input.withPointer { x in
            bias.withPointer { b in
                fast.withMutablePointer { y in
                    layer.forward(input: x, bias: b, output: y, columns: columns.pointer,
                                  columnCapacityBytes: columns.count, floatWorkspace: floats.buffer)
                }
            }
        }
        if twin {
            input.withPointer { x in
                weights.withPointer { w in
                    bias.withPointer { b in
                        direct.withMutablePointer { y in
                            ReferenceKernels.winogradConvolution(geometry: g, input: x, inputHeight: c.height, inputWidth: c.width,
                                                                 weights: w, bias: b, output: y, relu: c.relu,
                                                                 accumulate: c.accumulate, roundingToBFloat16: operands == .bf16)
                        }
                    }
                }
            }
        } else {
            roundedInput.withPointer { x in
                roundedWeights.withPointer { w in
                    bias.withPointer { b in
                        direct.withMutablePointer { y in
                            ReferenceKernels.convolution(geometry: g, input: x, inputHeight: c.height, inputWidth: c.width,
                                                         weights: w, bias: b, output: y, relu: c.relu, accumulate: c.accumulate)
                        }
                    }
                }
            }
        }
        if let pool, let poolCeilMode {
            var pooled = [Float](repeating: 0, count: g.outputChannels * pool.height * pool.width)
            direct.withPointer { x in
                pooled.withMutablePointer { y in
                    ReferenceKernels.maxPool(input: x, channels: g.outputChannels, height: oh, width: ow,
                                             kernel: 2, stride: 2, padding: 0, ceilMode: poolCeilMode, output: y)
                }
            }
            direct = pooled
        }
        #expect(fast.count == direct.count && !fast.contains { $0.isNaN }, "\(c): output unwritten or of the wrong size")
        return Run(fast: fast, reference: direct, kernel: kernel, twin: twin, operands: operands, geometry: g,
                   height: c.height, width: c.width, pool: pool, poolCeilMode: poolCeilMode, input: input, weights: weights,
                   bias: bias, initial: c.accumulate ? initial : nil, roundedInput: roundedInput, roundedWeights: roundedWeights)
    }


    /// Winograd against its twin: every output within `Run.bound`, and, with bf16, at most a
    /// twentieth of them beyond `Run.tightBound`. An operand rounds to the neighbouring bf16 only
    /// when its two float32 values straddle a rounding midpoint, at most a few last bits apart
    /// (γ of the 12 roundings of V = Bᵀ d B, under 1e-6 of |V|) against a bf16 step of 2⁻⁸ of it:
    /// one operand in a few thousand; each such operand touches the 16 outputs of its tile in
    /// every output channel, so a twentieth is many times what a correct kernel produces, and far
    /// fewer than a kernel that rounds or sums wrongly moves. `bounds` saves recomputing them.
    static func expectWithinTwinBounds(_ run: Run, _ what: String, bounds: (worst: [Double], tight: [Double])? = nil,
                                       sourceLocation: SourceLocation = #_sourceLocation) {
        expectWithinTwinBounds(run.fast, run.reference, what, bounds: bounds ?? (run.bound(), run.tightBound()),
                               sourceLocation: sourceLocation)
    }

    /// `expectWithinTwinBounds` for two outputs held to bounds made already (two ways' outputs).
    static func expectWithinTwinBounds(_ fast: [Float], _ reference: [Float], _ what: String,
                                       bounds: (worst: [Double], tight: [Double]),
                                       sourceLocation: SourceLocation = #_sourceLocation) {
        let (worst, tight) = bounds
        let report = ErrorBound.compare(fast, reference, bound: worst)
        #expect(report.worstRatio <= 1, "\(what): \(report)", sourceLocation: sourceLocation)
        let tightReport = ErrorBound.compare(fast, reference, bound: tight)
        #expect(tightReport.beyond * 20 <= tightReport.count, "\(what), float32 bound: \(tightReport)", sourceLocation: sourceLocation)
        if tightReport.beyond > 0 { print("\(what): \(tightReport.beyond) of \(tightReport.count) beyond the float32 bound (bf16 neighbours)") }
    }

    static let im2colCases: [Case] = [
        Case(geometry: .init(inputChannels: 8, outputChannels: 12, kernel: 3, padding: 1), height: 17, width: 13),
        Case(geometry: .init(inputChannels: 16, outputChannels: 8, kernel: 1), height: 9, width: 11, relu: false),
        Case(geometry: .init(inputChannels: 6, outputChannels: 10, kernel: 3, stride: 2, padding: 1), height: 15, width: 20,
             accumulate: true),
        Case(geometry: .init(inputChannels: 5, outputChannels: 7, kernel: 3, padding: 6, dilation: 6), height: 19, width: 19),
        // A small column budget: several tiles, the last one shorter.
        Case(geometry: .init(inputChannels: 4, outputChannels: 9, kernel: 3, padding: 1), height: 23, width: 10,
             accumulate: true, columnBudget: 4 * 9 * 10 * 3),
    ]

    @Test("im2col + bf16 matmul equals the direct convolution of the rounded operands",
          .enabled(if: BF16Support.available, "needs a CPU with AVX512_BF16 or AMX"), arguments: im2colCases)
    func im2colMatchesDirect(_ c: Case) throws {
        let report = try Self.run(c, kernel: .im2col, seed: 5).report()
        #expect(report.worstRatio <= 1, "\(c): \(report)")
    }

    static let winogradCases: [Case] = [
        Case(geometry: .init(inputChannels: 8, outputChannels: 12, kernel: 3, padding: 1), height: 17, width: 13),
        Case(geometry: .init(inputChannels: 16, outputChannels: 16, kernel: 3, padding: 1), height: 12, width: 12,
             accumulate: true),
        Case(geometry: .init(inputChannels: 4, outputChannels: 6, kernel: 3, padding: 0), height: 11, width: 14, relu: false),
        // 31×31 = 961 tiles: chunks of 5 tile rows (155 tiles, matmuls padded to 160 columns)
        // and a last one of 1 row (31 tiles, padded to 32).
        Case(geometry: .init(inputChannels: 4, outputChannels: 4, kernel: 3, padding: 1), height: 124, width: 124),
    ]

    @Test("Winograd + batched bf16 matmul equals its rounding twin and the direct convolution within their bounds",
          .enabled(if: BF16Support.available, "needs a CPU with AVX512_BF16 or AMX"), arguments: winogradCases)
    func winogradMatchesTwin(_ c: Case) throws {
        let twin = try Self.run(c, kernel: .winograd, seed: 9, twin: true)
        Self.expectWithinTwinBounds(twin, "\(c) vs twin")
        let direct = try Self.run(c, kernel: .winograd, seed: 9)
        let report = direct.report()
        #expect(report.worstRatio <= 1, "\(c) vs direct: \(report)")
        // float32 Winograd lands within γ(winograd) · M of the exact result, under 1e-5 of these
        // outputs' magnitude; rounding U and V to bf16 moves each by up to 2⁻⁹ ≈ 2e-3.
        let (error, reference) = direct.errors
        #expect(error > 1e-4 * reference, "bf16 Winograd that rounds nothing is not running bf16")
    }
}

/// A Winograd layer on several threads runs one of two ways (`OneDNNConvolution.WinogradWay`):
/// each way, with the parts cut either way and in 1–3 parts, must meet the same bounds as the
/// single-threaded layer, and the two ways must agree.
@Suite("Winograd ways on oneDNN")
struct WinogradWayTests {
    static let cases: [BF16Tests.Case] = BF16Tests.winogradCases + [
        // 5 tile rows: too few for 2 parts to share evenly, so `automatic` cuts by channels; 25 tiles
        // per chunk, so the matmuls run 32 columns.
        BF16Tests.Case(geometry: .init(inputChannels: 16, outputChannels: 18, kernel: 3, padding: 1), height: 19, width: 19,
                       accumulate: true),
    ]

    @Test("every way and split equals the twin, fp32 and bf16", arguments: cases)
    func waysMatchTwin(_ c: BF16Tests.Case) throws {
        var operandsToTest: [OneDNNMatmul.Operands] = [.f32]
        if BF16Support.available { operandsToTest.append(.bf16) }
        for operands in operandsToTest {
            for threads in [1, 2, 3] {
                for split in [OneDNNConvolution.WinogradSplit.tiles, .channels, .automatic] {
                    var outputs: [[Float]] = []
                    var bounds: (worst: [Double], tight: [Double])?
                    for way in OneDNNConvolution.WinogradWay.allCases {
                        let result = try BF16Tests.run(c, kernel: .winograd, seed: 9, twin: true, operands: operands,
                                                       threads: threads, split: split, way: way)
                        if bounds == nil { bounds = (result.bound(), result.tightBound()) }
                        BF16Tests.expectWithinTwinBounds(result, "\(c) \(operands) threads \(threads) \(split) \(way)",
                                                         bounds: bounds)
                        outputs.append(result.fast)
                    }
                    // Two ways are two evaluations of the same sums, each within the twin's
                    // float32 bound of the exact result (and, in bf16, each may round an operand
                    // to the neighbouring value): the twin's bound holds between them.
                    BF16Tests.expectWithinTwinBounds(outputs[0], outputs[1], "\(c) \(operands) threads \(threads) \(split): ways",
                                                     bounds: bounds!)
                }
            }
        }
    }

    @Test("a fused 2×2 max pool equals the twin's output pooled by the plain kernel, every way and split, floor and ceil mode",
          arguments: [
            // Even output: pooled rows and columns pair up exactly.
            BF16Tests.Case(geometry: .init(inputChannels: 8, outputChannels: 12, kernel: 3, padding: 1), height: 12, width: 16),
            // Odd output, width not a multiple of 4: ceil mode pools a single last row and column.
            BF16Tests.Case(geometry: .init(inputChannels: 16, outputChannels: 18, kernel: 3, padding: 1), height: 19, width: 19),
            BF16Tests.Case(geometry: .init(inputChannels: 4, outputChannels: 6, kernel: 3, padding: 0), height: 17, width: 13, relu: false),
            // 31 tile rows: several chunks, each pooling its own rows.
            BF16Tests.Case(geometry: .init(inputChannels: 4, outputChannels: 4, kernel: 3, padding: 1), height: 123, width: 124),
          ])
    func fusedPool(_ c: BF16Tests.Case) throws {
        var operandsToTest: [OneDNNMatmul.Operands] = [.f32]
        if BF16Support.available { operandsToTest.append(.bf16) }
        for operands in operandsToTest {
            var bounds: [Bool: (worst: [Double], tight: [Double])] = [:]
            for threads in [1, 2, 3] {
                for split in [OneDNNConvolution.WinogradSplit.tiles, .channels] {
                    for way in OneDNNConvolution.WinogradWay.allCases {
                        for ceilMode in [false, true] {
                            let result = try BF16Tests.run(
                                c, kernel: .winograd, seed: 11, twin: true, operands: operands, threads: threads, split: split,
                                way: way, poolCeilMode: ceilMode)
                            if bounds[ceilMode] == nil { bounds[ceilMode] = (result.bound(), result.tightBound()) }
                            BF16Tests.expectWithinTwinBounds(result, "\(c) \(operands) threads \(threads) \(split) \(way) ceil \(ceilMode)",
                                                             bounds: bounds[ceilMode])
                        }
                    }
                }
            }
        }
    }

    @Test("a chunk's matmul is padded to whole 16-column blocks only when the tail is 9–15 columns")
    func matmulColumns() {
        let columns = (1 ... 200).map { OneDNNConvolution.matmulColumns(tiles: $0) }
        #expect(OneDNNConvolution.matmulColumns(tiles: 25) == 32)   // 19×19 maps
        #expect(OneDNNConvolution.matmulColumns(tiles: 36) == 36)
        #expect(OneDNNConvolution.matmulColumns(tiles: 155) == 160)
        for (index, n) in columns.enumerated() {
            let tiles = index + 1
            #expect(n >= tiles && n - tiles <= 7 && (n == tiles || n % 16 == 0), "\(tiles) tiles → \(n) columns")
            if index > 0 { #expect(n >= columns[index - 1], "not monotonic at \(tiles): workspaces are sized for the largest chunk") }
        }
    }

    @Test("split by tiles, the claimed chunks cover the map once, number a whole multiple of the threads, and differ by at most a row")
    func claimedChunks() {
        for threads in 1 ... 4 {
            for tileRows in 1 ... 80 {
                for chunkRows in 1 ... 12 {
                    let chunks = OneDNNConvolution.claimedChunks(tileRows: tileRows, chunkRows: chunkRows, threads: threads)
                    let label = "\(tileRows) rows, chunks of \(chunkRows), \(threads) threads: \(chunks)"
                    #expect(chunks.first?.lowerBound == 0 && chunks.last?.upperBound == tileRows, "\(label)")
                    #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(label)")
                    #expect(chunks.allSatisfy { !$0.isEmpty }, "\(label)")
                    let sizes = chunks.map(\.count)
                    #expect(sizes.max()! - sizes.min()! <= 1, "\(label)")
                    #expect(chunks.count >= min(tileRows, (tileRows + chunkRows - 1) / chunkRows), "\(label)")
                    #expect(chunks.count % threads == 0 || chunks.count == tileRows, "\(label)")
                }
            }
        }
        // conv1_2 at 300×300 (75 tile rows, 2 per chunk), conv3 at 75×75, conv4 at 38×38.
        #expect(OneDNNConvolution.claimedChunks(tileRows: 75, chunkRows: 2, threads: 2).count == 38)
        #expect(OneDNNConvolution.claimedChunks(tileRows: 19, chunkRows: 7, threads: 2).map(\.count) == [4, 5, 5, 5])
        #expect(OneDNNConvolution.claimedChunks(tileRows: 10, chunkRows: 10, threads: 2).map(\.count) == [5, 5])
    }

    @Test("however the claims fall between the threads, each chunk is taken exactly once; two threads start at opposite ends")
    func claimOrder() {
        for chunks in 1 ... 20 {
            // Two slots: slot 0 makes `first` claims, slot 1 the rest, in any interleaving.
            for first in 0 ... chunks {
                let top = (0 ..< first).map { OneDNNConvolution.claimOrder(slot: 0, slots: 2, ticket: -1, own: $0, chunks: chunks) }
                let bottom = (0 ..< chunks - first).map { OneDNNConvolution.claimOrder(slot: 1, slots: 2, ticket: -1, own: $0, chunks: chunks) }
                #expect((top + bottom).sorted() == Array(0 ..< chunks), "\(chunks) chunks, \(first) claimed by slot 0")
                #expect(top == Array(0 ..< first), "slot 0 goes top down")
            }
            // More slots: the shared counter's order.
            let taken = (0 ..< chunks).map { OneDNNConvolution.claimOrder(slot: $0 % 3, slots: 3, ticket: $0, own: $0 / 3, chunks: chunks) }
            #expect(taken == Array(0 ..< chunks))
        }
    }

    @Test("the automatic split cuts channels for filter-heavy layers, else tile rows when they share out within 10 %")
    func automaticSplit() {
        typealias C = OneDNNConvolution
        #expect(C.channelSplitRatio == 2)
        #expect(C.resolve(.automatic, tileRows: 5, chunkTiles: 25, outputChannels: 512, parts: 1) == .tiles)
        // conv4_x at 38 × 38: 100 tiles in one chunk, 512 ≥ 2 × 100 channels.
        #expect(C.resolve(.automatic, tileRows: 10, chunkTiles: 100, outputChannels: 512, parts: 2) == .channels)
        #expect(C.resolve(.automatic, tileRows: 10, chunkTiles: 100, outputChannels: 200, parts: 2) == .channels)
        #expect(C.resolve(.automatic, tileRows: 10, chunkTiles: 100, outputChannels: 199, parts: 2) == .tiles)
        // conv3_x at 75 × 75: chunks of 152 tiles, 256 < 2 × 152.
        #expect(C.resolve(.automatic, tileRows: 19, chunkTiles: 152, outputChannels: 256, parts: 2) == .tiles)   // 10 of 9.5
        #expect(C.resolve(.automatic, tileRows: 5, chunkTiles: 25, outputChannels: 40, parts: 2) == .channels)   // 3 of 2.5
        #expect(C.resolve(.automatic, tileRows: 3, chunkTiles: 9, outputChannels: 1, parts: 2) == .tiles)        // 1 channel
        #expect(C.resolve(.channels, tileRows: 100, chunkTiles: 150, outputChannels: 64, parts: 2) == .channels)
        #expect(C.resolve(.tiles, tileRows: 10, chunkTiles: 100, outputChannels: 512, parts: 2) == .tiles)
    }
}

/// im2col cut into row bands, one per thread, held to the direct convolution within the same
/// bound as the team's tiles (`BF16Tests.Run.bound`), and the rule that decides when a layer is cut.
@Suite("im2col row bands on oneDNN")
struct RowBandTests {
    /// Maps big enough for a band per thread (`minimumBandPositions` each), with bias and ReLU,
    /// accumulation, a stride, and a small column budget (several tiles per band, the last one
    /// shorter).
    static let cases: [BF16Tests.Case] = [
        BF16Tests.Case(geometry: .init(inputChannels: 3, outputChannels: 8, kernel: 3, padding: 1), height: 130, width: 100),
        BF16Tests.Case(geometry: .init(inputChannels: 4, outputChannels: 6, kernel: 1), height: 131, width: 99, relu: false,
                       accumulate: true),
        BF16Tests.Case(geometry: .init(inputChannels: 3, outputChannels: 5, kernel: 3, stride: 2, padding: 1), height: 261, width: 201,
                       accumulate: true, columnBudget: 27 * 101 * 7),
    ]

    @Test("the layer cuts a band per thread, and the bands' output equals the direct convolution, fp32 and bf16",
          arguments: cases)
    func bandsMatchDirect(_ c: BF16Tests.Case) throws {
        var operandsToTest: [OneDNNMatmul.Operands] = [.f32]
        if BF16Support.available { operandsToTest.append(.bf16) }
        let g = c.geometry
        let oh = g.outputHeight(inputHeight: c.height), ow = g.outputWidth(inputWidth: c.width)
        for operands in operandsToTest {
            for threads in [2, 3] {
                #expect(OneDNNConvolution.rowBands(outputHeight: oh, outputWidth: ow, threads: threads) == threads,
                        "\(c): \(threads) threads should cut \(threads) bands")
                let weights = [Float](repeating: 0.25, count: g.weightCount)
                let layer = try weights.withPointer { w in
                    try OneDNNConvolution(runtime: OneDNNRuntime(), operands: operands, geometry: g, inputHeight: c.height,
                                          inputWidth: c.width, weights: w, kernel: .im2col, hasBias: true, relu: c.relu,
                                          accumulate: c.accumulate, columnBudget: c.columnBudget, threads: threads)
                }
                #expect(layer.rowBandCount == threads)
                let report = try BF16Tests.run(c, kernel: .im2col, seed: 21, operands: operands, threads: threads).report()
                #expect(report.worstRatio <= 1, "\(c) \(operands) threads \(threads): \(report)")
            }
        }
    }

    @Test("a band per thread only when every thread gets a row and enough positions")
    func rule() {
        let least = OneDNNConvolution.minimumBandPositions
        #expect(OneDNNConvolution.rowBands(outputHeight: 300, outputWidth: 300, threads: 2) == 2)
        #expect(OneDNNConvolution.rowBands(outputHeight: 300, outputWidth: 300, threads: 1) == 0)
        #expect(OneDNNConvolution.rowBands(outputHeight: 38, outputWidth: 38, threads: 2) == 0)
        #expect(OneDNNConvolution.rowBands(outputHeight: 2, outputWidth: least, threads: 2) == 2)
        #expect(OneDNNConvolution.rowBands(outputHeight: 2, outputWidth: least - 1, threads: 2) == 0)
        #expect(OneDNNConvolution.rowBands(outputHeight: 1, outputWidth: 10 * least, threads: 2) == 0)
    }
}

/// The same layer class with float32 operands (`--gemm onednn`, the fp32 default): no rounding
/// to bf16 anywhere, so every bound is the float32 sums' (`BF16Tests.Run.bound`).
@Suite("fp32 on oneDNN")
struct OneDNNFloatTests {
    @Test("im2col + f32 matmul equals the direct convolution", arguments: BF16Tests.im2colCases)
    func im2col(_ c: BF16Tests.Case) throws {
        let report = try BF16Tests.run(c, kernel: .im2col, seed: 5, operands: .f32).report()
        #expect(report.worstRatio <= 1, "\(c): \(report)")
    }

    @Test("Winograd + batched f32 matmul equals its twin and the direct convolution", arguments: BF16Tests.winogradCases)
    func winograd(_ c: BF16Tests.Case) throws {
        let twin = try BF16Tests.run(c, kernel: .winograd, seed: 9, twin: true, operands: .f32).report()
        #expect(twin.worstRatio <= 1, "\(c) vs twin: \(twin)")
        let direct = try BF16Tests.run(c, kernel: .winograd, seed: 9, operands: .f32).report()
        #expect(direct.worstRatio <= 1, "\(c) vs direct: \(direct)")
    }
}

/// Dilated 3×3 layers (conv6) run `DilatedWinograd` on oneDNN: its plain twin is the direct
/// convolution, which dilates natively. Each phase is an ordinary Winograd convolution, so the
/// bound is Winograd's against the direct convolution (`BF16Tests.Run.bound`), M taken over the
/// phase's taps.
@Suite("dilated Winograd on oneDNN")
struct DilatedWinogradTests {
    static let cases: [BF16Tests.Case] = [
        // conv6's shape: dilation 6, padding 6, 19×19 (36 phases of one tile each).
        BF16Tests.Case(geometry: .init(inputChannels: 16, outputChannels: 24, kernel: 3, padding: 6, dilation: 6), height: 19, width: 19),
        // NETNet-512's conv6 map: phases of 5–6 outputs, two tiles across each.
        BF16Tests.Case(geometry: .init(inputChannels: 8, outputChannels: 12, kernel: 3, padding: 6, dilation: 6), height: 32, width: 32,
                       accumulate: true),
        // Less padding than dilation (the output shrinks), no ReLU, a non-square input.
        BF16Tests.Case(geometry: .init(inputChannels: 5, outputChannels: 7, kernel: 3, padding: 1, dilation: 3), height: 17, width: 13,
                       relu: false),
        // Different dilations down and across.
        BF16Tests.Case(geometry: .init(inputChannels: 6, outputChannels: 9, kernelHeight: 3, kernelWidth: 3, strideY: 1, strideX: 1,
                                       padY: 2, padX: 3, dilationY: 2, dilationX: 3), height: 11, width: 14),
    ]

    @Test("every output belongs to exactly one tile", arguments: cases)
    func tilesCoverTheOutput(_ c: BF16Tests.Case) {
        let g = c.geometry
        let tiles = DilatedWinograd.Tiles(geometry: g, inputHeight: c.height, inputWidth: c.width)
        let written = tiles.outputOffsets.filter { $0 >= 0 }.map(Int.init)
        let outputs = g.outputHeight(inputHeight: c.height) * g.outputWidth(inputWidth: c.width)
        #expect(written.count == outputs && Set(written) == Set(0 ..< outputs), "\(c): \(written.count) writes for \(outputs) outputs")
        #expect(tiles.inputOffsets.count == 36 * tiles.count && tiles.outputOffsets.count == 16 * tiles.count)
        if g.dilationY == 6 && c.height == 19 { #expect(tiles.count == 36) }
    }

    @Test("fp32 operands equal the direct convolution", arguments: cases)
    func float32(_ c: BF16Tests.Case) throws {
        #expect(!Winograd.isEligible(c.geometry) && DilatedWinograd.isEligible(c.geometry))
        let report = try BF16Tests.run(c, kernel: .dilatedWinograd, seed: 13, operands: .f32).report()
        #expect(report.worstRatio <= 1, "\(c): \(report)")
    }

    @Test("bf16 stays within bf16 Winograd's bound of the direct convolution of the rounded operands",
          .enabled(if: BF16Support.available, "needs a CPU with AVX512_BF16 or AMX"), arguments: cases)
    func bf16(_ c: BF16Tests.Case) throws {
        let run = try BF16Tests.run(c, kernel: .dilatedWinograd, seed: 13)
        let report = run.report()
        #expect(report.worstRatio <= 1, "\(c): \(report)")
        let (error, reference) = run.errors
        #expect(error > 1e-4 * reference, "bf16 dilated Winograd that rounds nothing is not running bf16")
    }
}

private extension UInt16 {
    var bitPattern16IsNaN: Bool { (self & 0x7F80) == 0x7F80 && (self & 0x007F) != 0 }
}
