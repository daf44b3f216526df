import NetnetKernels

/// One step of a `Detector`'s forward pass (ncnn's `Layer::forward`): made once, at load, with
/// its kernel, its buffers and its threads chosen, so that `run` only computes. `run` reads and
/// writes the detector's memory alone, allocates nothing, and is called on the detector's thread.
/// The pointers a step holds stay valid while its detector lives (they point into buffers the
/// detector owns and never reallocates).
protocol ForwardStep {
    /// Runs the step once.
    func run()
}

/// The threads a `Detector` runs on, fixed when it is made. A plain value; usable from any thread.
public struct DetectorThreads: Sendable, Equatable {
    /// GEMM threads: oneDNN's OpenMP team for each matmul (at most this many parts or bands of a
    /// layer run side by side), or OpenBLAS's pool. At least 1.
    public let gemm: Int
    /// Threads of the engine's own loops: im2col, Winograd transforms, epilogues, pooling,
    /// element-wise work. At least 1.
    public let kernels: Int

    /// `gemm` GEMM threads and `kernels` kernel threads (each clamped to at least 1).
    public init(gemm: Int, kernels: Int) {
        self.gemm = max(1, gemm)
        self.kernels = max(1, kernels)
    }

    /// `count` threads for both.
    public init(_ count: Int) { self.init(gemm: count, kernels: count) }

    /// The process-wide defaults now: `BLASThreads.defaultCount` for a detector whose GEMMs run
    /// on oneDNN (`onOneDNN`) or OpenBLAS, and `KernelThreads.current`. What a `Detector` made
    /// without a thread count gets. Callable from any thread.
    public static func processDefault(onOneDNN: Bool) -> DetectorThreads {
        DetectorThreads(gemm: BLASThreads.defaultCount(onOpenMP: onOneDNN), kernels: KernelThreads.current)
    }
}

/// A convolution on OpenBLAS: im2col (or the plain GEMM of a 1×1 layer), `cblas_sgemm`, then bias
/// and ReLU (`Convolution.forward`); with `byColumns`, a 1×1 layer of a oneDNN detector whose GEMM
/// is cut by columns over the team (`Convolution.forwardPointwiseByColumns`; OpenBLAS set to one
/// thread by `Detector.forward`).
struct BLASConvolutionStep: ForwardStep {
    let geometry: ConvolutionGeometry
    let input: UnsafePointer<Float>
    let inputHeight: Int, inputWidth: Int
    let weights: UnsafePointer<Float>, bias: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let relu: Bool, accumulate: Bool
    let workspace: UnsafeMutableBufferPointer<Float>
    let columnBudget: Int
    let team: KernelTeam
    var byColumns = false

    func run() {
        if byColumns {
            Convolution.forwardPointwiseByColumns(geometry: geometry, input: input, inputHeight: inputHeight,
                                                  inputWidth: inputWidth, weights: weights, bias: bias, output: output,
                                                  relu: relu, accumulate: accumulate, team: team)
            return
        }
        Convolution.forward(geometry: geometry, input: input, inputHeight: inputHeight, inputWidth: inputWidth,
                            weights: weights, bias: bias, output: output, relu: relu, accumulate: accumulate,
                            workspace: workspace, columnBudget: columnBudget, team: team)
    }
}

/// A Winograd F(4×4, 3×3) convolution on OpenBLAS (`Winograd.forward`), its filters transformed
/// at load.
struct BLASWinogradStep: ForwardStep {
    let geometry: ConvolutionGeometry
    let input: UnsafePointer<Float>
    let inputHeight: Int, inputWidth: Int
    let transformedWeights: AlignedBuffer
    let bias: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let relu: Bool, accumulate: Bool
    let workspace: UnsafeMutableBufferPointer<Float>
    let team: KernelTeam

    func run() {
        Winograd.forward(geometry: geometry, input: input, inputHeight: inputHeight, inputWidth: inputWidth,
                         transformedWeights: transformedWeights.pointer, bias: bias, output: output,
                         relu: relu, accumulate: accumulate, workspace: workspace, team: team)
    }
}

/// A convolution on oneDNN: the layer (`OneDNNConvolution`, im2col, Winograd or dilated
/// Winograd) was made at load for this input size and these threads.
struct OneDNNConvolutionStep: ForwardStep {
    let layer: OneDNNConvolution
    let input: UnsafePointer<Float>
    let bias: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let columns: AlignedBytes
    let floatWorkspace: UnsafeMutableBufferPointer<Float>

    func run() {
        layer.forward(input: input, bias: bias, output: output, columns: columns.pointer,
                      columnCapacityBytes: columns.count, floatWorkspace: floatWorkspace)
    }
}

/// Max pooling (`MaxPool.forward`).
struct MaxPoolStep: ForwardStep {
    let input: UnsafePointer<Float>
    let channels: Int, height: Int, width: Int
    let kernel: Int, stride: Int, padding: Int, ceilMode: Bool
    let output: UnsafeMutablePointer<Float>
    let team: KernelTeam

    func run() {
        MaxPool.forward(input: input, channels: channels, height: height, width: width, kernel: kernel, stride: stride,
                        padding: padding, ceilMode: ceilMode, output: output, team: team)
    }
}

/// SSD's L2Norm (`L2Norm.forward`) with the model's scale.
struct L2NormStep: ForwardStep {
    let input: UnsafePointer<Float>
    let channels: Int, height: Int, width: Int
    let scale: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let team: KernelTeam

    func run() {
        L2Norm.forward(input: input, channels: channels, height: height, width: width, scale: scale, output: output, team: team)
    }
}

/// A bilinear resize into the output's size; with `accumulate`, added to the output, then ReLU
/// if `relu` (`BilinearResize.forward`).
struct ResizeStep: ForwardStep {
    let input: UnsafePointer<Float>
    let channels: Int, inputHeight: Int, inputWidth: Int
    let output: UnsafeMutablePointer<Float>
    let outputHeight: Int, outputWidth: Int
    let accumulate: Bool, relu: Bool
    let team: KernelTeam

    func run() {
        BilinearResize.forward(input: input, channels: channels, inputHeight: inputHeight, inputWidth: inputWidth,
                               output: output, outputHeight: outputHeight, outputWidth: outputWidth,
                               accumulate: accumulate, relu: relu, team: team)
    }
}

/// NETM's Neighbor Erasing with the gate's sigmoid fused (`Elementwise.sigmoidGateErase`).
struct GateEraseStep: ForwardStep {
    let feature: UnsafePointer<Float>, gateLogits: UnsafePointer<Float>
    let erased: UnsafeMutablePointer<Float>?, kept: UnsafeMutablePointer<Float>?
    let count: Int
    let team: KernelTeam

    func run() {
        Elementwise.sigmoidGateErase(feature: feature, gateLogits: gateLogits, erased: erased, kept: kept, count: count, team: team)
    }
}

/// Max or mean over a map's channels into one plane (`Elementwise.reduceChannels`).
struct ReduceChannelsStep: ForwardStep {
    let input: UnsafePointer<Float>
    let channels: Int, count: Int
    let reduction: ChannelReduction
    let output: UnsafeMutablePointer<Float>
    let team: KernelTeam

    func run() { Elementwise.reduceChannels(input, channels: channels, count: count, reduction, into: output, team: team) }
}

/// NETNet's global gate: dot-product attention between two maps' positions (`SpatialAttention`).
struct AttentionStep: ForwardStep {
    let query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>
    let inner: Int, channels: Int, queries: Int, keys: Int
    let scale: Float
    let workspace: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>

    func run() {
        SpatialAttention.forward(query: query, key: key, value: value, inner: inner, channels: channels, queries: queries,
                                 keys: keys, scale: scale, workspace: workspace, output: output)
    }
}

/// One plane copied into every channel of a map (`Elementwise.broadcastPlane`).
struct BroadcastStep: ForwardStep {
    let plane: UnsafePointer<Float>
    let count: Int, channels: Int
    let output: UnsafeMutablePointer<Float>
    let team: KernelTeam

    func run() { Elementwise.broadcastPlane(plane, count: count, channels: channels, into: output, team: team) }
}

/// A copy between two buffers of one size.
struct CopyStep: ForwardStep {
    let input: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let count: Int
    let team: KernelTeam

    func run() { Elementwise.copy(input, into: output, count: count, team: team) }
}

/// output += input, then ReLU if `relu`.
struct AddStep: ForwardStep {
    let input: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let count: Int
    let relu: Bool
    let team: KernelTeam

    func run() {
        Elementwise.add(input, output, into: output, count: count, team: team)
        if relu { Elementwise.relu(output, into: output, count: count, team: team) }
    }
}

/// One level's stacked loc+conf head: its convolution into `scratch` (NCHW), then the location
/// and class channels permuted to NHWC into the detector's `[priors, 4]` and
/// `[priors, classes + 1]` outputs from the level's first prior.
struct HeadsStep: ForwardStep {
    let convolution: any ForwardStep
    let scratch: UnsafePointer<Float>
    let locationChannels: Int, channels: Int, height: Int, width: Int
    let locations: UnsafeMutablePointer<Float>
    let scores: UnsafeMutablePointer<Float>
    let team: KernelTeam

    func run() {
        convolution.run()
        Layout.nchwToNHWC(scratch, channels: locationChannels, height: height, width: width, into: locations, team: team)
        Layout.nchwToNHWC(scratch + locationChannels * height * width, channels: channels - locationChannels,
                          height: height, width: width, into: scores, team: team)
    }
}
