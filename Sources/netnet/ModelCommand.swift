import ArgumentParser
import Foundation
import NetnetEngine

/// `netnet model …`: create and inspect model files.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Create and inspect model files (safetensors; see docs/model-format.md).",
        subcommands: [InitCommand.self, InfoCommand.self])
}

/// `netnet model init`: a randomly initialised model, for tests and benchmarks.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a randomly initialised (untrained) model.",
        discussion: "He-normal convolution weights, zero biases, L2Norm scale 20; heads as --head-init says. Use such a model for tests, benchmarks and as a training start.")

    @Option(help: "Network: \(NetworkName.allCases.map(\.rawValue).joined(separator: ", ")).", transform: NetworkName.argument)
    var network: NetworkName

    @Option(help: "Channel width multiplier in (0, 4]; channels round to multiples of 8.")
    var width: Double = 1

    @Option(help: "Number of object classes (background excluded); names become class0, class1, …")
    var numClasses: Int?

    @Option(help: "Comma-separated class names (instead of --num-classes).")
    var classes: String?

    @Option(help: "NETNet parts to switch on, comma-separated from nnfm, nem, ntm (default: all for netnet-*, none for ssd-*).")
    var modules: String?

    @Option(help: "NETNet's erasing gate (the paper's Table 2): \(NEMGate.allCases.map(\.rawValue).joined(separator: ", ")) (default channel).")
    var gate: String?

    @Option(help: "Where the NETMs sit (the paper's Table 3): \(NEMPlacement.allCases.map(\.rawValue).joined(separator: ", ")) (default nem13+24).")
    var placement: String?

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Option(help: "Head initialisation: prior (zero weights, object scores start near 1 %; detects nothing until trained) or he (random like the other layers; for parity checks and benchmarks).",
            transform: choice("--head-init", wording: "got"))
    var headInit: Model.HeadInit = .prior

    @Option(name: [.short, .long], help: "Output model file.")
    var output: String

    func validate() throws {
        guard width.isFinite, width > 0, width <= 4 else { throw ValidationError("--width must be in (0, 4], got \(width)") }
        guard (numClasses == nil) != (classes == nil) else { throw ValidationError("give exactly one of --num-classes and --classes") }
        if let numClasses, !(1...10_000).contains(numClasses) { throw ValidationError("--num-classes must be in 1…10000") }
        if let classes, classes.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) || classes.isEmpty {
            throw ValidationError("--classes has an empty name")
        }
    }

    func run() throws {
        let name = network
        let names = classes.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            ?? (0..<(numClasses ?? 0)).map { "class\($0)" }
        var switches: ModuleSwitches? = nil
        if let modules {
            let parts = Set(modules.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
            let unknown = parts.subtracting(["nnfm", "nem", "ntm", "none"])
            guard unknown.isEmpty else { throw ValidationError("--modules: unknown part(s) \(unknown.sorted().joined(separator: ", "))") }
            guard name.isNETNet || parts.subtracting(["none"]).isEmpty else { throw ValidationError("--modules: \(network.rawValue) has no NETNet parts") }
            switches = ModuleSwitches(nnfm: parts.contains("nnfm"), nem: parts.contains("nem"), ntm: parts.contains("ntm"))
        }
        if gate != nil || placement != nil {
            guard name.isNETNet else { throw ValidationError("--gate/--placement: \(network.rawValue) has no NETNet parts") }
            var chosen = switches ?? .all
            if let gate {
                guard let value = NEMGate(rawValue: gate) else {
                    throw ValidationError("--gate: '\(gate)' is not one of \(NEMGate.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                chosen.gate = value
            }
            if let placement {
                guard let value = NEMPlacement(rawValue: placement) else {
                    throw ValidationError("--placement: '\(placement)' is not one of \(NEMPlacement.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                chosen.placement = value
            }
            switches = chosen
        }
        let heads = headInit
        let description = ModelDescription(network: name, width: width, classes: names, modules: switches,
                                           text: heads == .prior ? "untrained: random weights (seed \(seed)), detects nothing"
                                                                 : "untrained: random weights (seed \(seed)) in every layer, heads included")
        let model = Model(randomFor: description, seed: seed, headInit: heads)
        reportingErrors { try model.write(to: output) }
        print("wrote \(output): \(network.rawValue) width \(ModelDescription.formatWidth(width)), \(names.count) classes, \(model.plan.parameterCount) parameters")
    }
}

/// `netnet model info`: what a model file holds.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Print a model's network, width, input size, classes, parameters and multiply-accumulates.")

    @Argument(help: "Model file (default: the bundled default model).")
    var file: String?

    @Flag(help: "Print one JSON object: network, width, input_size, classes, parameters, macs, …")
    var json = false

    func run() throws {
        let model = reportingErrors { try DefaultModel.load(file, quiet: true) }
        let d = model.description
        let plan = model.plan
        let path = file ?? ((try? DefaultModel.path()) ?? "")
        if json {
            var object = JSONObject()
            object.add("file", path)
            object.add("network", d.network.rawValue)
            object.add("width", d.width, digits: 6)
            object.add("input_size", d.inputSize)
            object.add("classes", d.classes)
            object.add("parameters", plan.parameterCount)
            object.add("macs", plan.multiplyAccumulates)
            object.add("priors", plan.priorCount)
            var modules = JSONObject()
            modules.add("nnfm", d.modules.nnfm)
            modules.add("nem", d.modules.nem)
            modules.add("ntm", d.modules.ntm)
            modules.add("gate", d.modules.gate.rawValue)
            modules.add("placement", d.modules.placement.rawValue)
            object.add("modules", modules)
            var normalisation = JSONObject()
            normalisation.add("order", d.normalisation.order)
            normalisation.add("mean", d.normalisation.mean.map { Double($0) }, digits: 4)
            normalisation.add("std", d.normalisation.std.map { Double($0) }, digits: 4)
            object.add("normalisation", normalisation)
            if let text = d.text { object.add("description", text) }
            print(object.text)
            return
        }
        // The file's own text, escaped: a description or class name must not drive the terminal.
        let names = d.classes.map(TerminalText.escaped)
        let classList = names.count > 12 ? names.prefix(12).joined(separator: ", ") + ", … (\(names.count))" : names.joined(separator: ", ")
        print("""
            file:        \(TerminalText.escaped(path))
            network:     \(d.network.rawValue)
            width:       \(ModelDescription.formatWidth(d.width))
            input size:  \(d.inputSize)×\(d.inputSize) (\(d.normalisation.order), mean \(d.normalisation.mean), std \(d.normalisation.std))
            modules:     nnfm \(d.modules.nnfm ? "on" : "off"), nem \(d.modules.nem ? "on" : "off"), ntm \(d.modules.ntm ? "on" : "off")\(d.network.isNETNet ? ", gate \(d.modules.gate.rawValue), placement \(d.modules.placement.rawValue)" : "")
            classes:     \(d.classes.count): \(classList)
            parameters:  \(plan.parameterCount) (\(String(format: "%.1f", Double(plan.parameterCount * 4) / 1_048_576)) MiB)
            MACs/frame:  \(plan.multiplyAccumulates) (\(String(format: "%.2f", Double(plan.multiplyAccumulates) / 1e9)) G)
            priors:      \(plan.priorCount)
            """)
        if let text = d.text { print("description: \(TerminalText.escaped(text))") }
    }
}
