import ArgumentParser
import Foundation
import NetnetEngine

/// `netnet parity`: compares the engine with a PyTorch golden file, level by level.
struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Compare the engine with a golden file from training/make_goldens.py, level by level.",
        discussion: "Prints max |engine − golden| / max |golden| per tensor; exits 1 if any exceeds --tolerance.")

    @Option(help: "Model file the golden was made with.")
    var model: String

    @Option(help: "Golden file (*.golden.safetensors).")
    var golden: String

    @Option(help: "Largest relative error accepted.")
    var tolerance: Float = 1e-4

    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        let loaded = reportingErrors { try Model(path: model) }
        let detector = reportingErrors { try precision.makeDetector(model: loaded) }
        let results = reportingErrors { try GoldenCheck.run(detector: detector, goldenPath: golden) }
        var worst: Float = 0
        for result in results {
            let mark = result.relativeError <= tolerance ? "ok  " : "FAIL"
            print("\(mark) \(result)")
            worst = max(worst, result.relativeError.isNaN ? .infinity : result.relativeError)
        }
        print("\(results.count) tensors compared, worst relative error \(String(format: "%.2e", worst)) (tolerance \(String(format: "%.0e", tolerance)))")
        if worst > tolerance || results.isEmpty { throw ExitCode(1) }
    }
}
