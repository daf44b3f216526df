import COpenBLAS

/// im2col + `cblas_sgemm` convolution with a fused bias/ReLU epilogue, over batch-1 NCHW float32.
///
/// General path: for each tile of output rows, im2col the tile into the workspace
/// (`[K, tileRows*ow]`, K = in*kh*kw, row order (c, ky, kx) matching the `[out][in][kh][kw]`
/// weight layout), one sgemm writes the tile straight into the NCHW output (ldc = oh*ow), then the
/// epilogue adds the bias and applies ReLU to the tile while it is still in cache.
/// Pointwise path (`isPointwise`): one sgemm directly on the input, no workspace.
///
/// All entry points are synchronous and callable from any thread; concurrent calls are safe
/// as long as their outputs and workspaces are disjoint (they share read-only inputs freely).
public enum Convolution {
    /// Default upper bound, in floats, on the column tile: 8 Mi floats (32 MiB). Only layers
    /// with a large K (= in*kh*kw) reach it (e.g. VGG's conv4_3 at 38x38 needs 6.7 Mi floats
    /// untiled); most layers stop at `targetTilePositions` first. See `KernelBenchmark`.
    public static let defaultColumnBudget: Int = 8 << 20

    /// Output positions per tile that tiling aims for (fewer only when the column budget forces
    /// it): about 2048 positions keeps sgemm's N large enough that repacking the weights per tile
    /// costs little, while the tile's columns and outputs stay cache-resident. Measured on a
    /// 2-core Zen 4 with OpenBLAS 0.3.21: smaller N (200–900) cost up to 25–80% on the deep
    /// layers, much larger tiles (> ~16 MiB of columns) cost 10–30% on conv1_2.
    public static let targetTilePositions: Int = 2048

    /// Output rows per tile: enough rows for `targetTilePositions` positions, but no more than
    /// fit `min(capacity, max(budget, one row))` floats, at least 1, then evened out so that the
    /// tiles have (nearly) equal heights.
    @inline(__always)
    @_spi(Benchmarks) public static func rowsPerTile(columnRows k: Int, outputHeight oh: Int, outputWidth ow: Int,
                            capacity: Int, columnBudget: Int,
                            targetPositions: Int = Convolution.targetTilePositions) -> Int {
        let perRow = k * ow
        let limit = min(capacity, max(columnBudget, perRow))
        let wanted = (max(1, targetPositions) + ow - 1) / ow
        let maximum = max(1, min(oh, limit / perRow, wanted))
        let tiles = (oh + maximum - 1) / maximum
        return (oh + tiles - 1) / tiles
    }

    /// Floats of column workspace `forward` needs for this geometry and input size when the
    /// column buffer is tiled to at most `columnBudget` floats: 0 for pointwise, otherwise
    /// `K * ow * rows` for the tile height `forward` will use (enough rows for
    /// `targetTilePositions` output positions, capped by the budget, at least 1). Never exceeds
    /// `max(columnBudget, K * ow)` (K = in*kh*kw). The engine may pass one workspace of the
    /// maximum over all its layers. Pure function, callable from any thread.
    public static func workspaceCount(geometry: ConvolutionGeometry, inputHeight: Int, inputWidth: Int,
                                      columnBudget: Int = Convolution.defaultColumnBudget) -> Int {
        require(geometry.isValid, "Convolution.workspaceCount: invalid geometry \(geometry)")
        if geometry.isPointwise { return 0 }
        let oh = geometry.outputHeight(inputHeight: inputHeight)
        let ow = geometry.outputWidth(inputWidth: inputWidth)
        require(oh >= 1 && ow >= 1,
                     "Convolution.workspaceCount: input \(inputHeight)x\(inputWidth) too small for \(geometry)")
        let k = geometry.columnRows
        let rows = rowsPerTile(columnRows: k, outputHeight: oh, outputWidth: ow,
                               capacity: Int.max, columnBudget: columnBudget)
        return k * ow * rows
    }

    /// output = [output +] conv(input, weights) + bias, then ReLU if `relu`. `accumulate` adds the
    /// convolution to what `output` already holds (bias still added once, ReLU applied after the
    /// sum). Output is `[out, oh, ow]` NCHW. `bias` nil means no bias. `workspace` must hold at
    /// least one output row of columns (`K*ow` floats; `workspaceCount` gives the full amount) unless
    /// the geometry is pointwise; tiles are as `workspaceCount(…)` describes, further capped by
    /// `workspace.count` (but always at least one output row). `output` must not overlap `input`, `weights` or `workspace`.
    /// Synchronous; callable from any thread, reentrant given disjoint output and workspace.
    public static func forward(geometry: ConvolutionGeometry,
                               input: UnsafePointer<Float>, inputHeight: Int, inputWidth: Int,
                               weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               output: UnsafeMutablePointer<Float>,
                               relu: Bool, accumulate: Bool,
                               workspace: UnsafeMutableBufferPointer<Float>, team: KernelTeam = .current) {
        forward(geometry: geometry, input: input, inputHeight: inputHeight, inputWidth: inputWidth,
                weights: weights, bias: bias, output: output, relu: relu, accumulate: accumulate,
                workspace: workspace, columnBudget: defaultColumnBudget, team: team)
    }

    /// As `forward(geometry:…workspace:)`, with an explicit column tile budget in floats (tiles use
    /// at most `min(workspace.count, max(columnBudget, K*ow))` floats, in whole output rows). im2col
    /// and the epilogue split over `team`; the GEMMs run on OpenBLAS's threads.
    public static func forward(geometry g: ConvolutionGeometry,
                               input: UnsafePointer<Float>, inputHeight h: Int, inputWidth w: Int,
                               weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               output: UnsafeMutablePointer<Float>,
                               relu: Bool, accumulate: Bool,
                               workspace: UnsafeMutableBufferPointer<Float>,
                               columnBudget: Int, team: KernelTeam = .current) {
        forwardImplementation(geometry: g, input: input, inputHeight: h, inputWidth: w, weights: weights,
                              bias: bias, output: output, relu: relu, accumulate: accumulate,
                              workspace: workspace, columnBudget: columnBudget,
                              targetPositions: targetTilePositions, team: team)
    }

    /// `forward` with an explicit target of output positions per tile (`targetTilePositions`
    /// in `forward`), for the benchmarks' sweeps.
    @_spi(Benchmarks) public static func forwardImplementation(geometry g: ConvolutionGeometry,
                                      input: UnsafePointer<Float>, inputHeight h: Int, inputWidth w: Int,
                                      weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                      output: UnsafeMutablePointer<Float>,
                                      relu: Bool, accumulate: Bool,
                                      workspace: UnsafeMutableBufferPointer<Float>,
                                      columnBudget: Int, targetPositions: Int, team: KernelTeam = .current) {
        require(g.isValid, "Convolution.forward: invalid geometry \(g)")
        require(h >= 1 && w >= 1, "Convolution.forward: invalid input size \(h)x\(w)")
        let oh = g.outputHeight(inputHeight: h)
        let ow = g.outputWidth(inputWidth: w)
        require(oh >= 1 && ow >= 1, "Convolution.forward: input \(h)x\(w) too small for \(g)")
        let k = g.columnRows
        let ohw = oh * ow
        require(max(k, ohw, g.outputChannels) <= Int(Int32.max), "Convolution.forward: size exceeds 32-bit BLAS int")
        let beta: Float = accumulate ? 1 : 0

        if g.isPointwise {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                        blasint(g.outputChannels), blasint(ohw), blasint(k), 1,
                        weights, blasint(k), input, blasint(ohw), beta, output, blasint(ohw))
            epilogue(output: output, channels: g.outputChannels, channelStride: ohw, count: ohw,
                     bias: bias, relu: relu, team: team)
            return
        }

        require(workspace.count >= k * ow,
                     "Convolution.forward: workspace too small: \(workspace.count) floats, need at least \(k * ow) (one output row; Convolution.workspaceCount gives \(workspaceCount(geometry: g, inputHeight: h, inputWidth: w, columnBudget: columnBudget))) for \(g) at \(h)x\(w)")
        guard let columns = workspace.baseAddress else {
            fatalError("Convolution.forward: workspace has no base address")
        }
        let tileRows = rowsPerTile(columnRows: k, outputHeight: oh, outputWidth: ow,
                                   capacity: workspace.count, columnBudget: columnBudget,
                                   targetPositions: targetPositions)
        var rowStart = 0
        while rowStart < oh {
            let rows = min(tileRows, oh - rowStart)
            let n = rows * ow
            im2col(geometry: g, input: input, inputHeight: h, inputWidth: w, outputWidth: ow,
                   rowStart: rowStart, rowCount: rows, columns: columns, team: team)
            let tileOutput = output + rowStart * ow
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                        blasint(g.outputChannels), blasint(n), blasint(k), 1,
                        weights, blasint(k), columns, blasint(n), beta, tileOutput, blasint(ohw))
            epilogue(output: tileOutput, channels: g.outputChannels, channelStride: ohw, count: n,
                     bias: bias, relu: relu, team: team)
            rowStart += rows
        }
    }

    /// A 1×1 stride-1 convolution (`geometry.isPointwise`) as `forward` computes it, with the GEMM
    /// cut by output columns into one part per thread of `team`, each part one single-threaded
    /// `cblas_sgemm` on its thread: OpenBLAS inside the team's pool instead of beside it, where its
    /// own spinning workers and the team's would fight over the cores. The caller holds OpenBLAS
    /// at one thread meanwhile (`BLASThreads.withOpenBLAS(threads: 1)`; `Detector.forward` does). The same
    /// products as `forward`'s one call, summed in OpenBLAS's blocking for the narrower GEMM: equal
    /// to it within float32 rounding (tested). Synchronous; reentrant given disjoint outputs.
    public static func forwardPointwiseByColumns(geometry g: ConvolutionGeometry,
                                                 input: UnsafePointer<Float>, inputHeight h: Int, inputWidth w: Int,
                                                 weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                                 output: UnsafeMutablePointer<Float>,
                                                 relu: Bool, accumulate: Bool, team: KernelTeam) {
        require(g.isPointwise, "Convolution.forwardPointwiseByColumns: not a 1x1 stride-1 geometry \(g)")
        require(h >= 1 && w >= 1, "Convolution.forwardPointwiseByColumns: invalid input size \(h)x\(w)")
        let hw = h * w, k = g.inputChannels, m = g.outputChannels
        require(max(k, hw, m) <= Int(Int32.max), "Convolution.forwardPointwiseByColumns: size exceeds 32-bit BLAS int")
        let beta: Float = accumulate ? 1 : 0
        // Parts of at least 64 columns, in multiples of 16 so each part's rows stay vector-aligned.
        let parts = max(1, min(team.threads, hw / 64))
        let step = (hw + parts - 1) / parts
        let columns = (step + 15) / 16 * 16
        parallelChunks(count: parts, minimumChunk: 1, team: team) { range in
            for part in range {
                let first = part * columns
                guard first < hw else { continue }
                let n = min(columns, hw - first)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(n), blasint(k), 1,
                            weights, blasint(k), input + first, blasint(hw), beta, output + first, blasint(hw))
                epilogue(output: output + first, channels: m, channelStride: hw, count: n,
                         bias: bias, relu: relu, team: .single)
            }
        }
    }

    // MARK: - im2col

    /// `im2col` into float32 columns, for the benchmarks. Split over `team`.
    @_spi(Benchmarks) public static func im2colFloats(geometry g: ConvolutionGeometry, input: UnsafePointer<Float>,
                                                      inputHeight h: Int, inputWidth w: Int, outputWidth ow: Int,
                                                      rowStart: Int, rowCount: Int, columns: UnsafeMutablePointer<Float>,
                                                      team: KernelTeam = .current) {
        im2col(geometry: g, input: input, inputHeight: h, inputWidth: w, outputWidth: ow, rowStart: rowStart,
               rowCount: rowCount, columns: columns, team: team)
    }

    /// Fills `columns` with the `[K, rowCount*ow]` column matrix for output rows
    /// `rowStart ..< rowStart+rowCount`. Zero only where the window reads padding; stride-1 rows
    /// are bulk copies. Split over threads by column-matrix rows when large enough.
    static func im2col<Element: ColumnElement>(geometry g: ConvolutionGeometry, input: UnsafePointer<Float>,
                       inputHeight h: Int, inputWidth w: Int, outputWidth ow: Int,
                       rowStart: Int, rowCount: Int, columns: UnsafeMutablePointer<Element>, team: KernelTeam = .current) {
        let k = g.columnRows
        let n = rowCount * ow
        // ~32 Ki floats (128 KiB) of columns per thread at least, so tiny tiles stay serial.
        let minimumRows = max(1, (32 * 1024) / max(1, n))
        parallelChunks(count: k, minimumChunk: minimumRows, team: team) { range in
            im2colRows(geometry: g, input: input, inputHeight: h, inputWidth: w, outputWidth: ow,
                       rowStart: rowStart, rowCount: rowCount, columns: columns, kRows: range)
        }
    }

    /// Rows `kRows` of the column matrix, as float32 (`Float`) or rounded to bf16 (`UInt16`).
    @inline(__always)
    static func im2colRows<Element: ColumnElement>(geometry g: ConvolutionGeometry, input: UnsafePointer<Float>,
                           inputHeight h: Int, inputWidth w: Int, outputWidth ow: Int,
                           rowStart: Int, rowCount: Int, columns: UnsafeMutablePointer<Element>,
                           kRows: Range<Int>) {
        let kh = g.kernelHeight, kw = g.kernelWidth
        let sy = g.strideY, sx = g.strideX
        let py = g.padY, px = g.padX
        let dy = g.dilationY, dx = g.dilationX
        let n = rowCount * ow
        let plane = h * w
        for r in kRows {
            let kx = r % kw
            let ky = (r / kw) % kh
            let c = r / (kw * kh)
            let source = input + c * plane
            var destination = columns + r * n
            // Valid output columns: ox*sx + xOffset in [0, w).
            let xOffset = kx * dx - px
            let lo = xOffset >= 0 ? 0 : min(ow, (-xOffset + sx - 1) / sx)
            let lastValid = w - 1 - xOffset
            let hi = lastValid < 0 ? lo : max(lo, min(ow, lastValid / sx + 1))
            let yOffset = ky * dy - py
            for oy in rowStart ..< rowStart + rowCount {
                let iy = oy * sy + yOffset
                if iy < 0 || iy >= h {
                    destination.update(repeating: .zero, count: ow)
                } else {
                    let sourceRow = source + iy * w + xOffset
                    if lo > 0 { destination.update(repeating: .zero, count: lo) }
                    if sx == 1 {
                        Element.store(sourceRow + lo, into: destination + lo, count: hi - lo)
                    } else {
                        var ox = lo
                        while ox < hi {
                            destination[ox] = Element(rounding: sourceRow[ox * sx])
                            ox += 1
                        }
                    }
                    if hi < ow { (destination + hi).update(repeating: .zero, count: ow - hi) }
                }
                destination += ow
            }
        }
    }

    // MARK: - Epilogue

    /// Stores a dense tile of products (`[channels][count]`) into `channels` planes of `output`
    /// (`output + o*channelStride`): `output (+)= products + bias[o]`, then ReLU if asked. On the
    /// calling thread; the tile and the output may not overlap.
    @inline(__always)
    static func storeTile(_ products: UnsafePointer<Float>, channels: Int, count: Int,
                          into output: UnsafeMutablePointer<Float>, channelStride: Int,
                          bias: UnsafePointer<Float>?, relu: Bool, accumulate: Bool) {
        for o in 0 ..< channels {
            let source = products + o * count, destination = output + o * channelStride
            let value = bias?[o] ?? 0
            switch (accumulate, relu) {
            case (false, false): for j in 0 ..< count { destination[j] = source[j] + value }
            case (false, true): for j in 0 ..< count { destination[j] = max(source[j] + value, 0) }
            case (true, false): for j in 0 ..< count { destination[j] += source[j] + value }
            case (true, true): for j in 0 ..< count { destination[j] = max(destination[j] + source[j] + value, 0) }
            }
        }
    }

    /// Adds `bias[o]` to `count` floats of each channel `o` (at `output + o*channelStride`), then
    /// ReLU if asked. Nothing to do without bias or ReLU.
    static func epilogue(output: UnsafeMutablePointer<Float>, channels: Int, channelStride: Int,
                         count: Int, bias: UnsafePointer<Float>?, relu: Bool, team: KernelTeam = .current) {
        if bias == nil && !relu { return }
        let minimumChannels = max(1, (64 * 1024) / max(1, count))
        parallelChunks(count: channels, minimumChunk: minimumChannels, team: team) { range in
            for o in range {
                let p = output + o * channelStride
                if let bias {
                    let value = bias[o]
                    if relu {
                        for j in 0 ..< count { p[j] = max(p[j] + value, 0) }
                    } else {
                        for j in 0 ..< count { p[j] += value }
                    }
                } else {
                    for j in 0 ..< count { p[j] = max(p[j], 0) }
                }
            }
        }
    }
}

/// What the column matrix and Winograd's transformed inputs can hold: float32 for the OpenBLAS
/// path, bf16 bit patterns (`UInt16`) for oneDNN's. The conversions are the hot loops' stores.
protocol ColumnElement {
    static var zero: Self { get }
    /// `value` as this element (bf16: rounded to nearest even; finite values only, no NaN branch,
    /// so that the loops storing it still vectorise).
    init(rounding value: Float)
    /// Stores `count` floats as elements.
    static func store(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Self>, count: Int)
    /// Stores 8 floats as elements at `destination` (no alignment needed): the vector form of
    /// `init(rounding:)`, for loops whose stores the compiler would not vectorise.
    static func store(_ values: SIMD8<Float>, to destination: UnsafeMutablePointer<Self>)
    /// Stores the first `count` (0 ... 8) of 8 floats as elements: `store(_:to:)` for the last,
    /// partial vector of a row, which must not write past the row (the memory after it may be
    /// another thread's, or already written).
    static func store(_ values: SIMD8<Float>, to destination: UnsafeMutablePointer<Self>, count: Int)
}

extension Float: ColumnElement {
    @inline(__always) init(rounding value: Float) { self = value }
    @inline(__always)
    static func store(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        destination.update(from: source, count: count)
    }
    @inline(__always)
    static func store(_ values: SIMD8<Float>, to destination: UnsafeMutablePointer<Float>) {
        store8(values, destination)
    }
    @inline(__always)
    static func store(_ values: SIMD8<Float>, to destination: UnsafeMutablePointer<Float>, count: Int) {
        for lane in 0 ..< count { destination[lane] = values[lane] }
    }
}

extension UInt16: ColumnElement {
    @inline(__always)
    init(rounding value: Float) {
        let bits = value.bitPattern
        self = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16)
    }
    @inline(__always)
    static func store(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int) {
        BFloat16.convert(source, into: destination, count: count)
    }
    @inline(__always)
    static func store(_ values: SIMD8<Float>, to destination: UnsafeMutablePointer<UInt16>) {
        let rounded = BFloat16.roundedBits(unsafeBitCast(values, to: SIMD8<UInt32>.self))
        UnsafeMutableRawPointer(destination).storeBytes(of: BFloat16.lowHalves(rounded), as: SIMD8<UInt16>.self)
    }
    @inline(__always)
    static func store(_ values: SIMD8<Float>, to destination: UnsafeMutablePointer<UInt16>, count: Int) {
        let rounded = BFloat16.lowHalves(BFloat16.roundedBits(unsafeBitCast(values, to: SIMD8<UInt32>.self)))
        for lane in 0 ..< count { destination[lane] = rounded[lane] }
    }
}
