/// One convolution layer on the bf16 path (`--precision bf16`): weights and the GEMMs' activation
/// operand in bfloat16, products accumulated in float32 by oneDNN's matmul (`BF16Matmul`), feature
/// maps in and out float32, as on the fp32 path.
///
/// Two kernels, the same two as fp32:
/// - `im2col`: the column tile is written straight as bf16, then one matmul per tile,
///   `[out × K] · [K × n]`, writes the NCHW output (accumulating as a oneDNN post-op), then the
///   float32 epilogue adds the bias and applies the ReLU while the tile is in cache.
/// - `winograd` (3×3 stride 1 only): F(4×4, 3×3) as in `Winograd`, with the filters transformed
///   in double, then rounded to bf16 once; the input transform stores bf16; the 36 products of a
///   chunk are one batched matmul; the output transform (with bias, accumulation, ReLU) reads
///   float32.
///
/// Made once per layer and input size (weights converted, primitives created), then `forward` per
/// frame allocates nothing. Belongs to one thread at a time, like its `BF16Runtime`.
public final class BF16Convolution {
    /// Which kernel a layer runs.
    public enum Kernel: String, Sendable {
        case im2col, winograd
    }

    /// The layer's geometry and the input size it was made for.
    public let geometry: ConvolutionGeometry
    public let inputHeight: Int, inputWidth: Int
    /// The kernel this layer runs.
    public let kernel: Kernel
    /// bf16 elements of workspace `forward` needs (column tiles, or Winograd's transformed inputs).
    public let bf16WorkspaceCount: Int
    /// Float32 elements of workspace `forward` needs (Winograd's products and scratch; 0 for im2col).
    public let floatWorkspaceCount: Int
    /// oneDNN's kernel name for this layer's main matmul.
    public var implementation: String { matmuls[0].implementation }

    private let weights: BFloat16Buffer
    private let relu: Bool, accumulate: Bool, hasBias: Bool
    /// im2col: tile heights in output rows (all equal but the last); Winograd: the plan.
    private let tileRows: Int
    private let winogradPlan: Winograd.Plan?
    /// One matmul for the full tiles (or chunks), a second for a shorter last one if any.
    private let matmuls: [BF16Matmul]

    /// Converts `weights` (`[out][in][kh][kw]` float32) and makes the matmuls for an input of
    /// `inputHeight` × `inputWidth`. `hasBias`, `relu` and `accumulate` fix what `forward` does,
    /// as in `Convolution.forward`. `columnBudget` caps an im2col tile (elements), as for fp32.
    /// Throws if oneDNN refuses (no bf16 on this CPU). Callable from the runtime's thread.
    public init(runtime: BF16Runtime, geometry g: ConvolutionGeometry, inputHeight h: Int, inputWidth w: Int,
                weights source: UnsafePointer<Float>, kernel: Kernel, hasBias: Bool, relu: Bool, accumulate: Bool,
                columnBudget: Int = Convolution.defaultColumnBudget) throws(BF16Error) {
        require(g.isValid && h >= 1 && w >= 1, "BF16Convolution: invalid geometry \(g) or input \(h)x\(w)")
        require(kernel == .im2col || Winograd.isEligible(g), "BF16Convolution: Winograd needs a 3x3 stride-1 layer, got \(g)")
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        require(oh >= 1 && ow >= 1, "BF16Convolution: input \(h)x\(w) too small for \(g)")
        geometry = g; inputHeight = h; inputWidth = w
        self.kernel = kernel
        self.relu = relu; self.accumulate = accumulate; self.hasBias = hasBias
        let cin = g.inputChannels, cout = g.outputChannels

        switch kernel {
        case .im2col:
            let k = g.columnRows
            weights = BFloat16Buffer(rounding: source, count: g.weightCount)
            let rows = Convolution.rowsPerTile(columnRows: k, outputHeight: oh, outputWidth: ow,
                                               capacity: Int.max, columnBudget: columnBudget)
            tileRows = rows
            winogradPlan = nil
            bf16WorkspaceCount = k * ow * rows
            floatWorkspaceCount = 0
            var made: [BF16Matmul] = []
            for tile in Set([rows, oh % rows]).filter({ $0 > 0 }).sorted(by: >) {
                // Bias and ReLU stay in the float32 epilogue: oneDNN 2.6 has no optimised matmul
                // for a per-row ([m, 1]) bias (it falls back to `ref:any`, ~1000× slower), and
                // the ReLU must follow the bias.
                made.append(try BF16Matmul(runtime: runtime, m: cout, n: tile * ow, k: k,
                                           lda: k, ldb: tile * ow, ldc: oh * ow, accumulate: accumulate))
            }
            matmuls = made
        case .winograd:
            let transformed = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: g))
            Winograd.transformWeights(geometry: g, weights: source, transformed: transformed.pointer)
            weights = BFloat16Buffer(rounding: transformed.pointer, count: transformed.count)
            let p = Winograd.plan(geometry: g, inputHeight: h, inputWidth: w,
                                  budget: Winograd.defaultBudget, targetTiles: Winograd.targetTiles)
            winogradPlan = p
            tileRows = p.chunkRows
            let positions = Winograd.alpha * Winograd.alpha
            bf16WorkspaceCount = positions * cin * p.chunkTiles
            floatWorkspaceCount = positions * cout * p.chunkTiles + KernelThreads.onlineProcessors * p.slotFloats
            var made: [BF16Matmul] = []
            for rows in Set([p.chunkRows, p.tilesY % p.chunkRows]).filter({ $0 > 0 }).sorted(by: >) {
                let tiles = rows * p.tilesX
                made.append(try BF16Matmul(runtime: runtime, batch: positions, m: cout, n: tiles, k: cin,
                                           lda: cin, ldb: tiles, ldc: tiles,
                                           strideA: cout * cin, strideB: cin * tiles, strideC: cout * tiles))
            }
            matmuls = made
        }
    }

    /// bf16 weights this layer holds (im2col: the layer's; Winograd: the 36 transformed planes).
    public var weightCount: Int { weights.count }

    /// output = [output +] conv(input) + bias, then ReLU, as made. `bias` must be given iff the
    /// layer was made with one; `input` must be `[in, inputHeight, inputWidth]` float32; the
    /// workspaces must hold `bf16WorkspaceCount` and `floatWorkspaceCount` elements. Synchronous.
    public func forward(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                        bf16Workspace: UnsafeMutablePointer<UInt16>, bf16WorkspaceCapacity: Int,
                        floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        require((bias != nil) == hasBias, "BF16Convolution.forward: bias given \(bias != nil), made with \(hasBias)")
        require(bf16WorkspaceCapacity >= bf16WorkspaceCount && floatWorkspace.count >= floatWorkspaceCount,
                "BF16Convolution.forward: workspace too small (\(bf16WorkspaceCapacity)/\(floatWorkspace.count), need \(bf16WorkspaceCount)/\(floatWorkspaceCount))")
        let g = geometry, h = inputHeight, w = inputWidth
        switch kernel {
        case .im2col:
            let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
            var rowStart = 0
            while rowStart < oh {
                let rows = min(tileRows, oh - rowStart)
                Convolution.im2col(geometry: g, input: input, inputHeight: h, inputWidth: w, outputWidth: ow,
                                   rowStart: rowStart, rowCount: rows, columns: bf16Workspace)
                let matmul = rows == tileRows ? matmuls[0] : matmuls[1]
                let tileOutput = output + rowStart * ow
                matmul.run(a: weights.pointer, b: bf16Workspace, c: tileOutput)
                Convolution.epilogue(output: tileOutput, channels: g.outputChannels, channelStride: oh * ow,
                                     count: rows * ow, bias: bias, relu: relu)
                rowStart += rows
            }
        case .winograd:
            guard let p = winogradPlan, let base = floatWorkspace.baseAddress else { return }
            let positions = Winograd.alpha * Winograd.alpha
            let products = base
            let productCount = positions * g.outputChannels * p.chunkTiles
            let slots = (floatWorkspace.count - productCount) / p.slotFloats
            Winograd.chunks(geometry: g, input: input, inputHeight: h, inputWidth: w, plan: p,
                            transformed: bf16Workspace, products: products, scratch: base + productCount,
                            slots: slots, bias: bias, output: output, relu: relu, accumulate: accumulate) { tiles in
                let matmul = tiles == p.chunkTiles ? matmuls[0] : matmuls[1]
                matmul.run(a: weights.pointer, b: bf16Workspace, c: products)
            }
        }
    }
}
