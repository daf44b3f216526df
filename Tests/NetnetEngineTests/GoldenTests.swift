import Foundation
import Testing
@testable import NetnetEngine

/// The committed narrow goldens from training/make_goldens.py (PyTorch, float64 reference).
@Suite("Parity with the PyTorch reference")
struct GoldenTests {
    static let goldens = ["netnet-vgg16-300-w0.125", "netnet-vgg16-512-w0.125", "ssd-vgg16-300-w0.125"]

    @Test("every level matches the reference within 1e-4 relative", arguments: goldens)
    func levelByLevel(name: String) throws {
        let directory = Bundle.module.resourceURL!.appendingPathComponent("Goldens")
        let modelPath = directory.appendingPathComponent("\(name).safetensors").path
        let goldenPath = directory.appendingPathComponent("\(name).golden.safetensors").path
        let model = try Model(path: modelPath)
        let detector = Detector(model: model)
        let results = try GoldenCheck.run(detector: detector, goldenPath: goldenPath)
        let names = Set(results.map(\.name))
        let levels = model.description.network.levelCount
        var required = (1...levels).map { "p\($0)" } + ["loc", "conf", "priors", "boxes", "scores"]
        if model.description.network.isNETNet { required += (1...4).flatMap { ["pf\($0)", "out\($0)"] } }
        for name in required { #expect(names.contains(name), "\(name) was not compared") }
        for result in results {
            #expect(result.relativeError <= 1e-4, "\(name): \(result)")
        }
    }
}
