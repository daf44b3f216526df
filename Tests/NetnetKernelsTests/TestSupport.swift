import Testing
import NetnetKernels

/// Deterministic SplitMix64 generator, so every test sees the same data on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func float(_ range: ClosedRange<Float> = -1 ... 1) -> Float {
        Float.random(in: range, using: &self)
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }
    mutating func array(_ count: Int, _ range: ClosedRange<Float> = -1 ... 1) -> [Float] {
        (0 ..< count).map { _ in float(range) }
    }
}

/// Largest |a[i] - b[i]| and largest |b[i]| (b is the reference).
func errors(_ a: [Float], _ b: [Float]) -> (maxError: Float, maxReference: Float) {
    precondition(a.count == b.count)
    var e: Float = 0, m: Float = 0
    for i in 0 ..< a.count {
        let d = abs(a[i] - b[i])
        e = (d.isNaN || e.isNaN) ? .nan : max(e, d)
        m = max(m, abs(b[i]))
    }
    return (e, m)
}

/// `errors` as one readable string.
func describe(_ e: (maxError: Float, maxReference: Float)) -> String {
    "max abs err \(e.maxError), max abs ref \(e.maxReference)"
}

extension Array where Element == Float {
    /// Calls `body` with a read-only pointer to the elements (never nil, even when empty).
    func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { return try body(base) }
            var dummy: Float = 0
            return try body(&dummy)
        }
    }

    /// Calls `body` with a mutable pointer to the elements.
    mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { buffer in
            if let base = buffer.baseAddress { return try body(base) }
            var dummy: Float = 0
            return try body(&dummy)
        }
    }
}

/// Bitwise equality of two float arrays, reported compactly (first mismatch, not the arrays).
func expectIdentical(_ actual: [Float], _ expected: [Float], _ what: @autoclosure () -> String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    var firstMismatch: Int? = nil
    if actual.count == expected.count {
        for i in 0 ..< actual.count where actual[i].bitPattern != expected[i].bitPattern
            && !(actual[i] == expected[i]) {
            firstMismatch = i
            break
        }
    }
    let ok = actual.count == expected.count && firstMismatch == nil
    if !ok {
        let detail = firstMismatch.map { "first mismatch at \($0): \(actual[$0]) vs \(expected[$0]); \(describe(errors(actual, expected)))" }
            ?? "count \(actual.count) vs \(expected.count)"
        Issue.record("\(what()): \(detail)", sourceLocation: sourceLocation)
    }
}
