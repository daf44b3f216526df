@_spi(Benchmarks) import NetnetKernels

extension KernelBenchmark {
    /// VGG16 / SSD-300 layers Winograd may run: conv1_2@300, conv2_2@150, conv3_3@75,
    /// conv4_3@38, conv5_3@19, and the 512→510 head at 10×10 (its `auto` rule's counter-example).
    public static let winogradLayers: [Layer] = [
        Layer(name: "conv1_2@300", geometry: ConvolutionGeometry(inputChannels: 64, outputChannels: 64, kernel: 3, padding: 1), height: 300, width: 300),
        Layer(name: "conv2_2@150", geometry: ConvolutionGeometry(inputChannels: 128, outputChannels: 128, kernel: 3, padding: 1), height: 150, width: 150),
        Layer(name: "conv3_3@75", geometry: ConvolutionGeometry(inputChannels: 256, outputChannels: 256, kernel: 3, padding: 1), height: 75, width: 75),
        Layer(name: "conv4_3@38", geometry: ConvolutionGeometry(inputChannels: 512, outputChannels: 512, kernel: 3, padding: 1), height: 38, width: 38),
        Layer(name: "conv5_3@19", geometry: ConvolutionGeometry(inputChannels: 512, outputChannels: 512, kernel: 3, padding: 1), height: 19, width: 19),
        Layer(name: "head3@10 (512->510)", geometry: ConvolutionGeometry(inputChannels: 512, outputChannels: 510, kernel: 3, padding: 1), height: 10, width: 10),
    ]

    /// im2col `Convolution.forward` against `Winograd.forward` (bias + ReLU both) for each of
    /// `targets` (tiles per chunk), and Winograd's 36 sgemms alone at the default chunking (the
    /// rest of its time is the transforms). All configurations alternate round-robin over
    /// `repetitions` rounds after a warm-up; reports each one's median and minimum in ms.
    /// Allocates its own buffers; a development tool. Synchronous; callable from any thread.
    public static func runWinograd(layers: [Layer] = winogradLayers, targets: [Int] = [Winograd.targetTiles],
                                   repetitions: Int = 7) -> String {
        var report = "Winograd benchmark: BLAS threads \(BLASThreads.current), kernel threads \(KernelThreads.current)\n"
        for layer in layers {
            report += runWinograd(layer, targets: targets, repetitions: max(1, repetitions))
        }
        return report
    }

    static func runWinograd(_ layer: Layer, targets: [Int], repetitions: Int) -> String {
        let g = layer.geometry
        let h = layer.height, w = layer.width
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let flops = 2.0 * Double(g.multiplyAccumulates(inputHeight: h, inputWidth: w))
        var random = SeededFill(seed: 0x1234_5678)
        func fill(_ b: AlignedBuffer) { random.fill(b, scale: 1 / 1000) }
        let input = AlignedBuffer(count: g.inputChannels * h * w); fill(input)
        let weights = AlignedBuffer(count: g.weightCount); fill(weights)
        let bias = AlignedBuffer(count: g.outputChannels); fill(bias)
        let output = AlignedBuffer(count: g.outputChannels * oh * ow)
        let transformed = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: g))
        Winograd.transformWeights(geometry: g, weights: weights.pointer, transformed: transformed.pointer)
        let columns = AlignedBuffer(count: Convolution.workspaceCount(geometry: g, inputHeight: h, inputWidth: w))

        var labels: [String] = []
        var bodies: [() -> Void] = []
        func add(_ label: String, _ body: @escaping () -> Void) { labels.append(label); bodies.append(body) }
        add("im2col forward") {
            Convolution.forward(geometry: g, input: input.pointer, inputHeight: h, inputWidth: w, weights: weights.pointer,
                                bias: bias.pointer, output: output.pointer, relu: true, accumulate: false,
                                workspace: columns.buffer)
        }
        var workspaces: [AlignedBuffer] = []
        for target in targets {
            let workspace = AlignedBuffer(count: Winograd.workspaceCount(geometry: g, inputHeight: h, inputWidth: w, targetTiles: target))
            workspaces.append(workspace)
            let p = Winograd.plan(geometry: g, inputHeight: h, inputWidth: w, budget: Winograd.defaultBudget, targetTiles: target)
            add("winograd forward, target \(target) (\(p.chunkTiles) tiles/chunk, \(format(Double(workspace.count) * 4 / 1_048_576, 1)) MiB)") {
                Winograd.forward(geometry: g, input: input.pointer, inputHeight: h, inputWidth: w,
                                 transformedWeights: transformed.pointer, bias: bias.pointer, output: output.pointer,
                                 relu: true, accumulate: false, workspace: workspace.buffer, targetTiles: target)
            }
        }
        let p = Winograd.plan(geometry: g, inputHeight: h, inputWidth: w, budget: Winograd.defaultBudget, targetTiles: Winograd.targetTiles)
        let gemmSpace = AlignedBuffer(count: 36 * (g.inputChannels + g.outputChannels) * p.chunkTiles)
        add("winograd 36 sgemms alone, default chunks") {
            var row = 0
            while row < p.tilesY {
                let tiles = min(p.chunkRows, p.tilesY - row) * p.tilesX
                for xi in 0 ..< 36 {
                    GEMM.multiply(m: g.outputChannels, n: tiles, k: g.inputChannels,
                                  a: transformed.pointer + xi * g.outputChannels * g.inputChannels, lda: g.inputChannels,
                                  b: gemmSpace.pointer + xi * g.inputChannels * tiles, ldb: tiles,
                                  c: gemmSpace.pointer + 36 * g.inputChannels * tiles + xi * g.outputChannels * tiles, ldc: tiles)
                }
                row += p.chunkRows
            }
        }
        let clock = ContinuousClock()
        var samples = [[Double]](repeating: [], count: bodies.count)
        for body in bodies { body() }
        for _ in 0 ..< repetitions {
            for (i, body) in bodies.enumerated() {
                let start = clock.now
                body()
                samples[i].append(seconds(clock.now - start))
            }
        }
        withExtendedLifetime((input, weights, bias, output, transformed, columns, workspaces, gemmSpace)) {}
        var out = "\(layer.name): \(g.inputChannels)->\(g.outputChannels) @ \(h)x\(w), \(format(flops / 1e9)) GFLOP direct (median / min of \(repetitions), round-robin)\n"
        for i in 0 ..< bodies.count {
            let sorted = samples[i].sorted()
            let median = sorted[sorted.count / 2]
            out += "  \(labels[i]): \(format(median * 1000)) / \(format(sorted[0] * 1000)) ms, \(format(flops / median / 1e9, 1)) effective GFLOP/s\n"
        }
        return out
    }
}
