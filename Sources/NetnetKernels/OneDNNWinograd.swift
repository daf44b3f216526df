/// The Winograd F(4×4, 3×3) kernel of `OneDNNConvolution` (3×3 stride 1 only), as in
/// `Winograd`, with the filters transformed in double, then rounded to the operand type once; the
/// input transform stores that type; the 36 products of a chunk are batched matmuls; the output
/// transform (with bias, accumulation, ReLU) reads float32. On several threads a layer runs one
/// of two ways (`OneDNNConvolution.WinogradWay`; by default `defaultWay`, fixed at load so that a
/// frame's output never depends on timing):
/// - `shared`: the threads take each step of a chunk together (the transforms split over
///   channels, one multi-threaded matmul), so each thread reads half of the filters;
/// - `parts`: each thread runs whole chunks start to end (input transform, a single-threaded
///   matmul, output transform), so the transformed inputs and products, 36× the size of the
///   map, never move between cores. Split by tiles (`WinogradSplit`), the threads claim the
///   chunks as they go, so a slower thread does fewer; split by channels, the threads transform
///   each chunk's input together, then each runs its slice of the filters and of the output
///   channels, whose products stay on its core.
/// Either way the output transform can store the 2×2 max pooling of the output instead of the
/// output (`pool`).
///
/// Made once (weights transformed and converted, primitives created); `run` allocates nothing.
/// Belongs to one thread at a time, like its `OneDNNRuntime`.
final class OneDNNWinograd {
    typealias WinogradSplit = OneDNNConvolution.WinogradSplit
    typealias WinogradWay = OneDNNConvolution.WinogradWay

    /// One thread's share of a Winograd layer: tile rows `firstRow ..< firstRow + rows`, output
    /// channels `firstChannel ..< firstChannel + channels` (one of the filter slices), processed
    /// in chunks of `chunkRows` tile rows (the last shorter), each by `matmuls[rows in chunk]`.
    /// Split by tiles, a part is a thread's slot instead: the whole map and all channels, its
    /// chunks the layer's `claimedChunks` that its thread claims, each by `matmuls[rows]`.
    struct WinogradPart {
        let firstRow: Int, rows: Int
        let firstChannel: Int, channels: Int
        let chunkRows: Int
        let matmuls: [Int: OneDNNMatmul]
    }

    let geometry: ConvolutionGeometry
    let inputHeight: Int, inputWidth: Int
    let operands: OneDNNMatmul.Operands
    let columnWorkspaceBytes: Int
    let floatWorkspaceCount: Int
    /// The transformed weights in the operand type, kept alive here.
    private let weightStorage: AnyObject
    private let weights: UnsafeRawPointer
    let weightCount: Int
    let ownedWeightBytes: Int
    private let relu: Bool, accumulate: Bool
    private let winogradPlan: Winograd.Plan
    /// The first output channel of each filter slice, and a last entry `out`. The filters are
    /// stored slice by slice, each `[ξ][its outputs][in]`, and so are the products of a chunk,
    /// each `[ξ][its outputs][tiles]`. One slice unless the parts split the channels.
    private let sliceBounds: [Int]
    /// The `shared` way: for each slice, matmuls on the calling thread's OpenMP team by chunk
    /// tile rows (empty with one thread, where only `parts` runs).
    private let sharedMatmuls: [[Int: OneDNNMatmul]]
    /// The `parts` way: the per-thread parts (each gets an equal share of the workspaces, at
    /// least what it needs: `columnWorkspaceBytes` and `floatWorkspaceCount` cover them all).
    private let parts: [WinogradPart]
    /// Split by tiles on several threads: the chunks' tile-row ranges, top to bottom, that the
    /// parts' threads claim at run time (empty otherwise: each part runs its own rows).
    private let claimedChunks: [Range<Int>]
    /// How many of `claimedChunks` a `run` has handed out so far (reset at each call; made once,
    /// so that `run` allocates nothing).
    private let claims = LockedInt(0)
    /// How the parts were cut.
    let winogradSplit: WinogradSplit
    /// The 2×2 max pooling `run` applies to the output as it stores it (nil: none).
    let pool: Winograd.FusedPool?
    /// The team the parallel loops run on.
    private let team: KernelTeam
    /// The way `run` runs (`defaultWay` unless set). `shared` needs several threads: made for
    /// one, the layer always runs `parts` (`hasTwoWays` is false). Set it from the layer's
    /// thread, between `run` calls.
    var way: WinogradWay = OneDNNConvolution.defaultWay
    /// Whether both ways exist (made for several threads).
    var hasTwoWays: Bool { !sharedMatmuls.isEmpty }

    /// oneDNN's kernel name for the layer's main matmul.
    var implementation: String { (sharedMatmuls.first?.values.first ?? parts[0].matmuls.values.first!).implementation }

    /// See `OneDNNConvolution.init`; the arguments are checked there.
    init(runtime: OneDNNRuntime, operands: OneDNNMatmul.Operands, geometry g: ConvolutionGeometry,
         inputHeight h: Int, inputWidth w: Int, weights source: UnsafePointer<Float>,
         relu: Bool, accumulate: Bool, threads: Int, team: KernelTeam, split: WinogradSplit,
         pool: Winograd.FusedPool?) throws(OneDNNError) {
        geometry = g; inputHeight = h; inputWidth = w
        self.operands = operands
        self.relu = relu; self.accumulate = accumulate
        self.team = team
        self.pool = pool
        let elementBytes = operands == .bf16 ? 2 : 4
        let cin = g.inputChannels, cout = g.outputChannels
        let p = Winograd.plan(geometry: g, inputHeight: h, inputWidth: w,
                              budget: Winograd.defaultBudget, targetTiles: OneDNNConvolution.winogradTargetTiles)
        let count = max(1, threads)
        let resolved = OneDNNConvolution.resolve(split, tileRows: p.tilesY, chunkTiles: p.chunkTiles, outputChannels: cout, parts: count)
        winogradSplit = resolved
        let positions = Winograd.alpha * Winograd.alpha
        let bounds = resolved == .channels ? (0 ... count).map { cout * $0 / count } : [0, cout]
        sliceBounds = bounds
        let transformed = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: g))
        Winograd.transformWeights(geometry: g, weights: source, transformed: transformed.pointer, team: team)
        if bounds.count > 2 {
            // Each slice's filters dense, `[ξ][its outputs][in]`, slices one after another:
            // oneDNN's brgemm kernels refuse an A whose batch stride is not its own size.
            let ordered = AlignedBuffer(count: transformed.count)
            for slice in 0 ..< bounds.count - 1 {
                let first = bounds[slice], channels = bounds[slice + 1] - first
                for xi in 0 ..< positions {
                    (ordered.pointer + positions * cin * first + xi * channels * cin)
                        .update(from: transformed.pointer + (xi * cout + first) * cin, count: channels * cin)
                }
            }
            transformed.pointer.update(from: ordered.pointer, count: ordered.count)
        }
        (weightStorage, weights) = OneDNNConvolution.storeWeights(transformed.pointer, count: transformed.count, operands: operands)
        weightCount = transformed.count
        ownedWeightBytes = transformed.count * elementBytes

        // The `shared` way: the plan's chunks over the whole map, one matmul per slice.
        var shared: [[Int: OneDNNMatmul]] = []
        if count > 1 {
            for slice in 0 ..< bounds.count - 1 {
                let channels = bounds[slice + 1] - bounds[slice]
                var bySize: [Int: OneDNNMatmul] = [:]
                for rows in Set([p.chunkRows, p.tilesY % p.chunkRows]) where rows > 0 {
                    let columns = OneDNNConvolution.matmulColumns(tiles: rows * p.tilesX)
                    bySize[rows] = try OneDNNMatmul(runtime: runtime, operands: operands, batch: positions, m: channels, n: columns, k: cin,
                                                    lda: cin, ldb: columns, ldc: columns,
                                                    strideA: channels * cin, strideB: cin * columns, strideC: channels * columns)
                }
                shared.append(bySize)
            }
        }
        sharedMatmuls = shared

        // The `parts` way. Split by tiles on several threads, the chunks are the layer's,
        // claimed at run time; each part (a thread's slot) has matmuls for their sizes.
        let claimed = resolved == .tiles && count > 1
            ? OneDNNConvolution.claimedChunks(tileRows: p.tilesY, chunkRows: p.chunkRows, threads: count) : []
        claimedChunks = claimed
        var made: [WinogradPart] = []
        var columnElements = 0, floats = 0
        for index in 0 ..< count {
            let rows = resolved == .tiles && claimed.isEmpty
                ? (p.tilesY * index / count, p.tilesY * (index + 1) / count) : (0, p.tilesY)
            let channels = resolved == .channels ? (bounds[index], bounds[index + 1]) : (0, cout)
            let rowCount = rows.1 - rows.0, channelCount = channels.1 - channels.0
            guard rowCount > 0 && channelCount > 0 else { continue }
            // Split by channels, every part has the widest slice's chunks: the threads
            // transform each chunk's input together (`runChannelParts`).
            let chunkRows = claimed.isEmpty
                ? Winograd.chunkRows(tileRows: rowCount, tilesX: p.tilesX, inputChannels: cin,
                                     outputChannels: resolved == .channels ? (cout + count - 1) / count : channelCount,
                                     budget: Winograd.defaultBudget, targetTiles: OneDNNConvolution.winogradTargetTiles)
                : claimed.map(\.count).max()!
            let chunkSizes = claimed.isEmpty ? Set([chunkRows, rowCount % chunkRows]) : Set(claimed.map(\.count))
            let partRuntime = try runtime.part(made.count)
            var partMatmuls: [Int: OneDNNMatmul] = [:]
            for chunk in chunkSizes where chunk > 0 {
                let columns = OneDNNConvolution.matmulColumns(tiles: chunk * p.tilesX)
                partMatmuls[chunk] = try OneDNNMatmul(
                    runtime: partRuntime, operands: operands, batch: positions, m: channelCount, n: columns, k: cin,
                    lda: cin, ldb: columns, ldc: columns,
                    strideA: channelCount * cin, strideB: cin * columns, strideC: channelCount * columns, singleThreaded: true)
            }
            made.append(WinogradPart(firstRow: rows.0, rows: rowCount, firstChannel: channels.0, channels: channelCount,
                                     chunkRows: chunkRows, matmuls: partMatmuls))
            // Whole cache lines per part, so that no two threads write the same line.
            let columns = OneDNNConvolution.matmulColumns(tiles: chunkRows * p.tilesX)
            columnElements = max(columnElements, (positions * cin * columns * elementBytes + 63) / 64 * 64 / elementBytes)
            floats = max(floats, (positions * channelCount * columns + Winograd.productSlack + p.slotFloats + 15) / 16 * 16)
        }
        parts = made
        winogradPlan = p
        // Both ways use the same workspaces, one at a time.
        let chunkColumns = OneDNNConvolution.matmulColumns(tiles: p.chunkTiles)
        let sharedFloats = shared.isEmpty ? 0 : positions * cout * chunkColumns + Winograd.productSlack + count * p.slotFloats
        columnWorkspaceBytes = max(made.count * columnElements, shared.isEmpty ? 0 : positions * cin * chunkColumns) * elementBytes
        floatWorkspaceCount = max(made.count * floats, sharedFloats)
    }

    /// output = [output +] conv(input) + bias, then ReLU (or its 2×2 max pooling), as made, the
    /// way `way` says; `columns` in the operand type.
    @inline(__always)
    func run<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     output: UnsafeMutablePointer<Float>, columns workspace: UnsafeMutableBufferPointer<Element>,
                                     floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        guard let columns = workspace.baseAddress else { return }
        if way == .shared && hasTwoWays {
            runShared(input: input, bias: bias, output: output, columns: columns, floatWorkspace: floatWorkspace)
        } else if winogradSplit == .channels && parts.count > 1 {
            runChannelParts(input: input, bias: bias, output: output, columns: workspace, floatWorkspace: floatWorkspace)
        } else {
            runParts(input: input, bias: bias, output: output, columns: workspace, floatWorkspace: floatWorkspace)
        }
    }

    /// The `shared` way: `Winograd.chunks` over the whole map, each chunk's products from one
    /// multi-threaded matmul per filter slice.
    @inline(__always)
    private func runShared<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                                   output: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Element>,
                                                   floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        let p = winogradPlan
        guard let base = floatWorkspace.baseAddress else { return }
        let g = geometry, cin = g.inputChannels, positions = Winograd.alpha * Winograd.alpha
        let productCount = positions * g.outputChannels * OneDNNConvolution.matmulColumns(tiles: p.chunkTiles)
        let slots = (floatWorkspace.count - productCount - Winograd.productSlack) / p.slotFloats
        let weights = self.weights.assumingMemoryBound(to: Element.self)
        let bounds = sliceBounds, matmuls = sharedMatmuls
        Winograd.chunks(geometry: g, input: input, inputHeight: inputHeight, inputWidth: inputWidth, plan: p,
                        transformed: columns, products: base, scratch: base + productCount + Winograd.productSlack,
                        slots: slots, team: team, bias: bias, output: output, relu: relu, accumulate: accumulate,
                        sliceBounds: bounds, columns: OneDNNConvolution.matmulColumns, pool: pool) { tiles in
            let rows = tiles / p.tilesX
            let stride = OneDNNConvolution.matmulColumns(tiles: tiles)
            for slice in 0 ..< bounds.count - 1 {
                let first = bounds[slice]
                matmuls[slice][rows]!.run(a: weights + positions * cin * first, b: columns,
                                          c: base + positions * first * stride)
            }
        }
    }

    /// The Winograd input transform of input channels `channels` for the chunk of `rows` tile
    /// rows from `row`, into `transformed` (`[ξ][in][columns]`, columns `matmulColumns`), the
    /// padding columns zeroed. `scratch`: the calling thread's `Plan.slotFloats`.
    @inline(__always)
    private func transformChunk<Element: ColumnElement>(input: UnsafePointer<Float>, channels: Range<Int>, plan p: Winograd.Plan,
                                                        row: Int, rows: Int, transformed: UnsafeMutablePointer<Element>,
                                                        scratch: UnsafeMutablePointer<Float>) {
        let g = geometry, h = inputHeight, w = inputWidth, cin = g.inputChannels
        let tiles = rows * p.tilesX, stride = OneDNNConvolution.matmulColumns(tiles: tiles)
        for c in channels {
            Winograd.inputTransform(input: input + c * h * w, height: h, width: w, pad: g.padY, padX: g.padX,
                                    plan: p, firstTileRow: row, tileRows: rows,
                                    destination: transformed + c * stride, positionStride: cin * stride,
                                    scratch: scratch)
            Winograd.zeroPadding(transformed + c * stride + tiles, count: stride - tiles, positionStride: cin * stride)
        }
    }

    /// Part `part`'s share of a transformed chunk (`transformChunk`): its filter slice's matmul
    /// into `products`, then the output transform of its output channels (bias, accumulation,
    /// ReLU, pooling as made) into `output`. `scratch`: the calling thread's `Plan.slotFloats`.
    @inline(__always)
    private func finishChunk<Element: ColumnElement>(part: WinogradPart, plan p: Winograd.Plan, row: Int, rows: Int,
                                                     weights: UnsafePointer<Element>, transformed: UnsafeMutablePointer<Element>,
                                                     products: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                                     bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
        let positions = Winograd.alpha * Winograd.alpha
        let stride = OneDNNConvolution.matmulColumns(tiles: rows * p.tilesX)
        let plane = pool.map { $0.height * $0.width } ?? p.outputHeight * p.outputWidth
        part.matmuls[rows]!.run(a: weights + positions * geometry.inputChannels * part.firstChannel, b: transformed, c: products)
        for o in part.firstChannel ..< part.firstChannel + part.channels {
            Winograd.outputTransform(products: products + (o - part.firstChannel) * stride,
                                     positionStride: part.channels * stride,
                                     plan: p, firstTileRow: row, tileRows: rows,
                                     output: output + o * plane,
                                     bias: bias.map { $0[o] } ?? 0, relu: relu, accumulate: accumulate,
                                     pool: pool, scratch: scratch)
        }
    }

    /// The `parts` way split by channels: chunk by chunk, the threads transform the chunk's input
    /// together (each its share of the input channels, into one transformed chunk), then each
    /// part runs its filter slice's matmul on the whole chunk and the output transform of its
    /// own channels, whose products stay on its core.
    @inline(__always)
    private func runChannelParts<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                                         output: UnsafeMutablePointer<Float>, columns workspace: UnsafeMutableBufferPointer<Element>,
                                                         floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        let p = winogradPlan
        guard let floats = floatWorkspace.baseAddress, let transformed = workspace.baseAddress else { return }
        let cin = geometry.inputChannels, positions = Winograd.alpha * Winograd.alpha
        let parts = self.parts
        let partFloats = OneDNNConvolution.slotShares(columns: workspace, floats: floatWorkspace, slots: parts.count).floats
        let weights = self.weights.assumingMemoryBound(to: Element.self)
        let chunkRows = parts[0].chunkRows
        var widest = 0
        for part in parts { widest = max(widest, part.channels) }
        let productFloats = positions * widest * OneDNNConvolution.matmulColumns(tiles: chunkRows * p.tilesX)
        var row = 0
        while row < p.tilesY {
            let rows = min(chunkRows, p.tilesY - row)
            parallelSlots(count: cin, slots: parts.count, minimumChunk: 1, team: team) { slot, channels in
                transformChunk(input: input, channels: channels, plan: p, row: row, rows: rows, transformed: transformed,
                               scratch: floats + slot * partFloats + productFloats + Winograd.productSlack)
            }
            parallelSlots(count: parts.count, slots: parts.count, minimumChunk: 1, team: team) { _, indices in
                for index in indices {
                    let products = floats + index * partFloats
                    finishChunk(part: parts[index], plan: p, row: row, rows: rows, weights: weights, transformed: transformed,
                                products: products, scratch: products + productFloats + Winograd.productSlack,
                                bias: bias, output: output)
                }
            }
            row += rows
        }
    }

    /// The `parts` way split by tiles: each part on its own kernel thread, the threads claiming
    /// the chunks (`claimedChunks`, `claimOrder`); or a single part (one thread, either split)
    /// run start to end. Several parts split by channels run `runChannelParts`.
    @inline(__always)
    private func runParts<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                                  output: UnsafeMutablePointer<Float>, columns workspace: UnsafeMutableBufferPointer<Element>,
                                                  floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        let p = winogradPlan
        guard let floats = floatWorkspace.baseAddress, let columns = workspace.baseAddress else { return }
        let cin = geometry.inputChannels, positions = Winograd.alpha * Winograd.alpha
        let parts = self.parts
        let (partColumnElements, partFloats) = OneDNNConvolution.slotShares(columns: workspace, floats: floatWorkspace, slots: parts.count)
        let weights = self.weights.assumingMemoryBound(to: Element.self)
        let claimed = claimedChunks
        let tickets = claims
        tickets.store(0)
        parallelSlots(count: parts.count, slots: parts.count, minimumChunk: 1, team: team) { _, indices in
            for index in indices {
                let part = parts[index]
                let transformed = columns + index * partColumnElements
                let products = floats + index * partFloats
                let scratch = products + positions * part.channels * OneDNNConvolution.matmulColumns(tiles: part.chunkRows * p.tilesX)
                    + Winograd.productSlack
                var row = part.firstRow
                let end = part.firstRow + part.rows
                var own = 0
                while true {
                    let rows: Int
                    if claimed.isEmpty {
                        guard row < end else { break }
                        rows = min(part.chunkRows, end - row)
                    } else {
                        let ticket = tickets.increment()
                        guard ticket < claimed.count else { break }
                        let chunk = claimed[OneDNNConvolution.claimOrder(slot: index, slots: parts.count, ticket: ticket, own: own, chunks: claimed.count)]
                        own += 1
                        row = chunk.lowerBound
                        rows = chunk.count
                    }
                    transformChunk(input: input, channels: 0 ..< cin, plan: p, row: row, rows: rows,
                                   transformed: transformed, scratch: scratch)
                    finishChunk(part: part, plan: p, row: row, rows: rows, weights: weights, transformed: transformed,
                                products: products, scratch: scratch, bias: bias, output: output)
                    row += rows
                }
            }
        }
    }
}

extension OneDNNConvolution {
    /// Output channels per tile of a chunk from which a Winograd layer's parts split the
    /// channels rather than the tiles (`WinogradSplit.automatic`): split by tiles, every thread
    /// reads all the filters (36 × in × out values) for its chunks of in × tiles. Measured on
    /// full-width bf16 (docs/performance.md): conv4_x at 38 × 38 (512 channels, 100 tiles) and
    /// heads.loc+conf1 (340, 100) run faster by channels; conv3_x at 75 × 75 (256 channels,
    /// chunks of 150 tiles) no faster.
    public static let channelSplitRatio = 2

    /// Tiles per Winograd chunk that oneDNN layers aim for, in both ways: smaller than
    /// `Winograd.targetTiles` (OpenBLAS's), because oneDNN's batched matmul keeps its speed on
    /// short chunks and a chunk's transformed inputs and products then stay in cache. Measured
    /// on full-width NETNet-300 bf16 (docs/performance.md): 768 → 150 took `parts` from
    /// 123–125 to 116–118 ms per frame, `shared` from 114–118 to 113–117; fp32 unchanged.
    public static let winogradTargetTiles = 150

    /// The chunks (tile-row ranges, top to bottom) that `threads` threads claim in a layer of
    /// `tileRows` tile rows split by tiles: as many as chunks of `chunkRows` would need (the
    /// plan's, for the tiles-per-chunk target), at least one per thread, rounded up to a whole
    /// multiple of the threads so that equal threads end level; their sizes differ by at most one
    /// row. More chunks than that would re-read the filters once more per chunk. Pure.
    static func claimedChunks(tileRows: Int, chunkRows: Int, threads: Int) -> [Range<Int>] {
        require(tileRows >= 1 && chunkRows >= 1 && threads >= 1, "claimedChunks: \(tileRows) rows, chunks of \(chunkRows), \(threads) threads")
        let needed = max((tileRows + chunkRows - 1) / chunkRows, threads)
        let count = min(tileRows, (needed + threads - 1) / threads * threads)
        return (0 ..< count).map { tileRows * $0 / count ..< tileRows * ($0 + 1) / count }
    }

    /// The chunk, of `chunks`, that a claim takes: `ticket` is the claim's place among all the
    /// threads' claims (a shared counter's value, below `chunks`), `own` its place among its
    /// slot's. With two slots, slot 0 takes the chunks from the top and slot 1 from the bottom
    /// (disjoint, since their claims together number at most `chunks`); with more, the tickets'
    /// order. Pure.
    static func claimOrder(slot: Int, slots: Int, ticket: Int, own: Int, chunks: Int) -> Int {
        guard slots == 2 else { return ticket }
        return slot == 0 ? own : chunks - 1 - own
    }

    /// `split` made definite, for a map of `tileRows` tile rows processed in chunks of
    /// `chunkTiles` tiles: `channels` when the layer is filter-heavy (at least
    /// `channelSplitRatio` output channels per tile of a chunk), or when the tile rows do not
    /// divide among the `parts` within 10 % of an even share (and one part always does); else
    /// `tiles`. Never `channels` with fewer output channels than parts. Pure.
    static func resolve(_ split: WinogradSplit, tileRows: Int, chunkTiles: Int, outputChannels: Int, parts: Int) -> WinogradSplit {
        guard split == .automatic else { return split }
        if parts <= 1 || outputChannels < parts { return .tiles }
        if outputChannels >= channelSplitRatio * chunkTiles { return .channels }
        let largest = (tileRows + parts - 1) / parts
        return largest * parts * 10 <= tileRows * 11 ? .tiles : .channels
    }

}
