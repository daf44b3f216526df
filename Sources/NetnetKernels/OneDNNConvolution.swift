/// One convolution layer whose GEMMs run on oneDNN's matmul (`OneDNNMatmul`): the bf16 path
/// (`--precision bf16`: weights and the GEMMs' activation operand in bfloat16, products
/// accumulated in float32) or fp32 operands (`--gemm onednn`). Feature maps in and out are
/// float32 either way.
///
/// Three kernels, one type each, chosen when the layer is made (`Kernel`):
/// - `im2col` (`OneDNNIm2col`): column tiles and one matmul per tile, on the team or, on a large
///   map, in one band of output rows per thread;
/// - `winograd` (`OneDNNWinograd`, 3×3 stride 1 only): F(4×4, 3×3) with batched matmuls, run one
///   of two ways on several threads (`WinogradWay`; by default `defaultWay`, fixed at load so
///   that a frame's output never depends on timing), optionally storing the 2×2 max pooling of
///   its output (`pool`);
/// - `dilatedWinograd` (`OneDNNDilatedWinograd`, dilated 3×3 stride 1): the same filters and
///   products, the tiles cut by phases as in `DilatedWinograd`.
/// This type checks the arguments, makes the kernel's type, and hands it the shared workspaces
/// in the operand type at each `forward`.
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

    /// The N of a Winograd matmul for a chunk of `tiles` tiles: `tiles` rounded up to a multiple
    /// of 16 when that adds at most 7 columns, else `tiles`. oneDNN's bf16 brgemm works on
    /// 16-column blocks and runs a tail of 9–15 columns at a full block's cost or worse: with 25
    /// tiles (a 19×19 map) and 1024 input channels, 36×255×25 took 6.3 ms against 3.2 for 32
    /// columns (one thread, `bench/matmul-columns-probe.c`); shorter tails gain nothing from
    /// padding (36 → 48 costs 5 %). Pure.
    public static func matmulColumns(tiles: Int) -> Int {
        tiles % 16 > 8 ? (tiles + 15) / 16 * 16 : tiles
    }

    /// The way every layer with two ways runs unless its owner sets another (benchmarks and
    /// tests do): `parts`, measured no slower than `shared` on the networks and CPU kinds netnet
    /// runs (docs/performance.md, `netnet bench --compare-ways`).
    public static let defaultWay: WinogradWay = .parts

    /// The kernel's own type, made for this layer.
    private enum Body {
        case im2col(OneDNNIm2col)
        case winograd(OneDNNWinograd)
        case dilatedWinograd(OneDNNDilatedWinograd)
    }
    private let body: Body

    /// The layer's geometry and the input size it was made for.
    public let geometry: ConvolutionGeometry
    public let inputHeight: Int, inputWidth: Int
    /// The kernel this layer runs.
    public let kernel: Kernel
    /// The GEMM operands' type.
    public let operands: OneDNNMatmul.Operands
    private let hasBias: Bool
    /// `winograd` only: the 2×2 max pooling `forward` applies to the output as it stores it (nil:
    /// none, the whole output is written).
    public let pool: Winograd.FusedPool?

    /// Bytes of column workspace `forward` needs (column tiles, or Winograd's transformed inputs,
    /// in the operand type).
    public var columnWorkspaceBytes: Int {
        switch body {
        case let .im2col(layer): return layer.columnWorkspaceBytes
        case let .winograd(layer): return layer.columnWorkspaceBytes
        case let .dilatedWinograd(layer): return layer.columnWorkspaceBytes
        }
    }

    /// Float32 elements of workspace `forward` needs (Winograd's products and scratch, a row
    /// band's products; 0 for im2col on the team).
    public var floatWorkspaceCount: Int {
        switch body {
        case let .im2col(layer): return layer.floatWorkspaceCount
        case let .winograd(layer): return layer.floatWorkspaceCount
        case let .dilatedWinograd(layer): return layer.floatWorkspaceCount
        }
    }

    /// oneDNN's kernel name for this layer's main matmul.
    public var implementation: String {
        switch body {
        case let .im2col(layer): return layer.implementation
        case let .winograd(layer): return layer.implementation
        case let .dilatedWinograd(layer): return layer.implementation
        }
    }

    /// bf16 or float32 elements of the weights.
    public var weightCount: Int {
        switch body {
        case let .im2col(layer): return layer.weightCount
        case let .winograd(layer): return layer.weightCount
        case let .dilatedWinograd(layer): return layer.weightCount
        }
    }

    /// Bytes of weights this layer allocated (0 when it uses the caller's float32 weights in place).
    public var ownedWeightBytes: Int {
        switch body {
        case let .im2col(layer): return layer.ownedWeightBytes
        case let .winograd(layer): return layer.ownedWeightBytes
        case let .dilatedWinograd(layer): return layer.ownedWeightBytes
        }
    }

    /// How the Winograd parts were cut (nil for the other kernels).
    public var winogradSplit: WinogradSplit? {
        if case let .winograd(layer) = body { return layer.winogradSplit }
        return nil
    }

    /// How many row bands an im2col layer runs, one per thread (0: none, the team runs each
    /// tile; always 0 for the other kernels).
    public var rowBandCount: Int {
        if case let .im2col(layer) = body { return layer.bands.count }
        return 0
    }

    /// The way a Winograd layer's `forward` runs (`defaultWay` unless set; ignored by the other
    /// kernels). `shared` needs several threads: made for one, the layer always runs `parts`
    /// (`hasTwoWays` is false). Set it from the layer's thread, between `forward` calls.
    public var way: WinogradWay {
        get {
            if case let .winograd(layer) = body { return layer.way }
            return Self.defaultWay
        }
        set {
            if case let .winograd(layer) = body { layer.way = newValue }
        }
    }

    /// Whether this is a Winograd layer with both ways (made for several threads).
    public var hasTwoWays: Bool {
        if case let .winograd(layer) = body { return layer.hasTwoWays }
        return false
    }

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
    ///
    /// `team`: the threads the layer's own loops (im2col, transforms, epilogues, the parts and
    /// bands) run on; nil: `KernelThreads.current` threads on OpenMP, as a `Detector` on oneDNN
    /// runs them.
    public init(runtime: OneDNNRuntime, operands: OneDNNMatmul.Operands = .bf16,
                geometry g: ConvolutionGeometry, inputHeight h: Int, inputWidth w: Int,
                weights source: UnsafePointer<Float>, weightsOwner: AnyObject? = nil,
                kernel: Kernel, hasBias: Bool, relu: Bool, accumulate: Bool,
                columnBudget: Int = Convolution.defaultColumnBudget,
                threads: Int = min(KernelThreads.current, BLASThreads.current), team requestedTeam: KernelTeam? = nil,
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
        self.hasBias = hasBias
        let team = requestedTeam ?? KernelTeam(threads: KernelThreads.current, onOpenMP: true)
        switch kernel {
        case .im2col:
            body = .im2col(try OneDNNIm2col(runtime: runtime, operands: operands, geometry: g, inputHeight: h, inputWidth: w,
                                            weights: source, weightsOwner: weightsOwner, relu: relu, accumulate: accumulate,
                                            columnBudget: columnBudget, threads: threads, team: team))
        case .winograd:
            body = .winograd(try OneDNNWinograd(runtime: runtime, operands: operands, geometry: g, inputHeight: h, inputWidth: w,
                                                weights: source, relu: relu, accumulate: accumulate, threads: threads,
                                                team: team, split: split, pool: pool))
        case .dilatedWinograd:
            body = .dilatedWinograd(try OneDNNDilatedWinograd(runtime: runtime, operands: operands, geometry: g, inputHeight: h,
                                                              inputWidth: w, weights: source, relu: relu,
                                                              accumulate: accumulate, team: team))
        }
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
                                             output: UnsafeMutablePointer<Float>, columns: UnsafeMutableBufferPointer<Element>,
                                             floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        switch body {
        case let .im2col(layer):
            layer.run(input: input, bias: bias, output: output, columns: columns, floatWorkspace: floatWorkspace)
        case let .winograd(layer):
            layer.run(input: input, bias: bias, output: output, columns: columns, floatWorkspace: floatWorkspace)
        case let .dilatedWinograd(layer):
            layer.run(input: input, bias: bias, output: output, columns: columns, floatWorkspace: floatWorkspace)
        }
    }

    /// `values` (`count` float32) copied into memory the returned object owns, in the operand
    /// type (bf16: rounded), and a pointer to that memory.
    static func storeWeights(_ values: UnsafePointer<Float>, count: Int,
                             operands: OneDNNMatmul.Operands) -> (AnyObject, UnsafeRawPointer) {
        if operands == .bf16 {
            let buffer = BFloat16Buffer(rounding: values, count: count)
            return (buffer, UnsafeRawPointer(buffer.pointer))
        }
        let buffer = AlignedBuffer(count: count)
        buffer.pointer.update(from: values, count: count)
        return (buffer, UnsafeRawPointer(buffer.pointer))
    }

    /// The elements of each workspace that slot i of `slots` (a Winograd part or a row band)
    /// owns, starting at i times them: the i-th of the whole workspaces, in 64-byte lines, the
    /// same place in every layer whatever its own slots need. A slot's thread then writes the
    /// memory it wrote in the layer before, not lines another core holds (each such line is a
    /// transfer between the cores, and the workspaces are shared by all layers). Pure.
    @inline(__always)
    static func slotShares<Element>(columns: UnsafeMutableBufferPointer<Element>,
                                    floats: UnsafeMutableBufferPointer<Float>, slots: Int) -> (columns: Int, floats: Int) {
        let lineElements = 64 / MemoryLayout<Element>.stride
        return (columns.count / slots / lineElements * lineElements, floats.count / slots / 16 * 16)
    }
}
