import Foundation
import NetnetKernels

/// A loaded model: its description, plan and weights, immutable after loading.
///
/// The weights live in one aligned allocation, sliced by tensor name, so any number of
/// `Detector`s on any threads may share one `Model` (it is never written after `init`).
public final class Model: @unchecked Sendable {
    /// What the model file's metadata says.
    public let description: ModelDescription
    /// The network derived from the description.
    public let plan: NetworkPlan
    /// The factor on the He std of each ResNet bottleneck's last convolution (conv3) in a random
    /// model: 1/√33, one over the root of ResNet-101's bottleneck count, as the reference's
    /// `residual_branch_gain`. Each He-initialised branch adds about its input's variance, so 33
    /// plain blocks would grow activations ~2^16.5 in std; with the gain the growth stays under
    /// (1 + 1/33)^33 < e in variance. 1 for VGG16. Pure.
    public static func residualBranchGain(_ backbone: Backbone) -> Float {
        switch backbone {
        case .vgg16: return 1
        case .resnet101: return 1 / Float(33).squareRoot()
        }
    }

    /// Where the model came from (a path, or `random(seed)`).
    public let source: String
    private let weights: AlignedBuffer
    private let offsets: [String: Int]

    /// Loads and validates the model at `path`: metadata, every tensor's presence, dtype and shape,
    /// no unknown tensors, finite values. Throws one line naming what is wrong.
    public init(path: String) throws(ModelFileError) {
        let reader = try SafetensorsReader(path: path)
        let description = try ModelDescription(metadata: reader.header.metadata, path: path)
        let plan = NetworkPlan(description)
        let expected = plan.expectedTensors
        let expectedNames = Set(expected.map(\.name))
        for name in reader.header.tensors.keys.sorted() where !expectedNames.contains(name) {
            throw ModelFileError(path: path, "unexpected tensor '\(name)' (not part of \(description.network.rawValue) with modules \(Self.describe(description.modules)))")
        }
        for (name, shape) in expected {
            guard let entry = reader.header.tensors[name] else {
                throw ModelFileError(path: path, "tensor '\(name)' is missing (expected shape \(shape))")
            }
            guard entry.dtype == "F32" else {
                throw ModelFileError(path: path, "tensor '\(name)': dtype \(entry.dtype), expected F32")
            }
            guard entry.shape == shape else {
                throw ModelFileError(path: path, "tensor '\(name)': expected shape \(shape), found \(entry.shape) (width \(ModelDescription.formatWidth(description.width)), \(description.classes.count) classes)")
            }
        }
        let (offsets, total) = Self.layout(expected)
        let weights = AlignedBuffer(count: total)
        for (name, shape) in expected {
            let start = weights.pointer + offsets[name]!
            try reader.readFloats(name, into: start)
            let count = shape.reduce(1, *)
            var finite = true
            for index in 0..<count where !start[index].isFinite { finite = false; break }
            guard finite else { throw ModelFileError(path: path, "tensor '\(name)' holds NaN or infinite values") }
        }
        self.description = description
        self.plan = plan
        self.source = path
        self.weights = weights
        self.offsets = offsets
    }

    /// How `init(randomFor:seed:headInit:)` initialises the detection heads.
    public enum HeadInit: String, Sendable, CaseIterable {
        /// Zero weights; class heads biased to the background (object scores start near 1 %),
        /// as RetinaNet's prior-probability init: an untrained model detects nothing, and
        /// training starts stable.
        case prior
        /// He-normal like every other layer: non-trivial outputs, for parity checks and benchmarks.
        case he
    }

    /// A randomly initialised model, reproducible from `seed`: He-normal convolution weights,
    /// zero biases, L2Norm scale 20, and heads as `headInit` says.
    public init(randomFor description: ModelDescription, seed: UInt64, headInit: HeadInit = .prior) {
        let plan = NetworkPlan(description)
        let expected = plan.expectedTensors
        let (offsets, total) = Self.layout(expected)
        let weights = AlignedBuffer(count: total)
        var generator = SplitMix64(seed: seed)
        let branchGain = Self.residualBranchGain(description.network.backbone)
        // A residual branch's last convolution is the one whose output is added to the shortcut.
        let branchEnds = Set(plan.steps.compactMap { step -> Int? in
            if case let .convolution(layer, _, _, _, accumulate) = step, accumulate { return layer }
            return nil
        })
        for (layerIndex, layer) in plan.layers.enumerated() {
            let g = layer.geometry
            var std = Float((2.0 / Double(g.inputChannels * g.kernelHeight * g.kernelWidth)).squareRoot())
            if branchEnds.contains(layerIndex) { std *= branchGain }
            let start = weights.pointer + offsets["\(layer.name).weight"]!
            for index in 0..<g.weightCount { start[index] = generator.nextGaussian() * std }
        }
        if headInit == .prior {
            let anchors = description.priors.anchorsPerLevel
            let backgroundLogit = Float(log(99.0 * Double(description.classes.count)))
            for layer in plan.layers where layer.name.hasPrefix("heads.") {
                (weights.pointer + offsets["\(layer.name).weight"]!).update(repeating: 0, count: layer.geometry.weightCount)
                guard layer.name.hasPrefix("heads.conf") else { continue }
                let level = Int(layer.name.dropFirst("heads.conf".count))! - 1
                let bias = weights.pointer + offsets["\(layer.name).bias"]!
                for anchor in 0..<anchors[level] { bias[anchor * description.scoreCount] = backgroundLogit }
            }
        }
        if let scaleOffset = offsets["l2norm.weight"] {
            let scale = weights.pointer + scaleOffset
            for index in 0..<plan.l2NormChannels { scale[index] = 20 }
        }
        self.description = description
        self.plan = plan
        self.source = "random(seed \(seed))"
        self.weights = weights
        self.offsets = offsets
    }

    /// The weights of tensor `name` (read-only by contract), or nil if the network has no such tensor.
    public func tensor(_ name: String) -> UnsafePointer<Float>? {
        offsets[name].map { UnsafePointer(weights.pointer + $0) }
    }

    /// Writes the model as a safetensors file with its metadata.
    public func write(to path: String) throws(ModelFileError) {
        var tensors: [String: SafetensorsWriter.Tensor] = [:]
        for (name, shape) in plan.expectedTensors {
            let count = shape.reduce(1, *)
            let start = weights.pointer + offsets[name]!
            tensors[name] = SafetensorsWriter.Tensor(shape: shape, values: Array(UnsafeBufferPointer(start: start, count: count)))
        }
        try SafetensorsWriter.write(tensors, metadata: description.metadata, to: path)
    }

    static func layout(_ tensors: [(name: String, shape: [Int])]) -> ([String: Int], Int) {
        var offsets: [String: Int] = [:]
        var total = 0
        for (name, shape) in tensors {
            offsets[name] = total
            total += (shape.reduce(1, *) + 15) / 16 * 16   // keep every tensor 64-byte aligned
        }
        return (offsets, max(total, 16))
    }

    static func describe(_ modules: ModuleSwitches) -> String {
        let on = [("nnfm", modules.nnfm), ("nem", modules.nem), ("ntm", modules.ntm)].filter(\.1).map(\.0)
        var text = on.isEmpty ? "none" : on.joined(separator: "+")
        if modules.gate != .channel { text += ", gate \(modules.gate.rawValue)" }
        if modules.placement != .skipped { text += ", placement \(modules.placement.rawValue)" }
        return text
    }
}

/// SplitMix64: a small, fast, reproducible generator (the same sequence on every platform).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    /// Starts the sequence at `seed`.
    public init(seed: UInt64) { state = seed }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A uniform float in [0, 1).
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }
    /// A standard normal float (Box–Muller).
    public mutating func nextGaussian() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / Double(1 << 53)), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / Double(1 << 53))
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
