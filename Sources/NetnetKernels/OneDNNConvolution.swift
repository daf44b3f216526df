/// One convolution layer whose GEMMs run on oneDNN's matmul (`OneDNNMatmul`): the bf16 path
/// (`--precision bf16`: weights and the GEMMs' activation operand in bfloat16, products
/// accumulated in float32) or fp32 operands (`--gemm onednn`). Feature maps in and out are
/// float32 either way.
///
/// Three kernels, the first two as on OpenBLAS:
/// - `im2col`: the column tile is written straight in the operand type, then one matmul per tile,
///   `[out × K] · [K × n]`. On a map with enough rows for every thread (`rowBands`), each thread
///   takes a band of output rows and runs its tiles start to end (columns, a single-threaded
///   matmul into a dense tile of products, then the float32 epilogue storing them into the
///   output with bias, accumulation and ReLU): no data moves between cores, the band matches the
///   top/bottom bands of the Winograd layers split by tiles, and oneDNN runs its brgemm kernel
///   (a product written into a strided NCHW tile gets its slower `gemm:jit`). On smaller maps one
///   matmul on the team per tile writes the NCHW output (accumulating as a oneDNN post-op), then
///   the epilogue adds the bias and applies the ReLU while the tile is in cache.
/// - `winograd` (3×3 stride 1 only): F(4×4, 3×3) as in `Winograd`, with the filters transformed
///   in double, then rounded to the operand type once; the input transform stores that type; the
///   36 products of a chunk are batched matmuls; the output transform (with bias, accumulation,
///   ReLU) reads float32. On several threads a layer runs one of two ways (`WinogradWay`; by
///   default `defaultWay`, fixed at load so that a frame's output never depends on timing):
///   - `shared`: the threads take each step of a chunk together (the transforms split over
///     channels, one multi-threaded matmul), so each thread reads half of the filters;
///   - `parts`: each thread runs whole chunks start to end (input transform, a single-threaded
///     matmul, output transform), so the transformed inputs and products, 36× the size of the
///     map, never move between cores. Split by tiles (`WinogradSplit`), the threads claim the
///     chunks as they go, so a slower thread does fewer; split by channels, the threads
///     transform each chunk's input together, then each runs its slice of the filters and of
///     the output channels, whose products stay on its core.
///   Since the claimed chunks and the channel split, `parts` is as fast as `shared` or faster
///   on every network measured, and much faster when the other core is busy or on another die
///   (docs/performance.md), so it is the default. Either way the output transform can store the
///   2×2 max pooling of the output instead of the output (`pool`).
/// - `dilatedWinograd` (dilated 3×3 stride 1): the same filters and products, the tiles cut by
///   phases as in `DilatedWinograd`, all in one chunk with one matmul on the team.
///
/// Made once per layer and input size (weights converted, primitives created), then `forward` per
/// frame allocates nothing. Belongs to one thread at a time, like its `OneDNNRuntime`.
public final class OneDNNConvolution {
    /// Which kernel a layer runs.
    public enum Kernel: String, Sendable {
        case im2col, winograd
        /// `DilatedWinograd`, for a dilated 3×3 stride-1 layer: all its tiles in one chunk, one
        /// matmul on the calling thread's team (no ways).
        case dilatedWinograd = "winograd-dilated"
    }

    /// How a Winograd layer runs on several threads (see the type's documentation).
    public enum WinogradWay: String, Sendable, CaseIterable {
        case shared, parts
    }

    /// How a Winograd layer is cut into per-thread parts for `WinogradWay.parts`.
    public enum WinogradSplit: String, Sendable {
        /// `channels` for a filter-heavy layer (`channelSplitRatio`) or where the tile rows do
        /// not divide evenly enough among the parts, else `tiles` (`resolve`).
        case automatic
        /// The map is cut into chunks of tile rows, all output channels, a whole multiple of the
        /// parts in number, and the threads claim them at run time (`claimOrder`): with two,
        /// one from the top down and the other from the bottom up, so each keeps to its own band
        /// of the input (plus a 2-row halo) and of the output while a thread that runs slower
        /// (a busy core) simply claims fewer. Every thread reads all the filters.
        case tiles
        /// Each part takes a slice of the output channels over the whole map. Chunk by chunk,
        /// the threads first transform the input together (each its share of the input
        /// channels), then each runs the matmul of its slice of the filters over the whole
        /// chunk and the output transform of its channels. Each thread reads only its slice of
        /// the filters: for filter-heavy layers (more output channels than twice a chunk's
        /// tiles: conv4_x and conv5_x at 300) and small maps whose tile rows are too few to
        /// share out evenly.
        case channels
    }

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

    /// One thread's band of an im2col layer cut by rows: output rows `firstRow ..< firstRow +
    /// rows`, in tiles of `tileRows` (the last shorter), each by `matmuls[rows in tile]`.
    struct RowBand {
        let firstRow: Int, rows: Int
        let tileRows: Int
        let matmuls: [Int: OneDNNMatmul]
    }

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

    /// The N of a Winograd matmul for a chunk of `tiles` tiles: `tiles` rounded up to a multiple
    /// of 16 when that adds at most 7 columns, else `tiles`. oneDNN's bf16 brgemm works on
    /// 16-column blocks and runs a tail of 9–15 columns at a full block's cost or worse: with 25
    /// tiles (a 19×19 map) and 1024 input channels, 36×255×25 took 6.3 ms against 3.2 for 32
    /// columns (one thread, `scripts/matmul-columns-probe.c`); shorter tails gain nothing from
    /// padding (36 → 48 costs 5 %). Pure.
    public static func matmulColumns(tiles: Int) -> Int {
        tiles % 16 > 8 ? (tiles + 15) / 16 * 16 : tiles
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
    public var implementation: String {
        (sharedMatmuls.first?.values.first ?? parts.first?.matmuls.values.first ?? bands.first?.matmuls.values.first
            ?? matmuls[0]).implementation
    }

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
    /// im2col: one matmul for the full tiles, a second for a shorter last one if any; dilated
    /// Winograd: its one batched matmul.
    private let matmuls: [OneDNNMatmul]
    /// Dilated Winograd: its tiles.
    private let dilatedTiles: DilatedWinograd.Tiles?
    /// Winograd: the first output channel of each filter slice, and a last entry `out`. The
    /// filters are stored slice by slice, each `[ξ][its outputs][in]`, and so are the products of
    /// a chunk, each `[ξ][its outputs][tiles]`. One slice unless the parts split the channels.
    private let sliceBounds: [Int]
    /// Winograd, `shared` way: for each slice, matmuls on the calling thread's OpenMP team by
    /// chunk tile rows (empty with one thread, where only `parts` runs).
    private let sharedMatmuls: [[Int: OneDNNMatmul]]
    /// im2col cut by rows: one band per thread (empty: the team runs each tile).
    private let bands: [RowBand]
    /// Winograd, `parts` way: the per-thread parts (each gets an equal share of the workspaces,
    /// at least what it needs: `columnWorkspaceBytes` and `floatWorkspaceCount` cover them all).
    private let parts: [WinogradPart]
    /// Winograd split by tiles on several threads: the chunks' tile-row ranges, top to bottom,
    /// that the parts' threads claim at run time (empty otherwise: each part runs its own rows).
    private let claimedChunks: [Range<Int>]
    /// How many of `claimedChunks` a `forward` has handed out so far (reset at each call; made
    /// once, so that `forward` allocates nothing).
    private let claims = LockedInt(0)
    /// How the Winograd parts were cut (nil for the other kernels).
    public let winogradSplit: WinogradSplit?
    /// How many row bands an im2col layer runs, one per thread (0: none, the team runs each
    /// tile; always 0 for the other kernels).
    public var rowBandCount: Int { bands.count }
    /// `winograd` only: the 2×2 max pooling `forward` applies to the output as it stores it (nil:
    /// none, the whole output is written).
    public let pool: Winograd.FusedPool?
    /// The way every layer with two ways runs unless its owner sets another (benchmarks and
    /// tests do): `parts`, measured no slower than `shared` on the networks and CPU kinds netnet
    /// runs (docs/performance.md, `netnet bench --compare-ways`).
    public static let defaultWay: WinogradWay = .parts
    /// The way Winograd `forward` runs (`defaultWay` unless set). `shared` needs several threads:
    /// made for one, the layer always runs `parts` (`hasTwoWays` is false). Set it from the
    /// layer's thread, between `forward` calls.
    public var way: WinogradWay = OneDNNConvolution.defaultWay
    /// Whether this is a Winograd layer with both ways (made for several threads).
    public var hasTwoWays: Bool { !sharedMatmuls.isEmpty }

    /// Converts `weights` (`[out][in][kh][kw]` float32) and makes the matmuls for an input of
    /// `inputHeight` × `inputWidth`. `hasBias`, `relu` and `accumulate` fix what `forward` does,
    /// as in `Convolution.forward`. `columnBudget` caps an im2col tile (elements), as for fp32.
    /// Throws if oneDNN refuses (no bf16 on this CPU). Callable from the runtime's thread.
    ///
    /// `weightsOwner`: for float32 operands with im2col the layer can use `weights` in place
    /// instead of copying them, if it may keep the object that owns them alive (the model); nil
    /// copies.
    ///
    /// Winograd: `threads` parts, cut as `split` says; im2col: `rowBands` for `threads`
    /// threads; `forward` runs them on up to that many kernel threads. The default: the kernel
    /// threads, at most as many as GEMM threads (parts and bands run their matmuls on the kernel
    /// threads). `pool`: `forward` writes the output's 2×2 max pooling instead of the output
    /// (not with `accumulate`).
    public init(runtime: OneDNNRuntime, operands: OneDNNMatmul.Operands = .bf16,
                geometry g: ConvolutionGeometry, inputHeight h: Int, inputWidth w: Int,
                weights source: UnsafePointer<Float>, weightsOwner: AnyObject? = nil,
                kernel: Kernel, hasBias: Bool, relu: Bool, accumulate: Bool,
                columnBudget: Int = Convolution.defaultColumnBudget,
                threads: Int = min(KernelThreads.current, BLASThreads.current),
                split: WinogradSplit = .automatic, pool: Winograd.FusedPool? = nil) throws(OneDNNError) {
        require(g.isValid && h >= 1 && w >= 1, "OneDNNConvolution: invalid geometry \(g) or input \(h)x\(w)")
        require(kernel != .winograd || Winograd.isEligible(g), "OneDNNConvolution: Winograd needs a 3x3 stride-1 layer, got \(g)")
        require(kernel != .dilatedWinograd || DilatedWinograd.isEligible(g),
                "OneDNNConvolution: dilated Winograd needs a dilated 3x3 stride-1 layer, got \(g)")
        require(pool == nil || (kernel == .winograd && !accumulate),
                "OneDNNConvolution: pooling is fused only into a Winograd layer that does not accumulate")
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        require(oh >= 1 && ow >= 1, "OneDNNConvolution: input \(h)x\(w) too small for \(g)")
        if let pool {
            require(pool.height >= 1 && pool.width >= 1 && (pool.height == oh / 2 || pool.height == (oh + 1) / 2)
                        && (pool.width == ow / 2 || pool.width == (ow + 1) / 2),
                    "OneDNNConvolution: a \(pool.height)x\(pool.width) pooling of a \(oh)x\(ow) output is not 2x2 stride 2")
        }
        geometry = g; inputHeight = h; inputWidth = w
        self.pool = pool
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
            parts = []
            claimedChunks = []
            winogradSplit = nil
            sliceBounds = []
            sharedMatmuls = []
            dilatedTiles = nil
            winogradPlan = nil
            let bandCount = Self.rowBands(outputHeight: oh, outputWidth: ow, threads: threads)
            if bandCount > 0 {
                var made: [RowBand] = []
                var columnElements = 0, floats = 0
                for index in 0 ..< bandCount {
                    let first = oh * index / bandCount, rows = oh * (index + 1) / bandCount - first
                    let tile = Convolution.rowsPerTile(columnRows: k, outputHeight: rows, outputWidth: ow, capacity: Int.max,
                                                       columnBudget: columnBudget,
                                                       targetPositions: max(1, min(Convolution.targetTilePositions,
                                                                                   Self.bandTileFloats / cout)))
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
        case .winograd:
            let p = Winograd.plan(geometry: g, inputHeight: h, inputWidth: w,
                                  budget: Winograd.defaultBudget, targetTiles: Self.winogradTargetTiles)
            let count = max(1, threads)
            let resolved = Self.resolve(split, tileRows: p.tilesY, chunkTiles: p.chunkTiles, outputChannels: cout, parts: count)
            winogradSplit = resolved
            bands = []
            let positions = Winograd.alpha * Winograd.alpha
            let bounds = resolved == .channels ? (0 ... count).map { cout * $0 / count } : [0, cout]
            sliceBounds = bounds
            let transformed = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: g))
            Winograd.transformWeights(geometry: g, weights: source, transformed: transformed.pointer)
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
            (weightStorage, weights) = store(transformed.pointer, count: transformed.count)
            weightCount = transformed.count
            ownedWeightBytes = transformed.count * elementBytes

            // The `shared` way: the plan's chunks over the whole map, one matmul per slice.
            var shared: [[Int: OneDNNMatmul]] = []
            if count > 1 {
                for slice in 0 ..< bounds.count - 1 {
                    let channels = bounds[slice + 1] - bounds[slice]
                    var bySize: [Int: OneDNNMatmul] = [:]
                    for rows in Set([p.chunkRows, p.tilesY % p.chunkRows]) where rows > 0 {
                        let columns = Self.matmulColumns(tiles: rows * p.tilesX)
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
                ? Self.claimedChunks(tileRows: p.tilesY, chunkRows: p.chunkRows, threads: count) : []
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
                                         budget: Winograd.defaultBudget, targetTiles: Self.winogradTargetTiles)
                    : claimed.map(\.count).max()!
                let chunkSizes = claimed.isEmpty ? Set([chunkRows, rowCount % chunkRows]) : Set(claimed.map(\.count))
                let partRuntime = try runtime.part(made.count)
                var partMatmuls: [Int: OneDNNMatmul] = [:]
                for chunk in chunkSizes where chunk > 0 {
                    let columns = Self.matmulColumns(tiles: chunk * p.tilesX)
                    partMatmuls[chunk] = try OneDNNMatmul(
                        runtime: partRuntime, operands: operands, batch: positions, m: channelCount, n: columns, k: cin,
                        lda: cin, ldb: columns, ldc: columns,
                        strideA: channelCount * cin, strideB: cin * columns, strideC: channelCount * columns, singleThreaded: true)
                }
                made.append(WinogradPart(firstRow: rows.0, rows: rowCount, firstChannel: channels.0, channels: channelCount,
                                         chunkRows: chunkRows, matmuls: partMatmuls))
                // Whole cache lines per part, so that no two threads write the same line.
                let columns = Self.matmulColumns(tiles: chunkRows * p.tilesX)
                columnElements = max(columnElements, (positions * cin * columns * elementBytes + 63) / 64 * 64 / elementBytes)
                floats = max(floats, (positions * channelCount * columns + Winograd.productSlack + p.slotFloats + 15) / 16 * 16)
            }
            parts = made
            winogradPlan = p
            tileRows = p.chunkRows
            // Both ways use the same workspaces, one at a time.
            let chunkColumns = Self.matmulColumns(tiles: p.chunkTiles)
            let sharedFloats = shared.isEmpty ? 0 : positions * cout * chunkColumns + Winograd.productSlack + count * p.slotFloats
            columnWorkspaceBytes = max(made.count * columnElements, shared.isEmpty ? 0 : positions * cin * chunkColumns) * elementBytes
            floatWorkspaceCount = max(made.count * floats, sharedFloats)
            matmuls = []
            dilatedTiles = nil
        case .dilatedWinograd:
            let tiles = DilatedWinograd.Tiles(geometry: g, inputHeight: h, inputWidth: w)
            bands = []
            let positions = Winograd.alpha * Winograd.alpha
            let transformed = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: g))
            Winograd.transformWeights(geometry: DilatedWinograd.undilated(g), weights: source, transformed: transformed.pointer)
            (weightStorage, weights) = store(transformed.pointer, count: transformed.count)
            weightCount = transformed.count
            ownedWeightBytes = transformed.count * elementBytes
            let columns = Self.matmulColumns(tiles: tiles.count)
            matmuls = [try OneDNNMatmul(runtime: runtime, operands: operands, batch: positions, m: cout, n: columns, k: cin,
                                        lda: cin, ldb: columns, ldc: columns,
                                        strideA: cout * cin, strideB: cin * columns, strideC: cout * columns)]
            dilatedTiles = tiles
            columnWorkspaceBytes = positions * cin * columns * elementBytes
            floatWorkspaceCount = positions * cout * columns + Winograd.productSlack
            tileRows = 0
            winogradPlan = nil
            parts = []
            claimedChunks = []
            winogradSplit = nil
            sliceBounds = [0, cout]
            sharedMatmuls = []
        }
    }

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

    /// output = [output +] conv(input) + bias, then ReLU, as made; with `pool`, output is the 2×2
    /// max pooling of that (`[out, pool.height, pool.width]`). `bias` must be given iff the
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
                columns: UnsafeMutableBufferPointer(start: columns.bindMemory(to: UInt16.self, capacity: columnCapacityBytes / 2),
                                                    count: columnCapacityBytes / 2),
                floatWorkspace: floatWorkspace)
        } else {
            run(input: input, bias: bias, output: output,
                columns: UnsafeMutableBufferPointer(start: columns.bindMemory(to: Float.self, capacity: columnCapacityBytes / 4),
                                                    count: columnCapacityBytes / 4),
                floatWorkspace: floatWorkspace)
        }
    }

    @inline(__always)
    private func run<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                             output: UnsafeMutablePointer<Float>, columns workspace: UnsafeMutableBufferPointer<Element>,
                                             floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        guard let columns = workspace.baseAddress else { return }
        let g = geometry, h = inputHeight, w = inputWidth
        switch kernel {
        case .im2col where !bands.isEmpty:
            runBands(input: input, bias: bias, output: output, columns: workspace, floatWorkspace: floatWorkspace)
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
        case .dilatedWinograd:
            runDilated(input: input, bias: bias, output: output, columns: columns, floatWorkspace: floatWorkspace)
        case .winograd:
            if way == .shared && hasTwoWays {
                runShared(input: input, bias: bias, output: output, columns: columns, floatWorkspace: floatWorkspace)
            } else if winogradSplit == .channels && parts.count > 1 {
                runChannelParts(input: input, bias: bias, output: output, columns: workspace, floatWorkspace: floatWorkspace)
            } else {
                runParts(input: input, bias: bias, output: output, columns: workspace, floatWorkspace: floatWorkspace)
            }
        }
    }

    /// The elements of each workspace that slot i of `slots` (a Winograd part or a row band)
    /// owns, starting at i times them: the i-th of the whole workspaces, in 64-byte lines, the
    /// same place in every layer whatever its own slots need. A slot's thread then writes the
    /// memory it wrote in the layer before, not lines another core holds (each such line is a
    /// transfer between the cores, and the workspaces are shared by all layers). Pure.
    @inline(__always)
    private static func slotShares<Element>(columns: UnsafeMutableBufferPointer<Element>,
                                            floats: UnsafeMutableBufferPointer<Float>, slots: Int) -> (columns: Int, floats: Int) {
        let lineElements = 64 / MemoryLayout<Element>.stride
        return (columns.count / slots / lineElements * lineElements, floats.count / slots / 16 * 16)
    }

    /// im2col cut by rows: each band on its own kernel thread (slot i takes band i, as part i
    /// of a Winograd layer), tile by tile: columns, the band's matmul into its dense products,
    /// then the epilogue storing them into the output.
    @inline(__always)
    private func runBands<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                                  output: UnsafeMutablePointer<Float>, columns workspace: UnsafeMutableBufferPointer<Element>,
                                                  floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        guard let floats = floatWorkspace.baseAddress, let columns = workspace.baseAddress else { return }
        let g = geometry, h = inputHeight, w = inputWidth
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let bands = self.bands
        let (bandColumnElements, bandFloats) = Self.slotShares(columns: workspace, floats: floatWorkspace, slots: bands.count)
        let weights = self.weights
        let relu = self.relu, accumulate = self.accumulate
        parallelSlots(count: bands.count, slots: bands.count, minimumChunk: 1) { _, indices in
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

    /// The `shared` way: `Winograd.chunks` over the whole map, each chunk's products from one
    /// multi-threaded matmul per filter slice.
    @inline(__always)
    private func runShared<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                                   output: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Element>,
                                                   floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        guard let p = winogradPlan, let base = floatWorkspace.baseAddress else { return }
        let g = geometry, cin = g.inputChannels, positions = Winograd.alpha * Winograd.alpha
        let productCount = positions * g.outputChannels * Self.matmulColumns(tiles: p.chunkTiles)
        let slots = (floatWorkspace.count - productCount - Winograd.productSlack) / p.slotFloats
        let weights = self.weights.assumingMemoryBound(to: Element.self)
        let bounds = sliceBounds, matmuls = sharedMatmuls
        Winograd.chunks(geometry: g, input: input, inputHeight: inputHeight, inputWidth: inputWidth, plan: p,
                        transformed: columns, products: base, scratch: base + productCount + Winograd.productSlack,
                        slots: slots, bias: bias, output: output, relu: relu, accumulate: accumulate,
                        sliceBounds: bounds, columns: Self.matmulColumns, pool: pool) { tiles in
            let rows = tiles / p.tilesX
            let stride = Self.matmulColumns(tiles: tiles)
            for slice in 0 ..< bounds.count - 1 {
                let first = bounds[slice]
                matmuls[slice][rows]!.run(a: weights + positions * cin * first, b: columns,
                                          c: base + positions * first * stride)
            }
        }
    }

    /// Dilated Winograd: the input transform split over input channels, the matmul on the
    /// team, the output transform split over output channels.
    @inline(__always)
    private func runDilated<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                                    output: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Element>,
                                                    floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        guard let tiles = dilatedTiles, let products = floatWorkspace.baseAddress else { return }
        let g = geometry, cin = g.inputChannels, cout = g.outputChannels
        let stride = Self.matmulColumns(tiles: tiles.count)
        let inputPlane = inputHeight * inputWidth
        let outputPlane = g.outputHeight(inputHeight: inputHeight) * g.outputWidth(inputWidth: inputWidth)
        let minimum = max(1, 4096 / max(1, tiles.count))
        parallelSlots(count: cin, slots: KernelThreads.current, minimumChunk: minimum) { _, channels in
            for c in channels {
                DilatedWinograd.inputTransform(input: input + c * inputPlane, tiles: tiles,
                                               destination: columns + c * stride, positionStride: cin * stride)
                Winograd.zeroPadding(columns + c * stride + tiles.count, count: stride - tiles.count, positionStride: cin * stride)
            }
        }
        matmuls[0].run(a: weights, b: columns, c: products)
        let relu = self.relu, accumulate = self.accumulate
        parallelSlots(count: cout, slots: KernelThreads.current, minimumChunk: minimum) { _, channels in
            for o in channels {
                DilatedWinograd.outputTransform(products: products + o * stride, positionStride: cout * stride, tiles: tiles,
                                                output: output + o * outputPlane, bias: bias.map { $0[o] } ?? 0,
                                                relu: relu, accumulate: accumulate)
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
        let tiles = rows * p.tilesX, stride = Self.matmulColumns(tiles: tiles)
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
        let stride = Self.matmulColumns(tiles: rows * p.tilesX)
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
        guard let p = winogradPlan, let floats = floatWorkspace.baseAddress, let transformed = workspace.baseAddress else { return }
        let cin = geometry.inputChannels, positions = Winograd.alpha * Winograd.alpha
        let parts = self.parts
        let partFloats = Self.slotShares(columns: workspace, floats: floatWorkspace, slots: parts.count).floats
        let weights = self.weights.assumingMemoryBound(to: Element.self)
        let chunkRows = parts[0].chunkRows
        var widest = 0
        for part in parts { widest = max(widest, part.channels) }
        let productFloats = positions * widest * Self.matmulColumns(tiles: chunkRows * p.tilesX)
        var row = 0
        while row < p.tilesY {
            let rows = min(chunkRows, p.tilesY - row)
            parallelSlots(count: cin, slots: parts.count, minimumChunk: 1) { slot, channels in
                transformChunk(input: input, channels: channels, plan: p, row: row, rows: rows, transformed: transformed,
                               scratch: floats + slot * partFloats + productFloats + Winograd.productSlack)
            }
            parallelSlots(count: parts.count, slots: parts.count, minimumChunk: 1) { _, indices in
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
        guard let p = winogradPlan, let floats = floatWorkspace.baseAddress, let columns = workspace.baseAddress else { return }
        let cin = geometry.inputChannels, positions = Winograd.alpha * Winograd.alpha
        let parts = self.parts
        let (partColumnElements, partFloats) = Self.slotShares(columns: workspace, floats: floatWorkspace, slots: parts.count)
        let weights = self.weights.assumingMemoryBound(to: Element.self)
        let claimed = claimedChunks
        let tickets = claims
        tickets.store(0)
        parallelSlots(count: parts.count, slots: parts.count, minimumChunk: 1) { _, indices in
            for index in indices {
                let part = parts[index]
                let transformed = columns + index * partColumnElements
                let products = floats + index * partFloats
                let scratch = products + positions * part.channels * Self.matmulColumns(tiles: part.chunkRows * p.tilesX)
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
                        let chunk = claimed[Self.claimOrder(slot: index, slots: parts.count, ticket: ticket, own: own, chunks: claimed.count)]
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
