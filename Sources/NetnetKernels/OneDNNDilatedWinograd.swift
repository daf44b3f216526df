/// The dilated Winograd kernel of `OneDNNConvolution` (a dilated 3×3 stride-1 layer: conv6):
/// the filters and the 36 products of `OneDNNWinograd`, the tiles cut by phases as in
/// `DilatedWinograd`, all in one chunk with one batched matmul on the calling thread's team (no
/// ways). The input transform splits over input channels, the output transform over output
/// channels.
///
/// Made once (weights transformed and converted, the primitive created); `run` allocates
/// nothing. Belongs to one thread at a time, like its `OneDNNRuntime`.
final class OneDNNDilatedWinograd {
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
    private let tiles: DilatedWinograd.Tiles
    /// The one batched matmul, `[36][out × in] · [36][in × tiles]`.
    private let matmul: OneDNNMatmul
    /// The team the transforms run on.
    private let team: KernelTeam

    /// oneDNN's kernel name for the layer's matmul.
    var implementation: String { matmul.implementation }

    /// See `OneDNNConvolution.init`; the arguments are checked there.
    init(runtime: OneDNNRuntime, operands: OneDNNMatmul.Operands, geometry g: ConvolutionGeometry,
         inputHeight h: Int, inputWidth w: Int, weights source: UnsafePointer<Float>,
         relu: Bool, accumulate: Bool, team: KernelTeam) throws(OneDNNError) {
        geometry = g; inputHeight = h; inputWidth = w
        self.operands = operands
        self.relu = relu; self.accumulate = accumulate
        self.team = team
        let elementBytes = operands == .bf16 ? 2 : 4
        let cin = g.inputChannels, cout = g.outputChannels
        let tiles = DilatedWinograd.Tiles(geometry: g, inputHeight: h, inputWidth: w)
        let positions = Winograd.alpha * Winograd.alpha
        let transformed = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: g))
        Winograd.transformWeights(geometry: DilatedWinograd.undilated(g), weights: source, transformed: transformed.pointer,
                                  team: team)
        (weightStorage, weights) = OneDNNConvolution.storeWeights(transformed.pointer, count: transformed.count, operands: operands)
        weightCount = transformed.count
        ownedWeightBytes = transformed.count * elementBytes
        let columns = OneDNNConvolution.matmulColumns(tiles: tiles.count)
        matmul = try OneDNNMatmul(runtime: runtime, operands: operands, batch: positions, m: cout, n: columns, k: cin,
                                  lda: cin, ldb: columns, ldc: columns,
                                  strideA: cout * cin, strideB: cin * columns, strideC: cout * columns)
        self.tiles = tiles
        columnWorkspaceBytes = positions * cin * columns * elementBytes
        floatWorkspaceCount = positions * cout * columns + Winograd.productSlack
    }

    /// output = [output +] conv(input) + bias, then ReLU, as made: the input transform split over
    /// input channels, the matmul on the team, the output transform split over output channels.
    @inline(__always)
    func run<Element: ColumnElement>(input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     output: UnsafeMutablePointer<Float>, columns workspace: UnsafeMutableBufferPointer<Element>,
                                     floatWorkspace: UnsafeMutableBufferPointer<Float>) {
        guard let columns = workspace.baseAddress, let products = floatWorkspace.baseAddress else { return }
        let tiles = self.tiles
        let g = geometry, cin = g.inputChannels, cout = g.outputChannels
        let stride = OneDNNConvolution.matmulColumns(tiles: tiles.count)
        let inputPlane = inputHeight * inputWidth
        let outputPlane = g.outputHeight(inputHeight: inputHeight) * g.outputWidth(inputWidth: inputWidth)
        let minimum = max(1, 4096 / max(1, tiles.count))
        parallelSlots(count: cin, slots: team.threads, minimumChunk: minimum, team: team) { _, channels in
            for c in channels {
                DilatedWinograd.inputTransform(input: input + c * inputPlane, tiles: tiles,
                                               destination: columns + c * stride, positionStride: cin * stride)
                Winograd.zeroPadding(columns + c * stride + tiles.count, count: stride - tiles.count, positionStride: cin * stride)
            }
        }
        matmul.run(a: weights, b: columns, c: products)
        let relu = self.relu, accumulate = self.accumulate
        parallelSlots(count: cout, slots: team.threads, minimumChunk: minimum, team: team) { _, channels in
            for o in channels {
                DilatedWinograd.outputTransform(products: products + o * stride, positionStride: cout * stride, tiles: tiles,
                                                output: output + o * outputPlane, bias: bias.map { $0[o] } ?? 0,
                                                relu: relu, accumulate: accumulate)
            }
        }
    }
}
