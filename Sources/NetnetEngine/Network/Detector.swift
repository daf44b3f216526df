import Foundation
import NetnetKernels

/// Runs one model's forward pass and post-processing on one frame at a time.
///
/// At load (`init`) the detector allocates every buffer (activations, column workspace, heads,
/// decoded boxes) and turns the plan into a list of steps (`ForwardStep`), each holding the kernel
/// chosen for it (im2col or Winograd, on oneDNN or OpenBLAS), its buffers and its threads;
/// `forward` runs them in order and `detections` decodes, both allocating nothing but the returned
/// detections. Nothing is chosen while frames run, so the same input gives the same bits on the
/// same machine and thread count. Not thread-safe: a `Detector` belongs to one thread at a time
/// (the inference thread); several detectors may share a `Model`.
public final class Detector {
    /// The model this detector runs.
    public let model: Model
    /// The plan it executes (the model's).
    public let plan: NetworkPlan
    /// The prior boxes, `[priors, 4]` centre form.
    public let priors: [Float]

    private let arena: AlignedBuffer
    private let bufferOffsets: [Int]
    private let workspace: AlignedBuffer
    private let locations: AlignedBuffer
    private let scores: AlignedBuffer
    private let boxes: AlignedBuffer
    /// The forward pass: each step with the index of the plan step it runs (a max pool fused into
    /// the convolution before it has no step of its own).
    private let steps: [(planStep: Int, step: any ForwardStep)]
    /// Winograd-transformed weights of the OpenBLAS layers that run with Winograd (heads: the
    /// stacked loc+conf weights), kept for `allocatedFloats`; the steps hold them too.
    private let winogradWeights: [AlignedBuffer]
    /// Stacked loc+conf weights and biases of the heads (the steps point into them).
    private let headWeights: [AlignedBuffer]
    private var stepNanoseconds: [UInt64]
    /// Whether `forward` records time per step (`timings`, `stepTimings`); off by default.
    public var recordsTimings = false

    /// The convolution choice this detector was made with.
    public let convolution: ConvolutionAlgorithm
    /// Names of the layers (heads as `…loc+conf…`) that run with Winograd, in plan order.
    public let winogradLayerNames: [String]
    /// Names of the 1×1 layers whose GEMM runs on OpenBLAS inside a oneDNN detector
    /// (`Detector.pointwiseRunsOnOpenBLAS`), in plan order.
    public let openBLASPointwiseLayerNames: [String]

    /// The arithmetic of the convolutions.
    public let precision: Precision
    /// The library that runs the GEMMs.
    public let gemm: GEMMLibrary
    /// The threads this detector runs on, fixed when it was made.
    public let threads: DetectorThreads
    /// Why the default GEMM library (oneDNN) could not be used and OpenBLAS runs instead; nil
    /// when it was. Callers should show it as a warning.
    public let gemmFallback: String?
    /// oneDNN only: the layers by plan step index (for the reports; the steps hold them).
    private let oneDNNLayers: [Int: OneDNNConvolution]
    /// The oneDNN Winograd layers with two ways to run, and the way they run (fixed at load:
    /// `OneDNNConvolution.defaultWay`, unless a benchmark forces another).
    private let twoWayLayers: [OneDNNConvolution]
    private var winogradWay = OneDNNConvolution.defaultWay
    private let oneDNNColumns: AlignedBytes?
    /// The team the engine's own loops run on (`threads.kernels`; on oneDNN's OpenMP threads
    /// when the GEMMs run on oneDNN).
    private let kernelTeam: KernelTeam
    /// Max pools done by the oneDNN Winograd layer before them: pool step index → convolution
    /// step index. The convolution writes the pooled map and the pool has no step.
    private let fusedPools: [Int: Int]

    /// An fp32 detector: allocates every buffer the model's plan needs. `columnBudget` bounds the
    /// im2col tile (floats). `convolution` picks the kernel of the 3×3 stride-1 layers (default:
    /// auto); Winograd layers get their weights transformed here, once. `gemm` and `threads` as
    /// in the designated initializer (by default oneDNN, falling back to OpenBLAS with
    /// `gemmFallback` set where oneDNN cannot run). Traps only if `gemm` is `.onednn` by name and
    /// oneDNN then refuses a layer; callers that must not trap use the throwing initializer.
    public convenience init(model: Model, columnBudget: Int = Convolution.defaultColumnBudget,
                            convolution: ConvolutionAlgorithm = .auto, gemm: GEMMLibrary? = nil,
                            threads: DetectorThreads? = nil) {
        do {
            try self.init(model: model, columnBudget: columnBudget, convolution: convolution, precision: .fp32, gemm: gemm,
                          threads: threads)
        } catch {
            fatalError("Detector: oneDNN refused an fp32 layer: \(error)")
        }
    }

    /// As the fp32 initializer, in `precision`, with the GEMMs on `gemm` (nil: the precision's
    /// default, `GEMMLibrary.defaultFor`, with the fallback to OpenBLAS for fp32 where oneDNN
    /// cannot run). The detector reads no environment variable: what it runs is what its caller
    /// passes. On oneDNN every convolution gets its weights (bf16: rounded) and primitives here,
    /// once. Throws one line if this CPU cannot run bf16 (`OneDNNRuntime.checkBF16Support`), if
    /// bf16 is asked of OpenBLAS, or if oneDNN refuses a layer.
    ///
    /// `threads`: the GEMM and kernel threads it runs on (nil: `DetectorThreads.processDefault`,
    /// read once, here). Make it on the thread that will run it, or on one whose OpenMP settings
    /// do not matter: oneDNN plans each primitive for the count applied on the making thread.
    ///
    /// `pointwiseOnOpenBLAS`: on oneDNN in fp32, whether the 1×1 stride-1 layers run their GEMM on
    /// OpenBLAS instead (nil: `pointwiseRunsOnOpenBLAS`'s rule per layer; true: every such layer,
    /// false: none; for tests and measurements).
    ///
    /// `fusePooling`: on oneDNN, a 2×2 stride-2 max pool that alone reads a Winograd layer's
    /// output is done by that layer as it stores (`Winograd.FusedPool`), so the full-size map is
    /// never written (false: every pool runs as its own step; for tests and measurements).
    public init(model: Model, columnBudget: Int = Convolution.defaultColumnBudget,
                convolution: ConvolutionAlgorithm = .auto, precision: Precision,
                gemm requested: GEMMLibrary? = nil, threads requestedThreads: DetectorThreads? = nil,
                fusePooling: Bool = true, pointwiseOnOpenBLAS: Bool? = nil) throws(OneDNNError) {
        var gemm = requested ?? GEMMLibrary.defaultFor(precision)
        if precision == .bf16 && gemm == .openblas {
            throw OneDNNError(description: "bf16 needs the oneDNN GEMM (OpenBLAS 0.3.21 here has no bf16 GEMM)")
        }
        // fp32 by default: where oneDNN cannot run at all (no executable memory for its JIT),
        // fall back to OpenBLAS and say why, rather than refuse to start.
        var fallback: String?
        if requested == nil && precision == .fp32 && gemm == .onednn {
            do { try OneDNNRuntime.checkF32Support() } catch {
                gemm = .openblas
                fallback = "GEMMs on OpenBLAS instead of oneDNN: \(error.description)"
            }
        }
        let threads = requestedThreads ?? .processDefault(onOneDNN: gemm == .onednn)
        let team = KernelTeam(threads: threads.kernels, onOpenMP: gemm == .onednn)
        gemmFallback = fallback
        self.convolution = convolution
        self.precision = precision
        self.gemm = gemm
        self.threads = threads
        self.kernelTeam = team
        self.model = model
        let plan = model.plan
        self.plan = plan
        // The convolutions that will store a pooled map (oneDNN Winograd layers before a pool
        // that alone reads them): their own output is never written, so it gets no memory (40 MB
        // at full width: conv1_2, conv2_2, conv3_3).
        let fusing = !fusePooling || gemm != .onednn ? [:] : Self.poolableConvolutions(plan).filter { step, _ in
            guard case let .convolution(index, _, _, _, _) = plan.steps[step] else { return false }
            let layer = plan.layers[index]
            return convolution.usesWinograd(layer.geometry, inputHeight: layer.inputHeight, inputWidth: layer.inputWidth,
                                            precision: precision)
        }
        let unused = Set(fusing.keys.compactMap { step -> Int? in
            guard case let .convolution(_, _, output, _, _) = plan.steps[step] else { return nil }
            return output
        })
        let pooled = Dictionary(uniqueKeysWithValues: fusing.map { ($0.value, $0.key) })
        fusedPools = pooled
        let fusedOutputs: [Int: Int] = fusing.compactMapValues { poolStep in
            guard case let .maxPool(_, output, _, _, _, _) = plan.steps[poolStep] else { return nil }
            return output
        }
        var offsets: [Int] = []
        var total = 0
        for (index, buffer) in plan.buffers.enumerated() {
            offsets.append(total)
            if !unused.contains(index) { total += (buffer.count + 15) / 16 * 16 }
        }
        let arena = AlignedBuffer(count: total)
        self.arena = arena
        bufferOffsets = offsets
        func pointer(_ index: Int) -> UnsafeMutablePointer<Float> { arena.pointer + offsets[index] }

        // The kernel of every convolution step, and what it needs: oneDNN layers made, OpenBLAS
        // Winograd filters transformed, the workspace sized to the largest need.
        enum Made {
            case oneDNN(OneDNNConvolution)
            case blasWinograd(AlignedBuffer)
            case blasIm2col
            /// A 1×1 layer of a oneDNN detector whose GEMM runs on OpenBLAS, cut by columns over
            /// the team (`Convolution.forwardPointwiseByColumns`).
            case blasPointwiseByColumns
        }
        var need = 1
        var columnBytes = 0
        var kernels: [Int: Made] = [:]
        var names: [String] = []
        var pointwiseNames: [String] = []
        let layerWeights = plan.layers.map { model.tensor("\($0.name).weight")! }
        let layerBiases = plan.layers.map { model.tensor("\($0.name).bias")! }
        if precision == .bf16 { try OneDNNRuntime.checkBF16Support() }
        let runtime = gemm == .onednn ? try OneDNNRuntime() : nil
        if runtime != nil {
            BLASThreads.applyToOpenMP(threads.gemm)   // before any primitive is planned on this thread
        }
        func make(step: Int, geometry: ConvolutionGeometry, height: Int, width: Int, weights: UnsafePointer<Float>,
                  owner: AnyObject, winograd: Bool, dilated: Bool, relu: Bool, accumulate: Bool) throws(OneDNNError) -> Made {
            if runtime != nil && !winograd && !dilated && fusing[step] == nil
                && (pointwiseOnOpenBLAS ?? Self.pointwiseRunsOnOpenBLAS(geometry, precision: precision))
                && geometry.isPointwise && precision == .fp32 {
                return .blasPointwiseByColumns
            }
            guard let runtime else {
                if winograd {
                    need = max(need, Winograd.workspaceCount(geometry: geometry, inputHeight: height, inputWidth: width))
                    let buffer = AlignedBuffer(count: Winograd.transformedWeightCount(geometry: geometry))
                    Winograd.transformWeights(geometry: geometry, weights: weights, transformed: buffer.pointer, team: team)
                    return .blasWinograd(buffer)
                }
                need = max(need, Convolution.workspaceCount(geometry: geometry, inputHeight: height, inputWidth: width,
                                                            columnBudget: columnBudget))
                return .blasIm2col
            }
            let kernel: OneDNNConvolution.Kernel = winograd ? .winograd : dilated ? .dilatedWinograd : .im2col
            var pool: Winograd.FusedPool?
            guard fusing[step] == nil || kernel == .winograd else {
                fatalError("Detector: step \(step) was planned to fuse its pool, and has no memory of its own, but runs \(kernel)")
            }
            if let poolStep = fusing[step], case let .maxPool(_, _, _, _, _, ceilMode) = plan.steps[poolStep] {
                pool = Winograd.FusedPool(outputHeight: geometry.outputHeight(inputHeight: height),
                                          outputWidth: geometry.outputWidth(inputWidth: width), ceilMode: ceilMode)
            }
            let layer = try OneDNNConvolution(runtime: runtime, operands: precision == .bf16 ? .bf16 : .f32,
                                              geometry: geometry, inputHeight: height, inputWidth: width,
                                              weights: weights, weightsOwner: owner, kernel: kernel,
                                              hasBias: true, relu: relu, accumulate: accumulate, columnBudget: columnBudget,
                                              threads: min(threads.kernels, threads.gemm), team: team, pool: pool)
            columnBytes = max(columnBytes, layer.columnWorkspaceBytes)
            need = max(need, layer.floatWorkspaceCount)
            return .oneDNN(layer)
        }
        var heads: [Int: (weights: AlignedBuffer, bias: AlignedBuffer, geometry: ConvolutionGeometry)] = [:]
        for (stepIndex, step) in plan.steps.enumerated() {
            switch step {
            case let .convolution(index, _, _, relu, accumulate):
                let layer = plan.layers[index]
                let winograd = convolution.usesWinograd(layer.geometry, inputHeight: layer.inputHeight,
                                                        inputWidth: layer.inputWidth, precision: precision)
                let dilated = runtime != nil && convolution.usesDilatedWinograd(layer.geometry, inputHeight: layer.inputHeight,
                                                                                inputWidth: layer.inputWidth, precision: precision)
                kernels[stepIndex] = try make(step: stepIndex, geometry: layer.geometry, height: layer.inputHeight,
                                              width: layer.inputWidth, weights: layerWeights[index], owner: model,
                                              winograd: winograd, dilated: dilated, relu: relu, accumulate: accumulate)
                if winograd || dilated { names.append(layer.name) }
                if case .blasPointwiseByColumns = kernels[stepIndex]! { pointwiseNames.append(layer.name) }
            case let .heads(location, confidence, _, _, _):
                let a = plan.layers[location].geometry, b = plan.layers[confidence].geometry
                var geometry = a
                geometry.outputChannels = a.outputChannels + b.outputChannels
                let weights = AlignedBuffer(count: geometry.weightCount)
                let bias = AlignedBuffer(count: geometry.outputChannels)
                weights.pointer.update(from: layerWeights[location], count: a.weightCount)
                (weights.pointer + a.weightCount).update(from: layerWeights[confidence], count: b.weightCount)
                bias.pointer.update(from: layerBiases[location], count: a.outputChannels)
                (bias.pointer + a.outputChannels).update(from: layerBiases[confidence], count: b.outputChannels)
                heads[stepIndex] = (weights, bias, geometry)
                let layer = plan.layers[location]
                let winograd = convolution.usesWinograd(geometry, inputHeight: layer.inputHeight, inputWidth: layer.inputWidth,
                                                        precision: precision)
                kernels[stepIndex] = try make(step: stepIndex, geometry: geometry, height: layer.inputHeight, width: layer.inputWidth,
                                              weights: weights.pointer, owner: weights, winograd: winograd, dilated: false,
                                              relu: false, accumulate: false)
                if winograd { names.append(layer.name.replacingOccurrences(of: "loc", with: "loc+conf")) }
            default:
                continue
            }
        }
        winogradLayerNames = names
        openBLASPointwiseLayerNames = pointwiseNames
        var oneDNN: [Int: OneDNNConvolution] = [:]
        var transformed: [AlignedBuffer] = []
        for (step, kernel) in kernels {
            switch kernel {
            case let .oneDNN(layer): oneDNN[step] = layer
            case let .blasWinograd(buffer): transformed.append(buffer)
            case .blasIm2col, .blasPointwiseByColumns: break
            }
        }
        oneDNNLayers = oneDNN
        winogradWeights = transformed
        headWeights = heads.values.flatMap { [$0.weights, $0.bias] }
        twoWayLayers = oneDNN.keys.sorted().map { oneDNN[$0]! }.filter(\.hasTwoWays)
        let columns = runtime == nil ? nil : AlignedBytes(count: columnBytes)
        oneDNNColumns = columns
        let workspace = AlignedBuffer(count: need)
        self.workspace = workspace
        stepNanoseconds = [UInt64](repeating: 0, count: plan.steps.count)
        let p = plan.priorCount
        let locations = AlignedBuffer(count: p * 4)
        let scores = AlignedBuffer(count: p * plan.description.scoreCount)
        self.locations = locations
        self.scores = scores
        boxes = AlignedBuffer(count: p * 4)
        priors = PriorBoxes.generate(plan: plan)

        // The steps, in plan order, each with its kernel, buffers and threads.
        // Only VGG16 has an L2Norm step (and the tensor); the step below unwraps it.
        let l2NormScale = model.tensor("l2norm.weight")
        func convolutionStep(_ kernel: Made, geometry: ConvolutionGeometry, input: Int, output: UnsafeMutablePointer<Float>,
                             weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, relu: Bool,
                             accumulate: Bool) -> any ForwardStep {
            let source = plan.buffers[input]
            switch kernel {
            case let .oneDNN(layer):
                // `columns` exists whenever a oneDNN layer does.
                return OneDNNConvolutionStep(layer: layer, input: pointer(input), bias: bias, output: output,
                                             columns: columns!, floatWorkspace: workspace.buffer)
            case let .blasWinograd(transformed):
                return BLASWinogradStep(geometry: geometry, input: pointer(input), inputHeight: source.height,
                                        inputWidth: source.width, transformedWeights: transformed, bias: bias, output: output,
                                        relu: relu, accumulate: accumulate, workspace: workspace.buffer, team: team)
            case .blasIm2col, .blasPointwiseByColumns:
                var step = BLASConvolutionStep(geometry: geometry, input: pointer(input), inputHeight: source.height,
                                               inputWidth: source.width, weights: weights, bias: bias, output: output,
                                               relu: relu, accumulate: accumulate, workspace: workspace.buffer,
                                               columnBudget: columnBudget, team: team)
                if case .blasPointwiseByColumns = kernel { step.byColumns = true }
                return step
            }
        }
        var list: [(planStep: Int, step: any ForwardStep)] = []
        for (stepIndex, step) in plan.steps.enumerated() {
            let built: any ForwardStep
            switch step {
            case let .convolution(layerIndex, input, output, relu, accumulate):
                built = convolutionStep(kernels[stepIndex]!, geometry: plan.layers[layerIndex].geometry, input: input,
                                        output: pointer(fusedOutputs[stepIndex] ?? output), weights: layerWeights[layerIndex],
                                        bias: layerBiases[layerIndex], relu: relu, accumulate: accumulate)
            case let .maxPool(input, output, kernel, stride, padding, ceilMode):
                guard pooled[stepIndex] == nil else { continue }
                let source = plan.buffers[input]
                built = MaxPoolStep(input: pointer(input), channels: source.channels, height: source.height, width: source.width,
                                    kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode,
                                    output: pointer(output), team: team)
            case let .l2Norm(input, output):
                let source = plan.buffers[input]
                built = L2NormStep(input: pointer(input), channels: source.channels, height: source.height, width: source.width,
                                   scale: l2NormScale!, output: pointer(output), team: team)
            case let .resize(input, output):
                let source = plan.buffers[input], target = plan.buffers[output]
                built = ResizeStep(input: pointer(input), channels: source.channels, inputHeight: source.height,
                                   inputWidth: source.width, output: pointer(output), outputHeight: target.height,
                                   outputWidth: target.width, accumulate: false, relu: false, team: team)
            case let .resizeAdd(input, output, relu):
                let source = plan.buffers[input], target = plan.buffers[output]
                built = ResizeStep(input: pointer(input), channels: source.channels, inputHeight: source.height,
                                   inputWidth: source.width, output: pointer(output), outputHeight: target.height,
                                   outputWidth: target.width, accumulate: true, relu: relu, team: team)
            case let .gateErase(feature, gate, erased, kept):
                built = GateEraseStep(feature: pointer(feature), gateLogits: pointer(gate), erased: erased.map(pointer),
                                      kept: kept.map(pointer), count: plan.buffers[feature].count, team: team)
            case let .reduceChannels(input, output, reduction, channel):
                let source = plan.buffers[input], target = plan.buffers[output]
                built = ReduceChannelsStep(input: pointer(input), channels: source.channels, count: source.height * source.width,
                                           reduction: reduction, output: pointer(output) + channel * target.height * target.width, team: team)
            case let .attention(query, key, value, output, workspace, scale):
                let q = plan.buffers[query], k = plan.buffers[key], v = plan.buffers[value]
                built = AttentionStep(query: pointer(query), key: pointer(key), value: pointer(value), inner: q.channels,
                                      channels: v.channels, queries: q.height * q.width, keys: k.height * k.width, scale: scale,
                                      workspace: pointer(workspace), output: pointer(output))
            case let .broadcast(input, output):
                let target = plan.buffers[output]
                built = BroadcastStep(plane: pointer(input), count: target.height * target.width, channels: target.channels,
                                      output: pointer(output), team: team)
            case let .copy(input, output):
                built = CopyStep(input: pointer(input), output: pointer(output), count: plan.buffers[input].count, team: team)
            case let .add(input, output, relu):
                built = AddStep(input: pointer(input), output: pointer(output), count: plan.buffers[output].count,
                                relu: relu, team: team)
            case let .heads(locationLayer, _, input, scratch, priorOffset):
                let head = heads[stepIndex]!
                let out = plan.buffers[scratch]
                let inner = convolutionStep(kernels[stepIndex]!, geometry: head.geometry, input: input, output: pointer(scratch),
                                            weights: head.weights.pointer, bias: head.bias.pointer, relu: false,
                                            accumulate: false)
                built = HeadsStep(convolution: inner, scratch: pointer(scratch),
                                  locationChannels: plan.layers[locationLayer].geometry.outputChannels,
                                  channels: out.channels, height: out.height, width: out.width,
                                  locations: locations.pointer + priorOffset * 4,
                                  scores: scores.pointer + priorOffset * plan.description.scoreCount, team: team)
            }
            list.append((stepIndex, built))
        }
        steps = list
    }

    /// The convolutions whose output only a following 2×2 stride-2 max pool reads: conv step
    /// index → pool step index. The pool can then be done as the convolution stores, if its
    /// kernel can (a oneDNN Winograd layer). Not for an accumulating convolution, nor for an
    /// output the caller may read (`feature`, the heads). Pure.
    static func poolableConvolutions(_ plan: NetworkPlan) -> [Int: Int] {
        var readers: [Int: Int] = [:]
        for step in plan.steps {
            for buffer in step.readBuffers { readers[buffer, default: 0] += 1 }
        }
        let exposed = Set(plan.named.values).union(plan.headInputs)
        var result: [Int: Int] = [:]
        for index in plan.steps.indices.dropLast() {
            guard case let .convolution(_, _, output, _, false) = plan.steps[index],
                  case let .maxPool(input, _, 2, 2, 0, _) = plan.steps[index + 1],
                  input == output, readers[output] == 1, !exposed.contains(output) else { continue }
            result[index] = index + 1
        }
        return result
    }

    /// Floats this detector allocated for activations, workspaces, outputs, Winograd-transformed
    /// filters and oneDNN copies of weights (bf16 or transformed; counted in float-sized units).
    public var allocatedFloats: Int {
        arena.count + workspace.count + locations.count + scores.count + boxes.count
            + winogradWeights.reduce(0) { $0 + $1.count }
            + ((oneDNNColumns?.count ?? 0) + oneDNNLayers.values.reduce(0) { $0 + $1.ownedWeightBytes } + 3) / 4
    }

    /// oneDNN only: each convolution step's kernel and oneDNN's implementation, in plan order.
    public var oneDNNKernels: [(name: String, kernel: String, implementation: String)] {
        oneDNNLayers.keys.sorted().map { (stepName($0), oneDNNLayers[$0]!.kernel.rawValue, oneDNNLayers[$0]!.implementation) }
    }

    /// Makes every frame run its oneDNN Winograd layers `way` (nil: `OneDNNConvolution.defaultWay`,
    /// as made). For benchmarks and tests. Call from the detector's thread, between `forward`
    /// calls.
    public func forceWinogradWay(_ way: OneDNNConvolution.WinogradWay?) {
        winogradWay = way ?? OneDNNConvolution.defaultWay
        for layer in twoWayLayers { layer.way = winogradWay }
    }

    /// Whether this detector has oneDNN Winograd layers with two ways to run (made for several
    /// threads), so that `forceWinogradWay` means something.
    public var hasWinogradWays: Bool { !twoWayLayers.isEmpty }

    /// How many `forward` calls ran their oneDNN Winograd layers each way so far (empty when
    /// there is no choice: no such layers, or one thread).
    public private(set) var winogradWayCounts: [OneDNNConvolution.WinogradWay: Int] = [:]

    /// The oneDNN layers that run one part per thread, in plan order, and how each cuts them:
    /// a Winograd layer's `WinogradSplit` (`tiles` or `channels`), or `rows` for an im2col layer
    /// cut into row bands.
    public var partSplits: [(name: String, split: String)] {
        oneDNNLayers.keys.sorted().compactMap { step in
            let layer = oneDNNLayers[step]!
            return layer.winogradSplit.map { (stepName(step), $0.rawValue) } ?? (layer.rowBandCount > 0 ? (stepName(step), "rows") : nil)
        }
    }

    /// The network input, `[3, S, S]` planar and normalised; fill it, then call `forward`.
    public var input: UnsafeMutablePointer<Float> { arena.pointer + bufferOffsets[0] }

    /// The raw location head after `forward`: `[priors, 4]`.
    public var locationOutput: UnsafeBufferPointer<Float> { UnsafeBufferPointer(locations.buffer) }

    /// The raw class head after `forward` (before softmax): `[priors, classes + 1]`.
    public var confidenceOutput: UnsafeBufferPointer<Float> { UnsafeBufferPointer(scores.buffer) }

    /// A named feature map after `forward` (`p1…`, `pf1…`, `out1…`), or nil if the network has none.
    public func feature(_ name: String) -> (FeatureBuffer, UnsafeBufferPointer<Float>)? {
        guard let index = plan.named[name] else { return nil }
        let buffer = plan.buffers[index]
        return (buffer, UnsafeBufferPointer(start: arena.pointer + bufferOffsets[index], count: buffer.count))
    }

    /// Time per layer group (`backbone`, `extras`, `nnfm`, `netm`, `heads`, `other` for steps
    /// without weights) summed over the `forward` calls since `resetTimings`, in milliseconds.
    public var timings: [String: Double] {
        var result: [String: Double] = [:]
        for (index, nanoseconds) in stepNanoseconds.enumerated() {
            result[stepGroup(index), default: 0] += Double(nanoseconds) / 1e6
        }
        return result
    }

    /// Time per step, summed over the `forward` calls since `resetTimings`, in milliseconds, in
    /// execution order: the step's name (its layer, or its kind and output buffer) and group.
    public var stepTimings: [(name: String, group: String, milliseconds: Double)] {
        stepNanoseconds.indices.map { (stepName($0), stepGroup($0), Double(stepNanoseconds[$0]) / 1e6) }
    }

    /// Forgets recorded timings.
    public func resetTimings() { stepNanoseconds = [UInt64](repeating: 0, count: plan.steps.count) }

    private func stepName(_ index: Int) -> String {
        switch plan.steps[index] {
        case let .convolution(layer, _, _, _, _): return plan.layers[layer].name
        case let .heads(location, _, _, _, _): return plan.layers[location].name.replacingOccurrences(of: "loc", with: "loc+conf")
        case let .maxPool(_, output, _, _, _, _):
            if let convolution = fusedPools[index] { return "maxpool → \(plan.buffers[output].name) (in \(stepName(convolution)))" }
            return "maxpool → \(plan.buffers[output].name)"
        case let .l2Norm(_, output): return "l2norm → \(plan.buffers[output].name)"
        case let .resize(_, output): return "resize → \(plan.buffers[output].name)"
        case let .resizeAdd(_, output, _): return "resize+add → \(plan.buffers[output].name)"
        case let .gateErase(feature, _, _, _): return "erase \(plan.buffers[feature].name)"
        case let .copy(_, output): return "copy → \(plan.buffers[output].name)"
        case let .add(_, output, _): return "add → \(plan.buffers[output].name)"
        case let .reduceChannels(_, output, reduction, channel): return "channel \(reduction.rawValue) → \(plan.buffers[output].name)[\(channel)]"
        case let .broadcast(_, output): return "broadcast → \(plan.buffers[output].name)"
        case let .attention(_, _, _, output, _, _): return "attention → \(plan.buffers[output].name)"
        }
    }

    private func stepGroup(_ index: Int) -> String {
        switch plan.steps[index] {
        case let .convolution(layer, _, _, _, _): return plan.layers[layer].group
        case .heads: return "heads"
        case .l2Norm: return "backbone"
        default: return "other"
        }
    }

    /// The rule that puts a 1×1 stride-1 fp32 layer of a oneDNN detector on OpenBLAS (one
    /// single-threaded GEMM per team thread, `Convolution.forwardPointwiseByColumns`): where
    /// oneDNN runs no AVX-512 kernels (Zen 3, or a cap), for the layers that reduce channels
    /// from at least 256 (fewer outputs than inputs, as ResNet's bottleneck entries). Measured on
    /// a Zen 3: oneDNN 2.6's `gemm:jit` runs those shapes at 55–75 GFLOP/s on 2 threads, OpenBLAS
    /// at 118–146 (NETNet-ResNet-101-512 −10 % a frame); the widening 1×1s gained nothing, and the
    /// default model's narrow ones (≤ 128 inputs) lost ~5 % in annotate; AVX-512 machines are not
    /// measured, so they keep oneDNN. Pure but for reading oneDNN's ISA; callable from any thread.
    public static func pointwiseRunsOnOpenBLAS(_ geometry: ConvolutionGeometry, precision: Precision) -> Bool {
        precision == .fp32 && geometry.isPointwise && geometry.inputChannels >= 256
            && geometry.outputChannels < geometry.inputChannels && !OneDNNRuntime.runsAVX512
    }

    /// Runs the network on `input`, leaving raw heads in `locationOutput` and `confidenceOutput`:
    /// the steps made at load, in order. Call from the detector's thread.
    public func forward() {
        // The GEMM libraries keep their thread counts outside the detector: OpenMP per thread
        // (this one may not be the one that made the detector), set here once per frame before
        // the first GEMM; OpenBLAS per process, held at this detector's count for the pass
        // (`BLASThreads.withOpenBLAS`: a detector with another count waits meanwhile).
        if gemm == .onednn {
            BLASThreads.applyToOpenMP(threads.gemm)
            // Its OpenBLAS 1×1 layers run one single-threaded GEMM per team thread.
            if openBLASPointwiseLayerNames.isEmpty { runSteps() } else { BLASThreads.withOpenBLAS(threads: 1) { runSteps() } }
        } else {
            BLASThreads.withOpenBLAS(threads: threads.gemm) { runSteps() }
        }
    }

    private func runSteps() {
        if !twoWayLayers.isEmpty { winogradWayCounts[winogradWay, default: 0] += 1 }
        if !recordsTimings {
            for entry in steps { entry.step.run() }
            return
        }
        for (planStep, step) in steps {
            let started = DispatchTime.now().uptimeNanoseconds
            step.run()
            stepNanoseconds[planStep] += DispatchTime.now().uptimeNanoseconds - started
        }
    }

    /// Decodes the heads of the last `forward`: softmax scores and corner-form boxes in [0, 1]
    /// (`[priors, classes+1]` and `[priors, 4]`), then per-class NMS.
    /// Boxes are scaled to an image of `imageWidth` × `imageHeight` pixels.
    public func detections(threshold: Float, imageWidth: Int, imageHeight: Int,
                           settings: DetectionSettings = DetectionSettings()) -> [Detection] {
        let columns = plan.description.scoreCount
        let count = plan.priorCount
        Softmax.rows(scores.pointer, rows: count, columns: columns, into: scores.pointer, team: kernelTeam)
        BoxCoder.decode(locations: locations.pointer, priors: priors, variances: plan.description.priors.variances,
                        count: count, into: boxes.pointer)
        let found = NonMaximumSuppression.run(boxes: boxes.pointer, scores: scores.pointer, priorCount: count,
                                              scoreCount: columns, threshold: threshold, settings: settings)
        let classes = plan.description.classes
        let w = Float(imageWidth), h = Float(imageHeight)
        return found.map { candidate in
            let b = boxes.pointer + candidate.prior * 4
            return Detection(classIndex: candidate.scoreIndex - 1, label: classes[candidate.scoreIndex - 1],
                             score: candidate.score,
                             box: [min(max(b[0], 0), 1) * w, min(max(b[1], 0), 1) * h,
                                   min(max(b[2], 0), 1) * w, min(max(b[3], 0), 1) * h])
        }
    }

    /// Softmax scores after `detections` (`[priors, classes+1]`); raw logits before it.
    public var scoreBuffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(scores.buffer) }
    /// Decoded corner-form boxes in [0, 1] after `detections`: `[priors, 4]`.
    public var boxBuffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(boxes.buffer) }
}
