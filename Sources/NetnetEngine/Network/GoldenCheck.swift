import Foundation

/// Compares the engine with a golden file written by the PyTorch reference
/// (`training/make_goldens.py`), level by level, so that a mismatch names its layer.
public enum GoldenCheck {
    /// One compared tensor: max |engine − golden| over max |golden|.
    public struct Result: Sendable, CustomStringConvertible {
        /// Tensor name (`p1`, `pf2`, `out3`, `loc`, `conf`, `boxes`, `scores`).
        public let name: String
        /// Shape compared.
        public let shape: [Int]
        /// max |a − b|.
        public let maxAbsError: Float
        /// max |b| (golden).
        public let maxAbsValue: Float
        /// `maxAbsError / maxAbsValue` (or the absolute error when the golden is all zero).
        public var relativeError: Float { maxAbsValue > 0 ? maxAbsError / maxAbsValue : maxAbsError }
        /// `name  shape  rel=…  (abs … of …)`.
        public var description: String {
            "\(name.padding(toLength: 7, withPad: " ", startingAt: 0)) \(shape)  rel \(String(format: "%.2e", relativeError))  (max abs err \(String(format: "%.3e", maxAbsError)) of \(String(format: "%.3e", maxAbsValue)))"
        }
    }

    /// Loads the golden's input into `detector`, runs it, and compares every tensor the golden
    /// holds that the engine also has. Throws if the golden is unreadable or its shapes differ.
    public static func run(detector: Detector, goldenPath: String) throws(ModelFileError) -> [Result] {
        let golden = try SafetensorsReader(path: goldenPath)
        let plan = detector.plan
        let size = plan.description.inputSize
        guard let input = golden.header.tensors["input"], input.shape == [1, 3, size, size] else {
            throw ModelFileError(path: goldenPath, "tensor 'input': expected shape [1, 3, \(size), \(size)], found \(golden.header.tensors["input"]?.shape.description ?? "none")")
        }
        try golden.readFloats("input", into: detector.input)
        detector.forward()
        var results: [Result] = []
        func compare(_ name: String, _ actual: UnsafeBufferPointer<Float>, shape: [Int]) throws(ModelFileError) {
            guard let entry = golden.header.tensors[name] else { return }
            guard entry.elementCount == actual.count else {
                throw ModelFileError(path: goldenPath, "tensor '\(name)': golden shape \(entry.shape), engine shape \(shape)")
            }
            let expected = try golden.floats(name)
            var maxError: Float = 0, maxValue: Float = 0
            for index in 0..<expected.count {
                maxError = max(maxError, abs(actual[index] - expected[index]))
                maxValue = max(maxValue, abs(expected[index]))
            }
            if actual.contains(where: { !$0.isFinite }) { maxError = .infinity }
            results.append(Result(name: name, shape: shape, maxAbsError: maxError, maxAbsValue: maxValue))
        }
        let levels = plan.description.network.levelCount
        var names = (1...levels).map { "p\($0)" }
        names += (1...4).map { "pf\($0)" } + (1...4).map { "out\($0)" }
        for name in names {
            if let (buffer, values) = detector.feature(name) {
                try compare(name, values, shape: [1, buffer.channels, buffer.height, buffer.width])
            }
        }
        let priors = plan.priorCount, columns = plan.description.scoreCount
        try compare("loc", detector.locationOutput, shape: [priors, 4])
        try compare("conf", detector.confidenceOutput, shape: [priors, columns])
        try detector.priors.withUnsafeBufferPointer { (buffer) throws(ModelFileError) in
            try compare("priors", buffer, shape: [priors, 4])
        }
        _ = detector.detections(threshold: 1, imageWidth: 1, imageHeight: 1)
        try compare("boxes", detector.boxBuffer, shape: [priors, 4])
        try compare("scores", detector.scoreBuffer, shape: [priors, columns])
        return results
    }
}
