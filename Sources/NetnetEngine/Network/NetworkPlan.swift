import NetnetKernels

/// One convolution of the network: its tensor names and geometry, and the input size it runs at.
public struct ConvolutionLayer: Sendable, Hashable {
    /// Tensor name prefix: weights are `name.weight`, bias `name.bias`.
    public let name: String
    /// Kernel geometry.
    public let geometry: ConvolutionGeometry
    /// Input height and width at which the engine runs this layer.
    public let inputHeight: Int, inputWidth: Int
    /// Input height and width at which the spec's network applies it. They differ only for the
    /// 1×1 convolutions the engine moves before a bilinear upsample (NNFM's H_{s+1}, NETM's gate):
    /// resizing is linear with weights summing to 1, so C1×1(U(x)) = U(C1×1(x)), bias included,
    /// at a fraction of the cost.
    public let definitionHeight: Int, definitionWidth: Int

    /// A layer the engine runs at `inputHeight` × `inputWidth`; the spec applies it at
    /// `definitionHeight` × `definitionWidth` (the same unless given).
    public init(name: String, geometry: ConvolutionGeometry, inputHeight: Int, inputWidth: Int,
                definitionHeight: Int? = nil, definitionWidth: Int? = nil) {
        self.name = name
        self.geometry = geometry
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.definitionHeight = definitionHeight ?? inputHeight
        self.definitionWidth = definitionWidth ?? inputWidth
    }
    /// Output height and width.
    public var outputHeight: Int { geometry.outputHeight(inputHeight: inputHeight) }
    /// Output width.
    public var outputWidth: Int { geometry.outputWidth(inputWidth: inputWidth) }
    /// Multiply-accumulates for one frame of the spec's network (NETNET-SPEC's count).
    public var multiplyAccumulates: Int { geometry.multiplyAccumulates(inputHeight: definitionHeight, inputWidth: definitionWidth) }
    /// Multiply-accumulates the engine actually performs for one frame.
    public var executedMultiplyAccumulates: Int { geometry.multiplyAccumulates(inputHeight: inputHeight, inputWidth: inputWidth) }
    /// The layer-group label used by `netnet bench` (`backbone`, `extras`, `nnfm`, `netm`, `heads`).
    public var group: String {
        let prefix = String(name.prefix(while: { $0 != "." }))
        return prefix.hasPrefix("netm") ? "netm" : prefix
    }
}

/// A feature map the plan allocates: `[channels, height, width]`, batch 1.
public struct FeatureBuffer: Sendable, Hashable {
    /// Debug and golden name (`p1`, `pf2`, `out3`, or an internal name).
    public let name: String
    /// Channels.
    public let channels: Int
    /// Height.
    public let height: Int
    /// Width.
    public let width: Int
    /// Element count.
    public var count: Int { channels * height * width }
}

/// One step of the forward pass. Buffers are indices into `NetworkPlan.buffers`.
public enum PlanStep: Sendable, Hashable {
    /// A convolution from `input` to `output` (layer index into `NetworkPlan.layers`).
    case convolution(layer: Int, input: Int, output: Int, relu: Bool, accumulate: Bool)
    /// Max pooling.
    case maxPool(input: Int, output: Int, kernel: Int, stride: Int, padding: Int, ceilMode: Bool)
    /// SSD's L2Norm with scale tensor `l2norm.weight`.
    case l2Norm(input: Int, output: Int)
    /// Bilinear resize to the output buffer's size (align_corners false).
    case resize(input: Int, output: Int)
    /// output += bilinear resize of input to output's size, then ReLU if `relu` (one pass).
    case resizeAdd(input: Int, output: Int, relu: Bool)
    /// NEM with the gate's sigmoid in the same pass: g = sigmoid(gate), erased = feature ⊙ g,
    /// kept = feature − erased (either may be absent). `gate` holds the logits.
    case gateErase(feature: Int, gate: Int, erased: Int?, kept: Int?)
    /// Max or mean over `input`'s channels into channel `outputChannel` of `output` (same size).
    case reduceChannels(input: Int, output: Int, reduction: ChannelReduction, outputChannel: Int)
    /// Dot-product attention (`SpatialAttention`): for each position i of `output`,
    /// Σ_j softmax_j(scale · query[:, i] · key[:, j]) · value[:, j]; `workspace` holds the weights.
    case attention(query: Int, key: Int, value: Int, output: Int, workspace: Int, scale: Float)
    /// A one-channel `input` copied into every channel of `output` (same size).
    case broadcast(input: Int, output: Int)
    /// Copy a buffer into another of the same size.
    case copy(input: Int, output: Int)
    /// output += input (same size), then ReLU if `relu`.
    case add(input: Int, output: Int, relu: Bool)
    /// One level's location and class heads as one convolution (weights stacked, so the im2col
    /// is shared), permuted to NHWC and stored from prior `priorOffset` of `loc` and `conf`.
    case heads(locationLayer: Int, confidenceLayer: Int, input: Int, scratch: Int, priorOffset: Int)
}

extension PlanStep {
    /// The buffers this step reads (an accumulating step reads its output too). Pure.
    public var readBuffers: [Int] {
        switch self {
        case let .convolution(_, input, output, _, accumulate): return accumulate ? [input, output] : [input]
        case let .maxPool(input, _, _, _, _, _): return [input]
        case let .l2Norm(input, _): return [input]
        case let .resize(input, _): return [input]
        case let .resizeAdd(input, output, _): return [input, output]
        case let .gateErase(feature, gate, _, _): return [feature, gate]
        case let .reduceChannels(input, _, _, _): return [input]
        case let .broadcast(input, _): return [input]
        case let .attention(query, key, value, _, _, _): return [query, key, value]
        case let .copy(input, _): return [input]
        case let .add(input, output, _): return [input, output]
        case let .heads(_, _, input, _, _): return [input]
        }
    }
}

/// The network as a list of steps over named buffers, derived from a `ModelDescription` alone:
/// no weights, no memory. The loader validates files against `layers`, `model init` fills them,
/// `model info` counts them and `Detector` executes `steps`. Value type; any thread.
public struct NetworkPlan: Sendable {
    /// The description this plan was built from.
    public let description: ModelDescription
    /// Every convolution, in execution order.
    public private(set) var layers: [ConvolutionLayer] = []
    /// Every buffer; index 0 is the input image.
    public private(set) var buffers: [FeatureBuffer] = []
    /// The forward pass.
    public private(set) var steps: [PlanStep] = []
    /// Buffer index by name for the pyramid, fused and NETM outputs (`p1…`, `pf1…`, `out1…`).
    public private(set) var named: [String: Int] = [:]
    /// The buffers the heads read, level by level.
    public private(set) var headInputs: [Int] = []
    /// Prior count (rows of `loc` and `conf`).
    public private(set) var priorCount = 0
    /// Channels of the L2Norm scale (`l2norm.weight`); 0 for a network without L2Norm (ResNet-101).
    public private(set) var l2NormChannels = 0

    /// Channel count `c` (at width 1) scaled by the width: `max(8, round(c·w/8)·8)`, ties to even.
    public static func scaled(_ channels: Int, width: Double) -> Int {
        max(8, Int((Double(channels) * width / 8).rounded(.toNearestOrEven)) * 8)
    }

    /// Builds the plan for `description`.
    public init(_ description: ModelDescription) {
        self.description = description
        build()
    }

    /// Every tensor the model file must hold, with its shape, in a stable order.
    public var expectedTensors: [(name: String, shape: [Int])] {
        var result: [(String, [Int])] = []
        for layer in layers {
            let g = layer.geometry
            result.append(("\(layer.name).weight", [g.outputChannels, g.inputChannels, g.kernelHeight, g.kernelWidth]))
            result.append(("\(layer.name).bias", [g.outputChannels]))
        }
        if l2NormChannels > 0 { result.append(("l2norm.weight", [l2NormChannels])) }
        return result
    }

    /// Learned parameters.
    public var parameterCount: Int { expectedTensors.reduce(0) { $0 + $1.shape.reduce(1, *) } }

    /// Multiply-accumulates per frame of the spec's network (convolutions only).
    public var multiplyAccumulates: Int { layers.reduce(0) { $0 + $1.multiplyAccumulates } }
    /// Multiply-accumulates the engine performs per frame (fewer: see `ConvolutionLayer`).
    public var executedMultiplyAccumulates: Int { layers.reduce(0) { $0 + $1.executedMultiplyAccumulates } }

    // MARK: building

    private mutating func buffer(_ name: String, _ c: Int, _ h: Int, _ w: Int) -> Int {
        buffers.append(FeatureBuffer(name: name, channels: c, height: h, width: w))
        return buffers.count - 1
    }

    @discardableResult
    private mutating func conv(_ name: String, from input: Int, into existing: Int? = nil, out: Int, kernel: Int = 1, stride: Int = 1,
                               padding: Int = 0, dilation: Int = 1, relu: Bool = true, accumulate: Bool = false,
                               definedAt definition: Int? = nil) -> Int {
        let source = buffers[input]
        let geometry = ConvolutionGeometry(inputChannels: source.channels, outputChannels: out, kernel: kernel,
                                           stride: stride, padding: padding, dilation: dilation)
        let defined = definition.map { buffers[$0] } ?? source
        let layer = ConvolutionLayer(name: name, geometry: geometry, inputHeight: source.height, inputWidth: source.width,
                                     definitionHeight: defined.height, definitionWidth: defined.width)
        layers.append(layer)
        let output = existing ?? buffer(name, out, layer.outputHeight, layer.outputWidth)
        precondition(buffers[output].count == out * layer.outputHeight * layer.outputWidth, "plan: \(name) output size")
        steps.append(.convolution(layer: layers.count - 1, input: input, output: output, relu: relu, accumulate: accumulate))
        return output
    }

    private mutating func pool(_ name: String, from input: Int, kernel: Int, stride: Int, padding: Int = 0, ceil: Bool) -> Int {
        let source = buffers[input]
        let h = MaxPool.outputSize(input: source.height, kernel: kernel, stride: stride, padding: padding, ceilMode: ceil)
        let w = MaxPool.outputSize(input: source.width, kernel: kernel, stride: stride, padding: padding, ceilMode: ceil)
        let output = buffer(name, source.channels, h, w)
        steps.append(.maxPool(input: input, output: output, kernel: kernel, stride: stride, padding: padding, ceilMode: ceil))
        return output
    }

    private mutating func resize(_ name: String, from input: Int, like target: Int) -> Int {
        let output = buffer(name, buffers[input].channels, buffers[target].height, buffers[target].width)
        steps.append(.resize(input: input, output: output))
        return output
    }

    /// NEM's gate logits for feature `f` from the deeper `g`, as `kind` makes them (the
    /// paper's Table 2), at f's size and channel count: `channel` is C1×1(U(g)) (the 1×1 runs
    /// at g's size, before the resize); `max`/`mean` reduce U(g)'s channels to one plane and
    /// `max+mean` mixes the two planes with a 1×1 convolution, each broadcast to f's channels.
    private mutating func erasingGate(_ pair: String, from g: Int, like f: Int, kind: NEMGate, inner: Int) -> Int {
        let fs = buffers[f], gs = buffers[g]
        if kind == .global {
            // Queries at f's positions: C1×1(U(g)) = U(C1×1(g)) (both linear, bilinear weights sum to 1).
            let queryLow = conv("\(pair).query", from: g, out: inner, relu: false, definedAt: f)
            let query = resize("\(pair).queryresize", from: queryLow, like: f)
            let key = conv("\(pair).key", from: g, out: inner, relu: false)
            let value = conv("\(pair).value", from: g, out: inner, relu: false)
            let workspace = buffer("\(pair).attentionweights", 1, fs.height * fs.width, gs.height * gs.width)
            let attended = buffer("\(pair).attended", inner, fs.height, fs.width)
            steps.append(.attention(query: query, key: key, value: value, output: attended, workspace: workspace,
                                    scale: 1 / Float(inner).squareRoot()))
            return conv("\(pair).gate", from: attended, out: fs.channels, relu: false)
        }
        if kind == .channel {
            let gateLow = conv("\(pair).gate", from: g, out: fs.channels, relu: false, definedAt: f)
            return resize("\(pair).resize", from: gateLow, like: f)
        }
        // The reductions do not commute with the resize (max does not), so they run on U(g).
        let upsampled = resize("\(pair).upsample", from: g, like: f)
        let plane: Int
        switch kind {
        case .max, .mean:
            plane = buffer("\(pair).reduced", 1, fs.height, fs.width)
            steps.append(.reduceChannels(input: upsampled, output: plane, reduction: kind == .max ? .max : .mean, outputChannel: 0))
        default:
            let both = buffer("\(pair).maxmean", 2, fs.height, fs.width)
            steps.append(.reduceChannels(input: upsampled, output: both, reduction: .max, outputChannel: 0))
            steps.append(.reduceChannels(input: upsampled, output: both, reduction: .mean, outputChannel: 1))
            plane = conv("\(pair).gate", from: both, out: 1, relu: false)
        }
        let gate = buffer("\(pair).gatelogits", fs.channels, fs.height, fs.width)
        steps.append(.broadcast(input: plane, output: gate))
        return gate
    }

    /// SSD's VGG16 (pool3 in ceil mode, pool5 3×3/1, conv6 dilated, conv7 1×1): [p1, p2], p1 the
    /// L2-normalised conv4_3.
    private mutating func vggBackbone(from input: Int, scale s: (Int) -> Int) -> [Int] {
        var x = input
        let blocks: [(Int, Int)] = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
        var conv4_3 = 0
        for (blockIndex, (channels, count)) in blocks.enumerated() {
            for i in 1...count {
                x = conv("backbone.conv\(blockIndex + 1)_\(i)", from: x, out: s(channels), kernel: 3, padding: 1)
            }
            switch blockIndex {
            case 0, 1: x = pool("pool\(blockIndex + 1)", from: x, kernel: 2, stride: 2, ceil: false)
            case 2: x = pool("pool3", from: x, kernel: 2, stride: 2, ceil: true)
            case 3:
                conv4_3 = x
                x = pool("pool4", from: x, kernel: 2, stride: 2, ceil: false)
            default: x = pool("pool5", from: x, kernel: 3, stride: 1, padding: 1, ceil: false)
            }
        }
        let c4 = buffers[conv4_3]
        let p1 = buffer("p1", c4.channels, c4.height, c4.width)
        steps.append(.l2Norm(input: conv4_3, output: p1))
        l2NormChannels = c4.channels
        x = conv("backbone.conv6", from: x, out: s(1024), kernel: 3, padding: 6, dilation: 6)
        let p2 = conv("backbone.conv7", from: x, out: s(1024))
        return [p1, p2]
    }

    /// ResNet-101 (torchvision's v1.5 layout, batch norm folded into the biases): stem 7×7/2
    /// pad 3 + ReLU, 3×3/2 pad 1 max pool, then layer1…layer4 of 3, 4, 23, 3 bottlenecks; returns
    /// [p1, p2, p3], the outputs of layer2, layer3 and layer4 (strides 8, 16, 32).
    ///
    /// A bottleneck is out = ReLU(C1×1(ReLU(C3×3(ReLU(C1×1(x))))) + shortcut), the stride on the
    /// 3×3 and on the projection shortcut (a strided 1×1, first block of each stage). The residual
    /// add and its ReLU are the last convolution's epilogue (`accumulate`): the projection writes
    /// the stage's output buffer, and every later block of the stage accumulates into that same
    /// buffer in place (its input is read only by its own first 1×1, which has run by then), so a
    /// stage has one output buffer and two (three in its first block) intermediate ones.
    private mutating func resNetBackbone(from input: Int, scale s: (Int) -> Int) -> [Int] {
        let stages: [(name: String, mid: Int, blocks: Int, stride: Int)] =
            [("layer1", 64, 3, 1), ("layer2", 128, 4, 2), ("layer3", 256, 23, 2), ("layer4", 512, 3, 2)]
        let stem = conv("backbone.conv1", from: input, out: s(64), kernel: 7, stride: 2, padding: 3)
        var x = pool("backbone.pool", from: stem, kernel: 3, stride: 2, padding: 1, ceil: false)
        var outputs: [Int] = []
        for stage in stages {
            let mid = s(stage.mid), out = s(4 * stage.mid)
            let source = buffers[x]
            let size = ConvolutionGeometry(inputChannels: mid, outputChannels: mid, kernel: 3, stride: stage.stride, padding: 1)
                .outputHeight(inputHeight: source.height)
            let first = "backbone.\(stage.name).0"
            // First block: projection shortcut into the stage's output buffer, then the branch added onto it.
            let stageOutput = conv("\(first).downsample", from: x, out: out, stride: stage.stride, relu: false)
            let reduced0 = conv("\(first).conv1", from: x, out: mid)
            let middle = conv("\(first).conv2", from: reduced0, out: mid, kernel: 3, stride: stage.stride, padding: 1)
            precondition(buffers[middle].height == size && buffers[stageOutput].height == size, "plan: \(stage.name) size")
            conv("\(first).conv3", from: middle, into: stageOutput, out: out, relu: true, accumulate: true)
            let reduced = buffer("backbone.\(stage.name).conv1", mid, size, size)
            for block in 1..<stage.blocks {
                let name = "backbone.\(stage.name).\(block)"
                conv("\(name).conv1", from: stageOutput, into: reduced, out: mid)
                conv("\(name).conv2", from: reduced, into: middle, out: mid, kernel: 3, padding: 1)
                conv("\(name).conv3", from: middle, into: stageOutput, out: out, relu: true, accumulate: true)
            }
            x = stageOutput
            if stage.name != "layer1" { outputs.append(stageOutput) }
        }
        return outputs
    }

    private mutating func build() {
        let d = description
        let s = { (c: Int) in NetworkPlan.scaled(c, width: d.width) }
        let size = d.inputSize
        let input = buffer("input", 3, size, size)
        var pyramid: [Int]
        var unscaled: [Int]
        let extras: [(Int, Int, Int, Int, Int)]
        switch d.network.backbone {
        case .vgg16:
            pyramid = vggBackbone(from: input, scale: s)
            unscaled = [512, 1024]
            extras = size == 300
                ? [(256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 1, 0), (128, 256, 3, 1, 0)]
                : [(256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 4, 1, 1)]
        case .resnet101:
            pyramid = resNetBackbone(from: input, scale: s)
            unscaled = [512, 1024, 2048]
            // Four [1×1, 3×3 s2 p1] pairs, 16 → 8 → 4 → 2 → 1 (SSD512's first four extras).
            extras = [(256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1)]
        }
        // Extras: [1×1, 3×3] pairs, numbered on from the backbone's last stage (VGG16: conv8…;
        // ResNet-101, whose stages are conv1…conv5_x: conv6…).
        let firstExtra = d.network.backbone == .vgg16 ? 8 : 6
        var x = pyramid[pyramid.count - 1]
        for (index, (mid, out, kernel, stride, padding)) in extras.enumerated() {
            let n = index + firstExtra
            x = conv("extras.conv\(n)_1", from: x, out: s(mid))
            x = conv("extras.conv\(n)_2", from: x, out: s(out), kernel: kernel, stride: stride, padding: padding)
            pyramid.append(x)
        }
        unscaled += extras.map { $0.1 }
        for (index, level) in pyramid.enumerated() { named["p\(index + 1)"] = level }

        var features = pyramid
        let m = d.modules
        if m.nnfm {
            // pf_s = ReLU(H_{s-1}(p_{s-1}) + p_s + H_{s+1}(p_{s+1})), s = 1…4, all reading un-fused neighbours.
            for level in 1...4 {
                let p = pyramid[level - 1]
                let target = buffers[p]
                let fused = buffer("pf\(level)", target.channels, target.height, target.width)
                steps.append(.copy(input: p, output: fused))
                if level > 1 {
                    let pooled = pool("nnfm.pool\(level)", from: pyramid[level - 2], kernel: 2, stride: 2, ceil: true)
                    conv("nnfm.down\(level)", from: pooled, into: fused, out: target.channels, relu: false, accumulate: true)
                }
                // H_{s+1}: the 1×1 convolution runs at p_{s+1}'s size, before the resize (see ConvolutionLayer).
                let low = conv("nnfm.up\(level)", from: pyramid[level], out: target.channels, relu: false, definedAt: p)
                steps.append(.resizeAdd(input: low, output: fused, relu: true))
                features[level - 1] = fused
                named["pf\(level)"] = fused
            }
        }
        if m.hasNETM {
            // The pairs run in order, each reading what the ones before it wrote (the skipped
            // pairs are disjoint; the neighbouring ones chain).
            var outputs = features
            for (low, high) in m.placement.pairs {
                let pair = "netm\(low)\(high)"
                let f = outputs[low - 1], g = outputs[high - 1]
                let fs = buffers[f], fg = buffers[g]
                let gate = erasingGate(pair, from: g, like: f, kind: m.gate, inner: s(unscaled[low - 1] / 8))
                let erased = buffer("\(pair).erased", fs.channels, fs.height, fs.width)
                let kept: Int
                if m.nem {
                    kept = buffer("\(pair).kept", fs.channels, fs.height, fs.width)
                    steps.append(.gateErase(feature: f, gate: gate, erased: erased, kept: kept))
                } else {
                    kept = f
                    steps.append(.gateErase(feature: f, gate: gate, erased: erased, kept: nil))
                }
                // out_s = ReLU(kept + C1×1(ReLU(C3×3(ReLU(C1×1(kept)))))), bottleneck c_s/4 at width 1, scaled.
                let bottleneck = s(unscaled[low - 1] / 4)
                let reduced = conv("\(pair).reduce", from: kept, out: bottleneck)
                let mixed = conv("\(pair).conv", from: reduced, out: bottleneck, kernel: 3, padding: 1)
                let outLow = buffer("out\(low)", fs.channels, fs.height, fs.width)
                steps.append(.copy(input: kept, output: outLow))
                conv("\(pair).expand", from: mixed, into: outLow, out: fs.channels, relu: true, accumulate: true)
                outputs[low - 1] = outLow
                if m.ntm {
                    // out_t = f_t + C1×1(D(erased)), D = k×k/k ceil max pool, k = 2^(t−s) (4 skipped, 2 neighbours).
                    let k = 1 << (high - low)
                    let pooled = pool("\(pair).pool", from: erased, kernel: k, stride: k, ceil: true)
                    precondition(buffers[pooled].height == fg.height, "plan: NTM pool size")
                    let outHigh = buffer("out\(high)", fg.channels, fg.height, fg.width)
                    steps.append(.copy(input: g, output: outHigh))
                    conv("\(pair).transfer", from: pooled, into: outHigh, out: fg.channels, relu: false, accumulate: true)
                    outputs[high - 1] = outHigh
                }
            }
            for level in 1...4 { named["out\(level)"] = outputs[level - 1] }
            features = outputs
        }

        // Heads: 3×3 pad 1 convolutions, permuted to NHWC and concatenated level by level.
        headInputs = features
        let anchors = d.priors.anchorsPerLevel
        var offset = 0
        for (index, level) in features.enumerated() {
            let f = buffers[level]
            let k = anchors[index]
            let scratch = buffer("heads\(index + 1)", (4 + d.scoreCount) * k, f.height, f.width)
            for (kind, channels) in [("loc", 4 * k), ("conf", d.scoreCount * k)] {
                layers.append(ConvolutionLayer(name: "heads.\(kind)\(index + 1)",
                                               geometry: ConvolutionGeometry(inputChannels: f.channels, outputChannels: channels, kernel: 3, padding: 1),
                                               inputHeight: f.height, inputWidth: f.width))
            }
            steps.append(.heads(locationLayer: layers.count - 2, confidenceLayer: layers.count - 1, input: level,
                                scratch: scratch, priorOffset: offset))
            offset += f.height * f.width * k
        }
        priorCount = offset
    }
}
