import Foundation
import Testing
@testable import NetnetEngine

private let coco = (0..<80).map { "class\($0)" }

@Suite("Network plans")
struct PlanTests {
    @Test("prior counts match SSD's", arguments: [(NetworkName.ssdVGG16_300, 8732), (.netnetVGG16_300, 8732),
                                                 (.ssdVGG16_512, 24564), (.netnetVGG16_512, 24564),
                                                 (.ssdResNet101_512, 24564), (.netnetResNet101_512, 24564)])
    func priorCounts(network: NetworkName, expected: Int) {
        let plan = NetworkPlan(ModelDescription(network: network, width: 0.125, classes: ["a"]))
        #expect(plan.priorCount == expected)
        #expect(PriorBoxes.generate(plan: plan).count == expected * 4)
    }

    @Test("multiply-accumulates at width 1 with 80 classes match the spec's count",
          arguments: [(NetworkName.ssdVGG16_300, 34.4), (.netnetVGG16_300, 36.9), (.ssdVGG16_512, 98.6), (.netnetVGG16_512, 105.7),
                      (.ssdResNet101_512, 54.78), (.netnetResNet101_512, 67.91)])
    func macs(network: NetworkName, gigaMACs: Double) {
        let plan = NetworkPlan(ModelDescription(network: network, width: 1, classes: coco))
        let measured = Double(plan.multiplyAccumulates) / 1e9
        #expect(abs(measured - gigaMACs) < 0.05, "\(network.rawValue): \(measured) G, spec \(gigaMACs) G")
    }

    @Test("pyramid sizes and channels at width 1")
    func pyramid() {
        let plan300 = NetworkPlan(ModelDescription(network: .netnetVGG16_300, classes: coco))
        let shapes300 = (1...6).map { name -> [Int] in
            let b = plan300.buffers[plan300.named["p\(name)"]!]
            return [b.height, b.channels]
        }
        #expect(shapes300 == [[38, 512], [19, 1024], [10, 512], [5, 256], [3, 256], [1, 256]])
        let plan512 = NetworkPlan(ModelDescription(network: .ssdVGG16_512, classes: coco))
        let sizes512 = (1...7).map { plan512.buffers[plan512.named["p\($0)"]!].height }
        #expect(sizes512 == [64, 32, 16, 8, 4, 2, 1])
    }

    /// The ResNet-101 layout (docs/model-format.md): p1…p3 from layer2…layer4, extras to 1×1,
    /// torchvision's v1.5 strides (3×3 and projection), one output buffer per stage, no L2Norm.
    @Test("ResNet-101 at 512: pyramid, strides, tensors")
    func resNetLayout() {
        let plan = NetworkPlan(ModelDescription(network: .netnetResNet101_512, classes: coco))
        let shapes = (1...7).map { level -> [Int] in
            let b = plan.buffers[plan.named["p\(level)"]!]
            return [b.height, b.channels]
        }
        #expect(shapes == [[64, 512], [32, 1024], [16, 2048], [8, 512], [4, 256], [2, 256], [1, 256]])
        let tensors = Dictionary(uniqueKeysWithValues: plan.expectedTensors.map { ($0.name, $0.shape) })
        #expect(tensors["l2norm.weight"] == nil)
        #expect(tensors["backbone.conv1.weight"] == [64, 3, 7, 7])
        #expect(tensors["backbone.layer3.0.downsample.weight"] == [1024, 512, 1, 1])
        #expect(tensors["backbone.layer3.1.downsample.weight"] == nil)
        #expect(tensors["netm13.gate.weight"] == [512, 2048, 1, 1] && tensors["netm13.transfer.weight"] == [2048, 512, 1, 1])
        #expect(tensors["netm24.reduce.weight"] == [256, 1024, 1, 1])
        #expect(tensors["extras.conv6_1.weight"] == [256, 2048, 1, 1] && tensors["extras.conv9_2.weight"] == [256, 128, 3, 3])
        #expect(plan.layers.filter { $0.name.hasSuffix(".conv3") }.count == 33)
        let layers = Dictionary(uniqueKeysWithValues: plan.layers.map { ($0.name, $0) })
        let projection = layers["backbone.layer2.0.downsample"]!
        #expect(projection.geometry.strideY == 2 && projection.geometry.kernelHeight == 1 && projection.inputHeight == 128)
        #expect(layers["backbone.layer2.0.conv1"]!.geometry.strideY == 1 && layers["backbone.layer2.0.conv2"]!.geometry.strideY == 2)
        // layer3's 23 blocks share one output buffer, accumulated in place with ReLU.
        let p2 = plan.named["p2"]!
        let residuals = plan.steps.filter {
            if case let .convolution(_, _, output, true, true) = $0 { return output == p2 } else { return false }
        }
        #expect(residuals.count == 23)
    }

    @Test("width scaling rounds to multiples of 8, at least 8")
    func widthScaling() {
        #expect(NetworkPlan.scaled(64, width: 0.125) == 8)
        #expect(NetworkPlan.scaled(64, width: 0.05) == 8)
        #expect(NetworkPlan.scaled(512, width: 0.25) == 128)
        #expect(NetworkPlan.scaled(1024, width: 0.3) == 304)
        #expect(NetworkPlan.scaled(100, width: 1) == 96)   // 12.5 → 12 (ties to even)
    }

    @Test("tensor names follow docs/model-format.md")
    func tensorNames() {
        let plan = NetworkPlan(ModelDescription(network: .netnetVGG16_300, classes: coco))
        let names = Set(plan.expectedTensors.map(\.name))
        for name in ["backbone.conv1_1.weight", "backbone.conv6.bias", "l2norm.weight", "extras.conv11_2.weight",
                     "nnfm.down2.weight", "nnfm.up4.bias", "netm13.gate.weight", "netm24.transfer.weight",
                     "netm13.reduce.weight", "netm13.conv.weight", "netm13.expand.weight", "heads.loc6.weight", "heads.conf1.bias"] {
            #expect(names.contains(name), "missing \(name)")
        }
        #expect(!names.contains("nnfm.down1.weight"))
        let shapes = Dictionary(uniqueKeysWithValues: plan.expectedTensors.map { ($0.name, $0.shape) })
        #expect(shapes["netm24.gate.weight"] == [1024, 256, 1, 1])
        #expect(shapes["netm13.conv.weight"] == [128, 128, 3, 3])
        #expect(shapes["heads.conf2.weight"] == [81 * 6, 1024, 3, 3])
        let ssd = NetworkPlan(ModelDescription(network: .ssdVGG16_512, classes: coco))
        #expect(ssd.expectedTensors.contains { $0.name == "extras.conv12_2.weight" && $0.shape == [256, 128, 4, 4] })
        #expect(!ssd.expectedTensors.contains { $0.name.hasPrefix("netm") || $0.name.hasPrefix("nnfm") })
    }

    @Test("module switches change the parameter set as documented")
    func variants() {
        func names(_ m: ModuleSwitches) -> Set<String> {
            Set(NetworkPlan(ModelDescription(network: .netnetVGG16_300, width: 0.125, classes: ["a"], modules: m)).expectedTensors.map(\.name))
        }
        let nemOnly = names(ModuleSwitches(nnfm: true, nem: true, ntm: false))
        #expect(nemOnly.contains("netm13.gate.weight") && !nemOnly.contains("netm13.transfer.weight"))
        let ntmOnly = names(ModuleSwitches(nnfm: false, nem: false, ntm: true))
        #expect(ntmOnly.contains("netm13.transfer.weight") && !ntmOnly.contains("nnfm.up1.weight"))
        let none = names(.none)
        #expect(!none.contains { $0.hasPrefix("netm") || $0.hasPrefix("nnfm") })
    }

    @Test("convolution choice: only 3x3 stride-1 dilation-1 layers are ever Winograd; auto skips thin ones and maps under 32x32")
    func convolutionChoice() {
        let plan = NetworkPlan(ModelDescription(network: .netnetVGG16_300, classes: coco))
        func uses(_ name: String, _ choice: ConvolutionAlgorithm, precision: Precision = .fp32) -> Bool {
            let layer = plan.layers.first { $0.name == name }!
            return choice.usesWinograd(layer.geometry, inputHeight: layer.inputHeight, inputWidth: layer.inputWidth,
                                       precision: precision)
        }
        for layer in plan.layers {
            let g = layer.geometry
            let eligible = g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideY == 1 && g.strideX == 1
                && g.dilationY == 1 && g.dilationX == 1
            #expect(uses(layer.name, .winograd) == eligible, "\(layer.name)")
            #expect(!uses(layer.name, .im2col), "\(layer.name)")
            if uses(layer.name, .auto) { #expect(eligible, "\(layer.name)") }
        }
        #expect(uses("backbone.conv1_2", .auto) && uses("backbone.conv4_3", .auto))
        #expect(!uses("backbone.conv5_3", .auto) && uses("backbone.conv5_3", .winograd))  // 19x19: memory, see prefersWinograd
        #expect(!uses("backbone.conv1_1", .auto))   // 3 input channels
        #expect(!uses("backbone.conv6", .winograd))  // dilation 6
        #expect(!uses("extras.conv8_2", .winograd))  // stride 2
        #expect(!uses("extras.conv10_2", .auto))     // 3x3 output
        #expect(uses("backbone.conv5_3", .auto, precision: .bf16))  // bf16: from 16x16
        #expect(!uses("heads.conf3", .auto, precision: .bf16))  // 10x10 with 512x486 filters
        // Dilated layers (conv6 only) have their own kernel, on oneDNN: `winograd` takes it, `auto`
        // only in bf16 (fp32 leaves it to im2col for memory), `im2col` never.
        func usesDilated(_ name: String, _ choice: ConvolutionAlgorithm, precision: Precision = .fp32) -> Bool {
            let layer = plan.layers.first { $0.name == name }!
            return choice.usesDilatedWinograd(layer.geometry, inputHeight: layer.inputHeight, inputWidth: layer.inputWidth,
                                              precision: precision)
        }
        #expect(plan.layers.filter { usesDilated($0.name, .winograd) }.map(\.name) == ["backbone.conv6"])
        #expect(usesDilated("backbone.conv6", .auto, precision: .bf16) && !usesDilated("backbone.conv6", .auto))
        #expect(!usesDilated("backbone.conv6", .im2col, precision: .bf16))
    }

    @Test("auto at the default model's width (0.125): thin layers from 8 channels, and small filters down to 8x8")
    func convolutionChoiceNarrow() {
        let plan = NetworkPlan(ModelDescription(network: .netnetVGG16_300, width: 0.125, classes: ["person"]))
        func uses(_ name: String) -> Bool {
            let layer = plan.layers.first { $0.name == name }!
            return ConvolutionAlgorithm.auto.usesWinograd(layer.geometry, inputHeight: layer.inputHeight, inputWidth: layer.inputWidth)
        }
        #expect(uses("backbone.conv1_2"))    // 8 -> 8 at 300x300
        #expect(uses("backbone.conv5_3"))    // 64 x 64 filters at 19x19
        #expect(uses("heads.conf3"))         // small filters at 10x10
        #expect(!uses("backbone.conv1_1"))   // 3 input channels
        #expect(!uses("extras.conv10_2"))    // 3x3 output
    }
}

@Suite("CPU requirement")
struct CPURequirementTests {
    static let flags = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx fma avx2 avx512f\n\nprocessor\t: 1\nflags\t\t: fpu sse sse2\n"

    @Test("the first flags line of /proc/cpuinfo is what counts; a missing line checks nothing")
    func parsing() {
        #expect(CPURequirement.missing(cpuinfo: Self.flags, needed: ["avx2", "fma"]).isEmpty)
        #expect(CPURequirement.missing(cpuinfo: "flags : fpu sse sse2 avx\n", needed: ["avx2", "fma"]) == ["avx2", "fma"])
        #expect(CPURequirement.missing(cpuinfo: "flags : fpu fma\n", needed: ["avx2", "fma"]) == ["avx2"])
        // "avx2" must be a whole flag, not a prefix of another.
        #expect(CPURequirement.missing(cpuinfo: "flags : avx2x fma\n", needed: ["avx2"]) == ["avx2"])
        #expect(CPURequirement.missing(cpuinfo: "processor : 0\n", needed: ["avx2"]).isEmpty)
        let refusal = CPURequirement.problem(cpuinfo: "flags : fpu sse2 avx\n", needed: ["avx2", "fma"])
        #expect(refusal?.contains("lacks avx2, fma") == true && refusal?.contains("NETNET_KERNEL_CPU=x86-64") == true,
                "\(refusal ?? "no refusal")")
        #expect(CPURequirement.problem(cpuinfo: nil, needed: ["avx2"]) == nil)
        #expect(CPURequirement.problem(cpuinfo: Self.flags, needed: ["avx2", "fma"]) == nil)
    }

    @Test("this machine runs the kernels it built (x86-64 builds need AVX2 and FMA)")
    func thisMachine() {
        #expect(CPURequirement.problem() == nil)
        #if arch(x86_64)
        if ProcessInfo.processInfo.environment["NETNET_KERNEL_CPU"] == nil {
            #expect(CPURequirement.kernelFeatures == ["avx2", "fma"], "kernels built without NETNET_KERNELS_NEED_AVX2")
        }
        #endif
    }
}
