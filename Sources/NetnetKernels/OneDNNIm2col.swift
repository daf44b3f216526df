/// The im2col kernel of `OneDNNConvolution`: the column tile is written straight in the operand
/// type, then one matmul per tile, `[out × K] · [K × n]`. On a map with enough rows for every
/// thread (`OneDNNConvolution.rowBands`), each thread takes a band of output rows and runs its
/// tiles start to end (columns, a single-threaded matmul into a dense tile of products, then the
/// float32 epilogue storing them into the output with bias, accumulation and ReLU): no data moves
/// between cores, the band matches the top/bottom bands of the Winograd layers split by tiles,
/// and oneDNN runs its brgemm kernel (a product written into a strided NCHW tile gets its slower
/// `gemm:jit`). On smaller maps one matmul on the team per tile writes the NCHW output
/// (accumulating as a oneDNN post-op), then the epilogue adds the bias and applies the ReLU while
/// the tile is in cache.
///
/// Made once (weights converted, primitives created); `run` allocates nothing. Belongs to one
/// thread at a time, like its `OneDNNRuntime`.
final class OneDNNIm2col {
    /// One thread's band of an im2col layer cut by rows: output rows `firstRow ..< firstRow +
    /// rows`, in tiles of `tileRows` (the last shorter), each by `matmuls[rows in tile]`.
    struct RowBand {
        let firstRow: Int, rows: Int
        let tileRows: Int
        let matmuls: [Int: OneDNNMatmul]
    }

    let geometry: ConvolutionGeometry
    let inputHeight: Int, inputWidth: Int
    let operands: OneDNNMatmul.Operands
    let columnWorkspaceBytes: Int
    let floatWorkspaceCount: Int
    /// The weights in the operand type, or the owner of borrowed float32 weights, kept alive here.
    private let weightStorage: AnyObject
    private let weights: UnsafeRawPointer
    let weightCount: Int
    let ownedWeightBytes: Int
    private let relu: Bool, accumulate: Bool
    /// Tile heights in output rows (all equal but the last), when the team runs each tile.
    private let tileRows: Int
    /// One matmul for the full tiles, a second for a shorter last one if any (empty with bands).
    private let matmuls: [OneDNNMatmul]
    /// Cut by rows: one band per thread (empty: the team runs each tile).
    let bands: [RowBand]
    /// The team the parallel loops (bands, im2col, epilogue) run on.
    private let team: KernelTeam

    /// oneDNN's kernel name for the layer's main matmul.
    var implementation: String { (bands.first?.matmuls.values.first ?? matmuls[0]).implementation }

    /// See `OneDNNConvolution.init`; the arguments are checked there.
    init(runtime: OneDNNRuntime, operands: OneDNNMatmul.Operands, geometry g: ConvolutionGeometry,
         inputHeight h: Int, inputWidth w: Int, weights source: UnsafePointer<Float>, weightsOwner: AnyObject?,
         relu: Bool, accumulate: Bool, columnBudget: Int, threads: Int, team: KernelTeam) throws(OneDNNError) {
        geometry = g; inputHeight = h; inputWidth = w
        self.operands = operands
        self.relu = relu; self.accumulate = accumulate
        self.team = team
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let elementBytes = operands == .bf16 ? 2 : 4
        let k = g.columnRows, cout = g.outputChannels
        if operands == .f32, let weightsOwner {
            (weightStorage, weights) = (weightsOwner, UnsafeRawPointer(source))
            ownedWeightBytes = 0
        } else {
            (weightStorage, weights) = OneDNNConvolution.storeWeights(source, count: g.weightCount, operands: operands)
            ownedWeightBytes = g.weightCount * elementBytes
        }
        weightCount = g.weightCount
        let bandCount = OneDNNConvolution.rowBands(outputHeight: oh, outputWidth: ow, threads: threads)
        if bandCount > 0 {
            var made: [RowBand] = []
            var columnElements = 0, floats = 0
            for index in 0 ..< bandCount {
                let first = oh * index / bandCount, rows = oh * (index + 1) / bandCount - first
                let tile = Convolution.rowsPerTile(columnRows: k, outputHeight: rows, outputWidth: ow, capacity: Int.max,
                                                   columnBudget: columnBudget,
                                                   targetPositions: max(1, min(Convolution.targetTilePositions,
                                                                               OneDNNConvolution.bandTileFloats / cout)))
                let bandRuntime = try runtime.part(index)
                var bySize: [Int: OneDNNMatmul] = [:]
                for size in Set([tile, rows % tile]) where size > 0 {
                    bySize[size] = try OneDNNMatmul(runtime: bandRuntime, operands: operands, m: cout, n: size * ow, k: k,
                                                    lda: k, ldb: size * ow, ldc: size * ow, singleThreaded: true)
                }
                made.append(RowBand(firstRow: first, rows: rows, tileRows: tile, matmuls: bySize))
                // Whole cache lines per band, so that no two threads write the same line.
                columnElements = max(columnElements, (k * tile * ow * elementBytes + 63) / 64 * 64 / elementBytes)
                floats = max(floats, (cout * tile * ow + 15) / 16 * 16)
            }
            bands = made
            tileRows = 0
            columnWorkspaceBytes = bandCount * columnElements * elementBytes
            floatWorkspaceCount = bandCount * floats
            matmuls = []
            return
        }
        bands = []
        let rows = Convolution.rowsPerTile(columnRows: k, outputHeight: oh, outputWidth: ow,
                                           capacity: Int.max, columnBudget: columnBudget)
        tileRows = rows
        columnWorkspaceBytes = k * ow * rows * elementBytes
        floatWorkspaceCount = 0
        var made: [OneDNNMatmul] = []
        for tile in Set([rows, oh % rows]).filter({ $0 > 0 }).sorted(by: >) {
            // Bias and ReLU in the float32 epilogue below (see `OneDNNMatmul.init`).
            made.append(try OneDNNMatmul(runtime: runtime, operands: operands, m: cout, n: tile * ow, k: k,
                                         lda: k, ldb: tile * ow, ldc: oh * ow, accumulate: accumulate))
        }
        matmuls = made
    }

    /// output = [output +] conv(input) + bias, then ReLU, as made; `workspace` in the operand type.
    @inline(__always)
    func run<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     output: UnsafeMutablePointer<Float>, columns workspace: UnsafeMutableBufferPointer<Element>,
                                     floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        guard bands.isEmpty else {
            runBands(input: input, bias: bias, output: output, columns: workspace, floatWorkspace: floatWorkspace)
            return
        }
        guard let columns = workspace.baseAddress else { return }
        let g = geometry, h = inputHeight, w = inputWidth
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        var rowStart = 0
        while rowStart < oh {
            let rows = min(tileRows, oh - rowStart)
            Convolution.im2col(geometry: g, input: input, inputHeight: h, inputWidth: w, outputWidth: ow,
                               rowStart: rowStart, rowCount: rows, columns: columns, team: team)
            let matmul = rows == tileRows ? matmuls[0] : matmuls[1]
            let tileOutput = output + rowStart * ow
            matmul.run(a: weights, b: columns, c: tileOutput)
            Convolution.epilogue(output: tileOutput, channels: g.outputChannels, channelStride: oh * ow,
                                 count: rows * ow, bias: bias, relu: relu, team: team)
            rowStart += rows
        }
    }

    /// Cut by rows: each band on its own kernel thread (slot i takes band i, as part i of a
    /// Winograd layer), tile by tile: columns, the band's matmul into its dense products, then
    /// the epilogue storing them into the output.
    @inline(__always)
    private func runBands<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                                  output: UnsafeMutablePointer<Float>, columns workspace: UnsafeMutableBufferPointer<Element>,
                                                  floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        guard let floats = floatWorkspace.baseAddress, let columns = workspace.baseAddress else { return }
        let g = geometry, h = inputHeight, w = inputWidth
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let bands = self.bands
        let (bandColumnElements, bandFloats) = OneDNNConvolution.slotShares(columns: workspace, floats: floatWorkspace,
                                                                            slots: bands.count)
        let weights = self.weights
        let relu = self.relu, accumulate = self.accumulate
        parallelSlots(count: bands.count, slots: bands.count, minimumChunk: 1, team: team) { _, indices in
            for index in indices {
                let band = bands[index]
                let bandColumns = columns + index * bandColumnElements
                let products = floats + index * bandFloats
                var row = band.firstRow
                let end = band.firstRow + band.rows
                while row < end {
                    let rows = min(band.tileRows, end - row)
                    Convolution.im2colRows(geometry: g, input: input, inputHeight: h, inputWidth: w, outputWidth: ow,
                                           rowStart: row, rowCount: rows, columns: bandColumns, kRows: 0 ..< g.columnRows)
                    band.matmuls[rows]!.run(a: weights, b: bandColumns, c: products)
                    Convolution.storeTile(products, channels: g.outputChannels, count: rows * ow,
                                          into: output + row * ow, channelStride: oh * ow,
                                          bias: bias, relu: relu, accumulate: accumulate)
                    row += rows
                }
            }
        }
    }
}

extension OneDNNConvolution {
    /// Output positions a thread's band of an im2col layer needs at least (`rowBands`). Measured
    /// on full-width NETNet-300 bf16 (docs/performance.md): conv1_1 (150 × 300 per band) took
    /// 2.3–2.7 ms in bands against 2.8–3.3 on the team, but netm13's 1×1 layers at 38 × 38
    /// (722 per band) 0.77–0.83 against 0.64–0.83 ms: on small maps the team's matmul over
    /// the whole map beats one thread's over half of it.
    public static let minimumBandPositions = 4096

    /// Float32 products per tile of a row band: a tile's products stay in the core's L2 until
    /// the epilogue has stored them.
    public static let bandTileFloats = 64 * 1024

    /// How many row bands an im2col layer with an `outputHeight` × `outputWidth` output is cut
    /// into on `threads` threads: one per thread when each gets at least one row and
    /// `minimumBandPositions` positions, else 0 (the team runs each tile). Pure.
    public static func rowBands(outputHeight: Int, outputWidth: Int, threads: Int) -> Int {
        guard threads > 1, outputHeight >= threads,
              outputHeight / threads * outputWidth >= minimumBandPositions else { return 0 }
        return threads
    }
}
