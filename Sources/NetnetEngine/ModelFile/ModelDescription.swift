import Foundation

/// The networks the engine knows (docs/model-format.md, ../shared/docs/NETNET-SPEC.md).
public enum NetworkName: String, Sendable, CaseIterable, Codable {
    case ssdVGG16_300 = "ssd-vgg16-300"
    case netnetVGG16_300 = "netnet-vgg16-300"
    case ssdVGG16_512 = "ssd-vgg16-512"
    case netnetVGG16_512 = "netnet-vgg16-512"
    case ssdResNet101_512 = "ssd-resnet101-512"
    case netnetResNet101_512 = "netnet-resnet101-512"

    /// The square input side the network is defined for.
    public var inputSize: Int {
        switch self {
        case .ssdVGG16_300, .netnetVGG16_300: return 300
        case .ssdVGG16_512, .netnetVGG16_512, .ssdResNet101_512, .netnetResNet101_512: return 512
        }
    }

    /// Whether the network is NETNet (NNFM and NETMs) rather than the SSD baseline.
    public var isNETNet: Bool {
        switch self {
        case .netnetVGG16_300, .netnetVGG16_512, .netnetResNet101_512: return true
        case .ssdVGG16_300, .ssdVGG16_512, .ssdResNet101_512: return false
        }
    }

    /// The backbone the pyramid's first levels come from.
    public var backbone: Backbone {
        switch self {
        case .ssdVGG16_300, .netnetVGG16_300, .ssdVGG16_512, .netnetVGG16_512: return .vgg16
        case .ssdResNet101_512, .netnetResNet101_512: return .resnet101
        }
    }

    /// Number of pyramid levels the heads read (6 at 300, 7 at 512).
    public var levelCount: Int { inputSize == 300 ? 6 : 7 }
}

/// A network's backbone (docs/model-format.md, "Channel counts"). Value type.
public enum Backbone: String, Sendable, Hashable, CaseIterable {
    /// SSD's VGG16: conv4_3 (with L2Norm) and conv7 are p1 and p2.
    case vgg16
    /// ResNet-101 (torchvision's v1.5 bottlenecks, batch norm folded): the outputs of layer2,
    /// layer3 and layer4 (strides 8, 16, 32) are p1, p2 and p3.
    case resnet101
}

/// How NETNet's erasing gate is made from U(p_t), the deeper level resized to p_s (the paper's
/// Table 2). Value type.
public enum NEMGate: String, Sendable, Hashable, Codable, CaseIterable {
    /// Eq. 6: a 1×1 convolution to c_s channels, a gate per channel (the paper's choice; the default).
    case channel
    /// Eq. 5: the maximum over U(p_t)'s channels, one gate for all channels.
    case max
    /// Eq. 5: the mean over U(p_t)'s channels, one gate for all channels.
    case mean
    /// Both, combined by a 1×1 convolution (2 → 1 channel), one gate for all channels.
    case maxMean = "max+mean"
    /// The paper's "Global Attention", a simplified non-local block: queries C1×1(U(p_t)) at p_s's
    /// positions, keys and values C1×1(p_t) at p_t's, c_s/8 inner channels (at width 1, scaled),
    /// dot-product attention scaled by 1/√inner, then a 1×1 convolution to c_s gates.
    case global
}

/// Which pairs of pyramid levels get a NETM (the paper's Table 3). The pairs run in order, each
/// reading what the ones before it wrote. Value type.
public enum NEMPlacement: String, Sendable, Hashable, Codable, CaseIterable {
    /// (p1, p3) and (p2, p4), skipping a level: the paper's NETNet and the default.
    case skipped = "nem13+24"
    /// (p1, p3) only.
    case nem13
    /// (p2, p4) only.
    case nem24
    /// Three neighbouring pairs, (p1, p2), (p2, p3), (p3, p4).
    case neighbouring = "nnem"

    /// The (shallow, deep) level pairs, 1-based, in the order they run.
    public var pairs: [(low: Int, high: Int)] {
        switch self {
        case .skipped: return [(1, 3), (2, 4)]
        case .nem13: return [(1, 3)]
        case .nem24: return [(2, 4)]
        case .neighbouring: return [(1, 2), (2, 3), (3, 4)]
        }
    }
}

/// Which NETNet parts are switched on (the paper's Table 1 variants), with the erasing gate's
/// kind and the NETMs' placement (Tables 2 and 3). In the model file's `modules` metadata,
/// `gate` and `placement` appear only when not the default. Value type.
public struct ModuleSwitches: Sendable, Hashable, Codable {
    /// Nearest-neighbour feature fusion (paper §4.2).
    public var nnfm: Bool
    /// Neighbour erasing (NEM).
    public var nem: Bool
    /// Neighbour transferring (NTM).
    public var ntm: Bool
    /// How the erasing gate is made.
    public var gate: NEMGate
    /// Which level pairs get a NETM.
    public var placement: NEMPlacement
    /// Creates a set of switches.
    public init(nnfm: Bool, nem: Bool, ntm: Bool, gate: NEMGate = .channel, placement: NEMPlacement = .skipped) {
        self.nnfm = nnfm; self.nem = nem; self.ntm = ntm; self.gate = gate; self.placement = placement
    }
    /// Everything on: the paper's NETNet.
    public static let all = ModuleSwitches(nnfm: true, nem: true, ntm: true)
    /// Everything off: plain SSD.
    public static let none = ModuleSwitches(nnfm: false, nem: false, ntm: false)
    /// Whether the NETMs run at all (either half on).
    public var hasNETM: Bool { nem || ntm }
    /// Whether anything differs from plain SSD.
    public var isAnyOn: Bool { nnfm || nem || ntm || gate != .channel || placement != .skipped }

    enum CodingKeys: String, CodingKey { case nnfm, nem, ntm, gate, placement }

    /// Reads the switches; `gate` and `placement` default when absent.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        nnfm = try container.decode(Bool.self, forKey: .nnfm)
        nem = try container.decode(Bool.self, forKey: .nem)
        ntm = try container.decode(Bool.self, forKey: .ntm)
        gate = try container.decodeIfPresent(NEMGate.self, forKey: .gate) ?? .channel
        placement = try container.decodeIfPresent(NEMPlacement.self, forKey: .placement) ?? .skipped
    }

    /// Writes the switches, `gate` and `placement` only when not the default (so the default
    /// models' metadata is what it always was).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(nnfm, forKey: .nnfm)
        try container.encode(nem, forKey: .nem)
        try container.encode(ntm, forKey: .ntm)
        if gate != .channel { try container.encode(gate, forKey: .gate) }
        if placement != .skipped { try container.encode(placement, forKey: .placement) }
    }
}

/// How a picture becomes the network input: channel `i` = (pixel in `order`, 0–255, − mean[i]) / std[i].
public struct InputNormalisation: Sendable, Hashable, Codable {
    /// Channel order of the planes, `bgr` (SSD's convention) or `rgb`.
    public var order: String
    /// Per-channel mean, in `order`.
    public var mean: [Float]
    /// Per-channel divisor, in `order`.
    public var std: [Float]
    /// Creates a normalisation; the caller validates.
    public init(order: String, mean: [Float], std: [Float]) { self.order = order; self.mean = mean; self.std = std }
    /// SSD's: BGR, mean 104, 117, 123, no scaling.
    public static let ssd = InputNormalisation(order: "bgr", mean: [104, 117, 123], std: [1, 1, 1])
}

/// SSD prior-box settings, one entry per pyramid level. Value type.
public struct PriorSettings: Sendable, Hashable, Codable {
    /// Minimum box side per level, in input pixels.
    public var minSizes: [Double]
    /// Maximum box side per level, in input pixels (the sqrt(min·max) box).
    public var maxSizes: [Double]
    /// Cell size per level, in input pixels.
    public var steps: [Double]
    /// Extra aspect ratios per level (each adds a wide and a tall box).
    public var aspectRatios: [[Double]]
    /// Centre and size variances for decoding.
    public var variances: [Double]
    /// Whether prior boxes are clipped to [0, 1].
    public var clip: Bool
    /// With `clip`, whether the centres are clipped too (ssd.pytorch clamps all four values, the
    /// default) or only the width and height (torchvision's `DefaultBoxGenerator`). In the
    /// metadata as `clip_centres`, written only when false.
    public var clipCentres: Bool

    enum CodingKeys: String, CodingKey {
        case minSizes = "min_sizes", maxSizes = "max_sizes", steps, aspectRatios = "aspect_ratios", variances, clip
        case clipCentres = "clip_centres"
    }

    /// Creates prior settings; the caller validates.
    public init(minSizes: [Double], maxSizes: [Double], steps: [Double], aspectRatios: [[Double]], variances: [Double], clip: Bool,
                clipCentres: Bool = true) {
        self.minSizes = minSizes; self.maxSizes = maxSizes; self.steps = steps
        self.aspectRatios = aspectRatios; self.variances = variances; self.clip = clip; self.clipCentres = clipCentres
    }

    /// Reads the settings; `clip_centres` defaults to true.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        minSizes = try c.decode([Double].self, forKey: .minSizes)
        maxSizes = try c.decode([Double].self, forKey: .maxSizes)
        steps = try c.decode([Double].self, forKey: .steps)
        aspectRatios = try c.decode([[Double]].self, forKey: .aspectRatios)
        variances = try c.decode([Double].self, forKey: .variances)
        clip = try c.decode(Bool.self, forKey: .clip)
        clipCentres = try c.decodeIfPresent(Bool.self, forKey: .clipCentres) ?? true
    }

    /// Writes the settings, `clip_centres` only when false.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(minSizes, forKey: .minSizes)
        try c.encode(maxSizes, forKey: .maxSizes)
        try c.encode(steps, forKey: .steps)
        try c.encode(aspectRatios, forKey: .aspectRatios)
        try c.encode(variances, forKey: .variances)
        try c.encode(clip, forKey: .clip)
        if !clipCentres { try c.encode(clipCentres, forKey: .clipCentres) }
    }

    /// SSD's COCO settings for an input of 300 or 512 (the spec's table).
    public static func ssdCOCO(inputSize: Int) -> PriorSettings {
        if inputSize == 512 {
            return PriorSettings(
                minSizes: [20.48, 51.2, 133.12, 215.04, 296.96, 378.88, 460.8],
                maxSizes: [51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72],
                steps: [8, 16, 32, 64, 128, 256, 512],
                aspectRatios: [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]],
                variances: [0.1, 0.2], clip: true)
        }
        return PriorSettings(
            minSizes: [21, 45, 99, 153, 207, 261], maxSizes: [45, 99, 153, 207, 261, 315],
            steps: [8, 16, 32, 64, 100, 300],
            aspectRatios: [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
            variances: [0.1, 0.2], clip: true)
    }

    /// Anchors per cell at each level: 2 + 2 × (number of aspect ratios).
    public var anchorsPerLevel: [Int] { aspectRatios.map { 2 + 2 * $0.count } }
}

/// Everything a model file's metadata says: the network, its width, input, classes,
/// normalisation, priors and module switches. Value type; any thread.
public struct ModelDescription: Sendable, Hashable {
    /// The metadata `format` value this engine reads and writes.
    public static let formatVersion = "netnet.model/1"
    /// The network.
    public var network: NetworkName
    /// Channel multiplier.
    public var width: Double
    /// Square input side.
    public var inputSize: Int
    /// Object class names (background excluded; the network predicts `classes.count + 1` scores).
    public var classes: [String]
    /// Input normalisation.
    public var normalisation: InputNormalisation
    /// Prior boxes.
    public var priors: PriorSettings
    /// NETNet module switches (all off for SSD).
    public var modules: ModuleSwitches
    /// Free text shown by `netnet model info`.
    public var text: String?

    /// A description with the network's defaults: SSD normalisation and COCO priors.
    public init(network: NetworkName, width: Double = 1, classes: [String], modules: ModuleSwitches? = nil, text: String? = nil) {
        self.network = network
        self.width = width
        self.inputSize = network.inputSize
        self.classes = classes
        self.normalisation = .ssd
        self.priors = .ssdCOCO(inputSize: network.inputSize)
        self.modules = modules ?? (network.isNETNet ? .all : .none)
        self.text = text
    }

    /// Number of scores per prior (classes plus background).
    public var scoreCount: Int { classes.count + 1 }

    static let knownKeys: Set<String> = ["format", "network", "width", "input_size", "classes", "normalisation", "priors", "modules", "description"]

    /// Parses and validates `metadata`; errors name `path` and the key.
    public init(metadata: [String: String], path: String) throws(ModelFileError) {
        func fail(_ message: String) -> ModelFileError { ModelFileError(path: path, message) }
        for key in metadata.keys.sorted() where !Self.knownKeys.contains(key) {
            throw fail("unknown metadata key '\(key)' (known: \(Self.knownKeys.sorted().joined(separator: ", ")))")
        }
        guard let format = metadata["format"] else { throw fail("metadata key 'format' is missing (not a netnet model?)") }
        guard format == Self.formatVersion else { throw fail("metadata 'format' is '\(format)', expected '\(Self.formatVersion)'") }
        guard let networkText = metadata["network"] else { throw fail("metadata key 'network' is missing") }
        guard let network = NetworkName(rawValue: networkText) else {
            throw fail("metadata 'network' is '\(networkText)', expected one of \(NetworkName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let widthText = metadata["width"] else { throw fail("metadata key 'width' is missing") }
        guard let width = Double(widthText), width.isFinite, width > 0, width <= 4 else {
            throw fail("metadata 'width' is '\(widthText)', expected a number in (0, 4]")
        }
        guard let sizeText = metadata["input_size"] else { throw fail("metadata key 'input_size' is missing") }
        guard let inputSize = Int(sizeText), inputSize == network.inputSize else {
            throw fail("metadata 'input_size' is '\(sizeText)', expected \(network.inputSize) for \(network.rawValue)")
        }
        guard let classesText = metadata["classes"] else { throw fail("metadata key 'classes' is missing") }
        let classes: [String]
        do { classes = try JSONDecoder().decode([String].self, from: Data(classesText.utf8)) } catch {
            throw fail("metadata 'classes' is not a JSON array of strings")
        }
        guard !classes.isEmpty, classes.count <= 10_000 else {
            throw fail("metadata 'classes' has \(classes.count) names, expected 1 to 10000")
        }
        var description = ModelDescription(network: network, width: width, classes: classes)
        description.inputSize = inputSize
        if let text = metadata["normalisation"] {
            let value: InputNormalisation
            do { value = try Self.strictDecode(InputNormalisation.self, text, keys: ["order", "mean", "std"]) } catch {
                throw fail("metadata 'normalisation' is not valid: \(error)")
            }
            guard value.order == "bgr" || value.order == "rgb" else {
                throw fail("metadata 'normalisation': order '\(value.order)', expected bgr or rgb")
            }
            guard value.mean.count == 3, value.std.count == 3, value.mean.allSatisfy(\.isFinite),
                  value.std.allSatisfy({ $0.isFinite && $0 != 0 }) else {
                throw fail("metadata 'normalisation': mean and std need 3 finite values each, std non-zero")
            }
            description.normalisation = value
        } else {
            throw fail("metadata key 'normalisation' is missing")
        }
        if let text = metadata["priors"] {
            let value: PriorSettings
            do {
                value = try Self.strictDecode(PriorSettings.self, text,
                                              keys: ["min_sizes", "max_sizes", "steps", "aspect_ratios", "variances", "clip", "clip_centres"])
            } catch {
                throw fail("metadata 'priors' is not valid: \(error)")
            }
            let levels = network.levelCount
            for (name, count) in [("min_sizes", value.minSizes.count), ("max_sizes", value.maxSizes.count),
                                  ("steps", value.steps.count), ("aspect_ratios", value.aspectRatios.count)] where count != levels {
                throw fail("metadata 'priors': \(name) has \(count) entries, expected \(levels) (one per pyramid level of \(network.rawValue))")
            }
            guard value.variances.count == 2, value.variances.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw fail("metadata 'priors': variances needs 2 positive numbers")
            }
            let all = value.minSizes + value.maxSizes + value.steps + value.aspectRatios.flatMap { $0 }
            guard all.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw fail("metadata 'priors': sizes, steps and aspect ratios must be positive numbers")
            }
            let anchors = value.anchorsPerLevel
            let expected = network.inputSize == 300 ? [4, 6, 6, 6, 4, 4] : [4, 6, 6, 6, 6, 4, 4]
            guard anchors == expected else {
                throw fail("metadata 'priors': aspect_ratios give \(anchors) anchors per level, the heads of \(network.rawValue) have \(expected)")
            }
            description.priors = value
        } else {
            throw fail("metadata key 'priors' is missing")
        }
        if let text = metadata["modules"] {
            let value: ModuleSwitches
            do { value = try Self.strictDecode(ModuleSwitches.self, text, keys: ["nnfm", "nem", "ntm", "gate", "placement"]) } catch {
                throw fail("metadata 'modules' is not valid: \(error)")
            }
            if !network.isNETNet && value.isAnyOn {
                throw fail("metadata 'modules' switches NETNet parts on for \(network.rawValue)")
            }
            description.modules = value
        }
        description.text = metadata["description"]
        self = description
    }

    /// The metadata dictionary that `init(metadata:path:)` reads back to an equal description.
    public var metadata: [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ value: T) -> String { String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self) }
        var result: [String: String] = [
            "format": Self.formatVersion,
            "network": network.rawValue,
            "width": Self.formatWidth(width),
            "input_size": String(inputSize),
            "classes": json(classes),
            "normalisation": json(normalisation),
            "priors": json(priors),
            "modules": json(modules),
        ]
        if let text { result["description"] = text }
        return result
    }

    /// Shortest decimal text for a width (`1`, `0.25`).
    public static func formatWidth(_ width: Double) -> String {
        width == width.rounded() ? String(Int(width)) : String(width)
    }

    /// Decodes JSON `text` as `T`, refusing keys other than `keys`.
    static func strictDecode<T: Decodable>(_ type: T.Type, _ text: String, keys: Set<String>) throws -> T {
        let data = Data(text.utf8)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw StrictDecodeError(message: "not a JSON object")
        }
        if let duplicate = JSONDuplicateKeys.first(in: Array(text.utf8)) {
            throw StrictDecodeError(message: "key '\(duplicate.key)' appears twice")
        }
        if let unknown = object.keys.sorted().first(where: { !keys.contains($0) }) {
            throw StrictDecodeError(message: "unknown key '\(unknown)'")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch DecodingError.keyNotFound(let key, _) {
            throw StrictDecodeError(message: "key '\(key.stringValue)' is missing")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw StrictDecodeError(message: "'\(path)' has the wrong type")
        } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw StrictDecodeError(message: "'\(path)' is not one of the allowed values")
        } catch {
            throw StrictDecodeError(message: "malformed")
        }
    }

    struct StrictDecodeError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
