/// One convolution layer whose GEMMs run on oneDNN's matmul (`OneDNNMatmul`): the bf16 path
/// (`--precision bf16`: weights and the GEMMs' activation operand in bfloat16, products
/// accumulated in float32) or fp32 operands (`--gemm onednn`). Feature maps in and out are
/// float32 either way.
///
/// Two kernels, the same two as on OpenBLAS:
/// - `im2col`: the column tile is written straight in the operand type, then one matmul per tile,
///   `[out × K] · [K × n]`, writes the NCHW output (accumulating as a oneDNN post-op), then the
///   float32 epilogue adds the bias and applies the ReLU while the tile is in cache.
/// - `winograd` (3×3 stride 1 only): F(4×4, 3×3) as in `Winograd`, with the filters transformed
///   in double, then rounded to the operand type once; the input transform stores that type; the 36 products of a
///   chunk are one batched matmul; the output transform (with bias, accumulation, ReLU) reads
///   float32.
///
/// Made once per layer and input size (weights converted, primitives created), then `forward` per
/// frame allocates nothing. Belongs to one thread at a time, like its `OneDNNRuntime`.
public final class OneDNNConvolution {
    /// Which kernel a layer runs.
    public enum Kernel: String, Sendable {
        case im2col, winograd
    }

    /// The layer's geometry and the input size it was made for.
    public let geometry: ConvolutionGeometry
    public let inputHeight: Int, inputWidth: Int
    /// The kernel this layer runs.
    public let kernel: Kernel
    /// The GEMM operands' type.
    public let operands: OneDNNMatmul.Operands
    /// Bytes of column workspace `forward` needs (column tiles, or Winograd's transformed inputs,
    /// in the operand type).
    public let columnWorkspaceBytes: Int
    /// Float32 elements of workspace `forward` needs (Winograd's products and scratch; 0 for im2col).
    public let floatWorkspaceCount: Int
    /// oneDNN's kernel name for this layer's main matmul.
    public var implementation: String { matmuls[0].implementation }

    /// The weights in the operand type: a `BFloat16Buffer` or an `AlignedBuffer`, or the owner of
    /// borrowed float32 weights, kept alive here.
    private let weightStorage: AnyObject
    private let weights: UnsafeRawPointer
    /// bf16 or float32 elements of the weights.
    public let weightCount: Int
    /// Bytes of weights this layer allocated (0 when it uses the caller's float32 weights in place).
    public let ownedWeightBytes: Int
    private let relu: Bool, accumulate: Bool, hasBias: Bool
    /// im2col: tile heights in output rows (all equal but the last); Winograd: the plan.
    private let tileRows: Int
    private let winogradPlan: Winograd.Plan?
    /// One matmul for the full tiles (or chunks), a second for a shorter last one if any.
    private let matmuls: [OneDNNMatmul]

    /// Converts `weights` (`[out][in][kh][kw]` float32) and makes the matmuls for an input of
    /// `inputHeight` × `inputWidth`. `hasBias`, `relu` and `accumulate` fix what `forward` does,
    /// as in `Convolution.forward`. `columnBudget` caps an im2col tile (elements), as for fp32.
    /// Throws if oneDNN refuses (no bf16 on this CPU). Callable from the runtime's thread.
    ///
    /// `weightsOwner`: for float32 operands with im2col the layer can use `weights` in place
    /// instead of copying them, if it may keep the object that owns them alive (the model); nil
    /// copies.
    public init(runtime: OneDNNRuntime, operands: OneDNNMatmul.Operands = .bf16,
                geometry g: ConvolutionGeometry, inputHeight h: Int, inputWidth w: Int,
                weights source: UnsafePointer<Float>, weightsOwner: AnyObject? = nil,
                kernel: Kernel, hasBias: Bool, relu: Bool, accumulate: Bool,
                columnBudget: Int = Convolution.defaultColumnBudget) throws(OneDNNError) {
        require(g.isValid && h >= 1 && w >= 1, "OneDNNConvolution: invalid geometry \(g) or input \(h)x\(w)")
        require(kernel == .im2col || Winograd.isEligible(g), "OneDNNConvolution: Winograd needs a 3x3 stride-1 layer, got \(g)")
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        require(oh >= 1 && ow >= 1, "OneDNNConvolution: input \(h)x\(w) too small for \(g)")
        geometry = g; inputHeight = h; inputWidth = w
        self.kernel = kernel
        self.operands = operands
        let elementBytes = operands == .bf16 ? 2 : 4
        /// The weights in the operand type, owned by the returned object.
        func store(_ values: UnsafePointer<Float>, count: Int) -> (AnyObject, UnsafeRawPointer) {
            if operands == .bf16 {
                let buffer = BFloat16Buffer(rounding: values, count: count)
                return (buffer, UnsafeRawPointer(buffer.pointer))
            }
            let buffer = AlignedBuffer(count: count)
            buffer.pointer.update(from: values, count: count)
            return (buffer, UnsafeRawPointer(buffer.pointer))
        }
        self.relu = relu; self.accumulate = accumulate; self.hasBias = hasBias
        let cin = g.inputChannels, cout = g.outputChannels

        switch kernel {
        case .im2col:
            let k = g.columnRows
            if operands == .f32, let weightsOwner {
                (weightStorage, weights) = (weightsOwner, UnsafeRawPointer(source))
                ownedWeightBytes = 0
            } else {
                (weightStorage, weights) = store(source, count: g.weightCount)
                ownedWeightBytes = g.weightCount * elementBytes
            }
            weightCount = g.weightCount
            let rows = Convolution.rowsPerTile(columnRows: k, outputHeight: oh, outputWidth: ow,
                                               capacity: Int.max, columnBudget: columnBudget)
            tileRows = rows
            winogradPlan = nil
            columnWorkspaceBytes = k * ow * rows * elementBytes
            floatWorkspaceCount = 0
            var made: [OneDNNMatmul] = []
            for tile in Set([rows, oh % rows]).filter({ $0 > 0 }).sorted(by: >) {
                // Bias and ReLU in the float32 epilogue below (see `OneDNNMatmul.init`).
                made.append(try OneDNNMatmul(runtime: runtime, operands: operands, m: cout, n: tile * ow, k: k,
                                           lda: k, ldb: tile * ow, ldc: oh * ow, accumulate: accumulate))
            }
            matmuls = made
        case .winograd:
            let transformed = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: g))
            Winograd.transformWeights(geometry: g, weights: source, transformed: transformed.pointer)
            (weightStorage, weights) = store(transformed.pointer, count: transformed.count)
            weightCount = transformed.count
            ownedWeightBytes = transformed.count * elementBytes
            let p = Winograd.plan(geometry: g, inputHeight: h, inputWidth: w,
                                  budget: Winograd.defaultBudget, targetTiles: Winograd.targetTiles)
            winogradPlan = p
            tileRows = p.chunkRows
            let positions = Winograd.alpha * Winograd.alpha
            columnWorkspaceBytes = positions * cin * p.chunkTiles * elementBytes
            floatWorkspaceCount = positions * cout * p.chunkTiles + Winograd.productSlack + KernelThreads.onlineProcessors * p.slotFloats
            var made: [OneDNNMatmul] = []
            for rows in Set([p.chunkRows, p.tilesY % p.chunkRows]).filter({ $0 > 0 }).sorted(by: >) {
                let tiles = rows * p.tilesX
                made.append(try OneDNNMatmul(runtime: runtime, operands: operands, batch: positions, m: cout, n: tiles, k: cin,
                                           lda: cin, ldb: tiles, ldc: tiles,
                                           strideA: cout * cin, strideB: cin * tiles, strideC: cout * tiles))
            }
            matmuls = made
        }
    }

    /// output = [output +] conv(input) + bias, then ReLU, as made. `bias` must be given iff the
    /// layer was made with one; `input` must be `[in, inputHeight, inputWidth]` float32; `columns`
    /// must hold `columnWorkspaceBytes` (64-byte aligned is best) and `floatWorkspace`
    /// `floatWorkspaceCount` floats; neither may overlap the output. Synchronous.
    public func forward(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                        columns: UnsafeMutableRawPointer, columnCapacityBytes: Int,
                        floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        require((bias != nil) == hasBias, "OneDNNConvolution.forward: bias given \(bias != nil), made with \(hasBias)")
        require(columnCapacityBytes >= columnWorkspaceBytes && floatWorkspace.count >= floatWorkspaceCount,
                "OneDNNConvolution.forward: workspace too small (\(columnCapacityBytes) bytes/\(floatWorkspace.count) floats, need \(columnWorkspaceBytes)/\(floatWorkspaceCount))")
        // The column workspace is untyped memory shared by every layer; each call binds it to
        // this layer's operand type for its own use.
        if operands == .bf16 {
            run(input: input, bias: bias, output: output,
                columns: columns.bindMemory(to: UInt16.self, capacity: columnCapacityBytes / 2), floatWorkspace: floatWorkspace)
        } else {
            run(input: input, bias: bias, output: output,
                columns: columns.bindMemory(to: Float.self, capacity: columnCapacityBytes / 4), floatWorkspace: floatWorkspace)
        }
    }

    @inline(__always)
    private func run<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                             output: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Element>,
                                             floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        let g = geometry, h = inputHeight, w = inputWidth
        switch kernel {
        case .im2col:
            let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
            var rowStart = 0
            while rowStart < oh {
                let rows = min(tileRows, oh - rowStart)
                Convolution.im2col(geometry: g, input: input, inputHeight: h, inputWidth: w, outputWidth: ow,
                                   rowStart: rowStart, rowCount: rows, columns: columns)
                let matmul = rows == tileRows ? matmuls[0] : matmuls[1]
                let tileOutput = output + rowStart * ow
                matmul.run(a: weights, b: columns, c: tileOutput)
                Convolution.epilogue(output: tileOutput, channels: g.outputChannels, channelStride: oh * ow,
                                     count: rows * ow, bias: bias, relu: relu)
                rowStart += rows
            }
        case .winograd:
            guard let p = winogradPlan, let base = floatWorkspace.baseAddress else { return }
            let positions = Winograd.alpha * Winograd.alpha
            let products = base
            let productCount = positions * g.outputChannels * p.chunkTiles
            let slots = (floatWorkspace.count - productCount - Winograd.productSlack) / p.slotFloats
            Winograd.chunks(geometry: g, input: input, inputHeight: h, inputWidth: w, plan: p,
                            transformed: columns, products: products, scratch: base + productCount + Winograd.productSlack,
                            slots: slots, bias: bias, output: output, relu: relu, accumulate: accumulate) { tiles in
                let matmul = tiles == p.chunkTiles ? matmuls[0] : matmuls[1]
                matmul.run(a: weights, b: columns, c: products)
            }
        }
    }
}
