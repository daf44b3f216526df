@_spi(Benchmarks) import NetnetKernels

/// Micro-benchmark of the convolution path on VGG16 shapes, to see what im2col, tiling and the
/// epilogue cost on top of the raw sgemm. Allocates its own buffers (hundreds of MB for the
/// untiled reference) — a development tool, not for the engine's frame loop. Synchronous;
/// callable from any thread (but it wants the machine to itself to mean anything).
public enum KernelBenchmark {
    /// One benchmarked layer.
    public struct Layer: Sendable {
        /// Label used in the report.
        public var name: String
        /// The convolution.
        public var geometry: ConvolutionGeometry
        /// Input size.
        public var height: Int, width: Int
        /// Memberwise.
        public init(name: String, geometry: ConvolutionGeometry, height: Int, width: Int) {
            self.name = name; self.geometry = geometry; self.height = height; self.width = width
        }
    }

    /// conv1_2 at 300×300 (64→64) and conv3_3 at 75×75 (256→256), both 3×3 pad 1.
    public static let vggLayers: [Layer] = [
        Layer(name: "conv1_2@300", geometry: ConvolutionGeometry(inputChannels: 64, outputChannels: 64, kernel: 3, padding: 1), height: 300, width: 300),
        Layer(name: "conv3_3@75", geometry: ConvolutionGeometry(inputChannels: 256, outputChannels: 256, kernel: 3, padding: 1), height: 75, width: 75),
    ]

    /// More VGG16/SSD-300 shapes for budget sweeps: conv4_3@38 (512→512), conv5_3@19 (512→512),
    /// conv6@19 (512→1024, dilation 6), extras 3×3 s2 (256→512 at 19×19).
    public static let moreLayers: [Layer] = [
        Layer(name: "conv4_3@38", geometry: ConvolutionGeometry(inputChannels: 512, outputChannels: 512, kernel: 3, padding: 1), height: 38, width: 38),
        Layer(name: "conv5_3@19", geometry: ConvolutionGeometry(inputChannels: 512, outputChannels: 512, kernel: 3, padding: 1), height: 19, width: 19),
        Layer(name: "conv6@19 (d6)", geometry: ConvolutionGeometry(inputChannels: 512, outputChannels: 1024, kernel: 3, stride: 1, padding: 6, dilation: 6), height: 19, width: 19),
        Layer(name: "conv8_2@19 (s2)", geometry: ConvolutionGeometry(inputChannels: 256, outputChannels: 512, kernel: 3, stride: 2, padding: 1), height: 19, width: 19),
    ]

    /// Times conv1_2@300 and conv3_3@75: raw untiled sgemm on a prebuilt column matrix, im2col
    /// alone, and the full `Convolution.forward` (bias + ReLU) at the default column budget;
    /// returns a human-readable report (ms, GFLOP/s, overhead over raw sgemm).
    public static func runVGGConvs() -> String {
        runVGGConvs(layers: vggLayers, budgets: [Convolution.defaultColumnBudget], repetitions: 7)
    }

    /// As `runVGGConvs(layers:budgets:repetitions:)`, also sweeping the tile target (output
    /// positions per tile; `Convolution.targetTilePositions` by default).
    public static func runVGGConvs(layers: [Layer], budgets: [Int], targets: [Int], repetitions: Int) -> String {
        var report = "KernelBenchmark: BLAS threads \(BLASThreads.current), kernel threads \(KernelThreads.current), default column budget \(Convolution.defaultColumnBudget) floats, target \(Convolution.targetTilePositions) positions/tile\n"
        for layer in layers {
            report += run(layer, budgets: budgets, targets: targets, repetitions: max(1, repetitions))
        }
        return report
    }

    /// As `runVGGConvs()`, over the given layers and column budgets (floats); each time is the
    /// best of `repetitions` runs after one warm-up, all configurations measured round-robin
    /// (on a shared machine the minimum is the closest to the uncontended cost).
    public static func runVGGConvs(layers: [Layer], budgets: [Int], repetitions: Int) -> String {
        runVGGConvs(layers: layers, budgets: budgets, targets: [Convolution.targetTilePositions], repetitions: repetitions)
    }

    static func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }

    static func format(_ x: Double, _ digits: Int = 2) -> String {
        var p = 1.0
        for _ in 0 ..< digits { p *= 10 }
        let r = (x * p).rounded() / p
        return "\(r)"
    }

    static func run(_ layer: Layer, budgets: [Int], targets: [Int], repetitions: Int) -> String {
        let g = layer.geometry
        let h = layer.height, w = layer.width
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let k = g.columnRows, m = g.outputChannels, n = oh * ow
        let flops = 2.0 * Double(g.multiplyAccumulates(inputHeight: h, inputWidth: w))
        var random = SeededFill(seed: 0x1234_5678)
        func fill(_ b: AlignedBuffer) { random.fill(b, scale: 1 / 1000) }
        let input = AlignedBuffer(count: g.inputChannels * h * w); fill(input)
        let weights = AlignedBuffer(count: g.weightCount); fill(weights)
        let bias = AlignedBuffer(count: m); fill(bias)
        let output = AlignedBuffer(count: m * n)
        let fullColumns = AlignedBuffer(count: k * n)
        Convolution.im2colFloats(geometry: g, input: input.pointer, inputHeight: h, inputWidth: w, outputWidth: ow,
                           rowStart: 0, rowCount: oh, columns: fullColumns.pointer)

        // Every configuration, measured round-robin so that machine noise hits all of them alike.
        var labels: [String] = []
        var bodies: [() -> Void] = []
        var isGemmLike: [Bool] = []
        func add(_ label: String, gemmLike: Bool = true, _ body: @escaping () -> Void) {
            labels.append(label); bodies.append(body); isGemmLike.append(gemmLike)
        }
        add("raw sgemm, untiled (\(k * n) floats of columns prebuilt)") {
            GEMM.multiply(m: m, n: n, k: k, a: weights.pointer, lda: k, b: fullColumns.pointer, ldb: n,
                          c: output.pointer, ldc: n)
        }
        add("im2col alone, untiled", gemmLike: false) {
            Convolution.im2colFloats(geometry: g, input: input.pointer, inputHeight: h, inputWidth: w, outputWidth: ow,
                               rowStart: 0, rowCount: oh, columns: fullColumns.pointer)
        }
        var workspaces: [AlignedBuffer] = []
        for budget in budgets { for target in targets {
            let rows = Convolution.rowsPerTile(columnRows: k, outputHeight: oh, outputWidth: ow,
                                               capacity: Int.max, columnBudget: budget, targetPositions: target)
            let count = k * ow * rows
            let workspace = AlignedBuffer(count: count)
            workspaces.append(workspace)
            let tiles = (oh + rows - 1) / rows
            let tag = "budget \(budget) target \(target) (\(rows) rows/tile, \(tiles) tiles, \(format(Double(count) * 4 / 1_048_576, 1)) MiB)"
            add("\(tag): sgemm alone over the tiles") {
                var r = 0
                while r < oh {
                    let rr = min(rows, oh - r)
                    GEMM.multiply(m: m, n: rr * ow, k: k, a: weights.pointer, lda: k, b: workspace.pointer, ldb: rr * ow,
                                  c: output.pointer + r * ow, ldc: n)
                    r += rr
                }
            }
            add("\(tag): im2col alone over the tiles", gemmLike: false) {
                var r = 0
                while r < oh {
                    let rr = min(rows, oh - r)
                    Convolution.im2colFloats(geometry: g, input: input.pointer, inputHeight: h, inputWidth: w, outputWidth: ow,
                                       rowStart: r, rowCount: rr, columns: workspace.pointer)
                    r += rr
                }
            }
            add("\(tag): forward, no bias/ReLU") {
                Convolution.forwardImplementation(geometry: g, input: input.pointer, inputHeight: h, inputWidth: w,
                                    weights: weights.pointer, bias: nil, output: output.pointer,
                                    relu: false, accumulate: false, workspace: workspace.buffer,
                                    columnBudget: budget, targetPositions: target)
            }
            add("\(tag): forward, bias + ReLU") {
                Convolution.forwardImplementation(geometry: g, input: input.pointer, inputHeight: h, inputWidth: w,
                                    weights: weights.pointer, bias: bias.pointer, output: output.pointer,
                                    relu: true, accumulate: false, workspace: workspace.buffer,
                                    columnBudget: budget, targetPositions: target)
            }
        } }
        let clock = ContinuousClock()
        var best = [Double](repeating: .infinity, count: bodies.count)
        for body in bodies { body() }  // warm-up
        for _ in 0 ..< repetitions {
            for (i, body) in bodies.enumerated() {
                let start = clock.now
                body()
                best[i] = min(best[i], seconds(clock.now - start))
            }
        }
        withExtendedLifetime((input, weights, bias, output, fullColumns, workspaces)) {}

        var out = "\(layer.name): \(g.inputChannels)->\(m), \(h)x\(w) -> \(oh)x\(ow), M=\(m) N=\(n) K=\(k), \(format(flops / 1e9)) GFLOP (best of \(repetitions), round-robin)\n"
        let raw = best[0]
        for i in 0 ..< bodies.count {
            var line = "  \(labels[i]): \(format(best[i] * 1000)) ms"
            if isGemmLike[i] {
                line += ", \(format(flops / best[i] / 1e9, 1)) GFLOP/s"
                if i > 0 { line += ", \(format((best[i] / raw - 1) * 100, 1))% vs raw sgemm" }
            }
            out += line + "\n"
        }
        return out
    }

    /// Times the memory-bound kernels on NETNet-300 shapes (max pools, L2Norm, bilinear resize,
    /// sigmoid, gate erase, add, softmax over the priors, NCHW→NHWC scatter of a head); returns a
    /// report with ms per call (best of `repetitions`, round-robin) and effective GB/s.
    public static func runOtherKernels(repetitions: Int = 21) -> String {
        let big = AlignedBuffer(count: 64 * 300 * 300)
        let big2 = AlignedBuffer(count: 64 * 300 * 300)
        let out = AlignedBuffer(count: 64 * 300 * 300)
        var random = SeededFill(seed: 99)
        for b in [big, big2] { random.fill(b, scale: 1 / 100) }
        let scale = AlignedBuffer(count: 512)
        for i in 0 ..< 512 { scale.pointer[i] = 20 }
        let p1 = 512 * 38 * 38
        var labels: [String] = []
        var bytes: [Double] = []
        var bodies: [() -> Void] = []
        func add(_ label: String, _ movedBytes: Int, _ body: @escaping () -> Void) {
            labels.append(label); bytes.append(Double(movedBytes)); bodies.append(body)
        }
        add("maxpool 2x2 64x300x300 -> 150", 4 * (64 * 90_000 + 64 * 22_500)) {
            MaxPool.forward(input: big.pointer, channels: 64, height: 300, width: 300, kernel: 2, stride: 2, padding: 0, ceilMode: false, output: out.pointer)
        }
        add("maxpool 2x2 ceil 256x75x75 -> 38", 4 * (256 * 5625 + 256 * 1444)) {
            MaxPool.forward(input: big.pointer, channels: 256, height: 75, width: 75, kernel: 2, stride: 2, padding: 0, ceilMode: true, output: out.pointer)
        }
        add("maxpool 3x3 s1 p1 512x19x19 (pool5)", 4 * 2 * 512 * 361) {
            MaxPool.forward(input: big.pointer, channels: 512, height: 19, width: 19, kernel: 3, stride: 1, padding: 1, ceilMode: false, output: out.pointer)
        }
        add("maxpool 4x4/4 ceil 512x38x38 -> 10", 4 * (p1 + 512 * 100)) {
            MaxPool.forward(input: big.pointer, channels: 512, height: 38, width: 38, kernel: 4, stride: 4, padding: 0, ceilMode: true, output: out.pointer)
        }
        add("L2Norm 512x38x38", 4 * 2 * p1) {
            L2Norm.forward(input: big.pointer, channels: 512, height: 38, width: 38, scale: scale.pointer, output: out.pointer)
        }
        add("bilinear 512x19x19 -> 38x38", 4 * (512 * 361 + p1)) {
            BilinearResize.forward(input: big.pointer, channels: 512, inputHeight: 19, inputWidth: 19, output: out.pointer, outputHeight: 38, outputWidth: 38)
        }
        add("bilinear 1024x10x10 -> 19x19", 4 * (1024 * 100 + 1024 * 361)) {
            BilinearResize.forward(input: big.pointer, channels: 1024, inputHeight: 10, inputWidth: 10, output: out.pointer, outputHeight: 19, outputWidth: 19)
        }
        add("sigmoid 512x38x38", 4 * 2 * p1) {
            Elementwise.sigmoid(big.pointer, into: out.pointer, count: p1)
        }
        add("gateErase 512x38x38 (both outputs)", 4 * 4 * p1) {
            Elementwise.gateErase(feature: big.pointer, gate: big2.pointer, erased: out.pointer, kept: out.pointer + p1, count: p1)
        }
        add("add 512x38x38", 4 * 3 * p1) {
            Elementwise.add(big.pointer, big2.pointer, into: out.pointer, count: p1)
        }
        add("relu 512x38x38", 4 * 2 * p1) {
            Elementwise.relu(big.pointer, into: out.pointer, count: p1)
        }
        add("softmax 8732x81", 4 * 2 * 8732 * 81) {
            Softmax.rows(big.pointer, rows: 8732, columns: 81, into: out.pointer)
        }
        add("softmax 24564x81", 4 * 2 * 24564 * 81) {
            Softmax.rows(big.pointer, rows: 24564, columns: 81, into: out.pointer)
        }
        add("nchwToNHWC 324x38x38 (conf head, stride 324)", 4 * 2 * 324 * 1444) {
            Layout.nchwToNHWC(big.pointer, channels: 324, height: 38, width: 38, into: out.pointer, rowStride: 324)
        }
        add("nchwToNHWC 16x38x38 (loc head)", 4 * 2 * 16 * 1444) {
            Layout.nchwToNHWC(big.pointer, channels: 16, height: 38, width: 38, into: out.pointer)
        }
        let clock = ContinuousClock()
        var best = [Double](repeating: .infinity, count: bodies.count)
        for body in bodies { body() }
        for _ in 0 ..< max(1, repetitions) {
            for (i, body) in bodies.enumerated() {
                let start = clock.now
                body()
                best[i] = min(best[i], seconds(clock.now - start))
            }
        }
        withExtendedLifetime((big, big2, out, scale)) {}
        var report = "Other kernels (kernel threads \(KernelThreads.current), best of \(max(1, repetitions)), round-robin):\n"
        for i in 0 ..< bodies.count {
            report += "  \(labels[i]): \(format(best[i] * 1000, 3)) ms, \(format(bytes[i] / best[i] / 1e9, 1)) GB/s\n"
        }
        return report
    }
}

/// Deterministic benchmark data: a 64-bit LCG's high bits as integers in [-1000, 1000], times a
/// scale, so that every benchmark run times the same numbers. Value type; any thread.
struct SeededFill {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    /// Fills the whole buffer, advancing the generator.
    mutating func fill(_ buffer: AlignedBuffer, scale: Float) {
        for i in 0 ..< buffer.count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            buffer.pointer[i] = Float(Int64(bitPattern: state >> 11) % 2001 - 1000) * scale
        }
    }
}
