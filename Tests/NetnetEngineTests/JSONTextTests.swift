import Foundation
import Testing
@testable import NetnetEngine

/// `JSONText`, the one JSON writer (frame and status lines, `/api/streams`, the `--json` objects,
/// the safetensors header).
@Suite struct JSONTextTests {
    private func fixed(_ value: Double, _ decimals: Int) -> String {
        var bytes: [UInt8] = []
        JSONText.appendFixed(value, decimals: decimals, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func fixedDecimals() {
        #expect(fixed(0.912341, 5) == "0.91234")
        #expect(fixed(Double(Float(0.91234)), 5) == "0.91234")
        #expect(fixed(1.4, 6) == "1.400000")
        #expect(fixed(-3.5, 2) == "-3.50")
        #expect(fixed(-0.001, 2) == "0.00")
        #expect(fixed(-0.0, 3) == "0.000")
        #expect(fixed(0.125, 2) == "0.13")
        #expect(fixed(1234567.891, 0) == "1234568")
        #expect(Double(fixed(1e300, 2)) == 1e300 && fixed(1e300, 2).hasSuffix(".00"))
        #expect(fixed(.nan, 2) == "null")
        #expect(fixed(.infinity, 2) == "null")
        #expect(fixed(-.infinity, 5) == "null")
    }

    @Test func fixedAgreesWithPrintfExceptOnTies() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let decimals = Int.random(in: 0...6, using: &rng)
            let value = Double.random(in: -5000...5000, using: &rng) * (Bool.random(using: &rng) ? 1 : 0.001)
            let mine = fixed(value, decimals)
            var theirs = String(format: "%.\(decimals)f", value)
            if theirs.hasPrefix("-") && Double(theirs) == 0 { theirs.removeFirst() }
            if mine != theirs {
                // Only a value within rounding noise of a half-way point may round differently.
                let scaled = value * pow(10, Double(decimals))
                let distanceToTie = abs(abs(scaled - scaled.rounded(.down)) - 0.5)
                #expect(distanceToTie < 1e-6, "\(value) with \(decimals): \(mine) vs printf \(theirs)")
            }
        }
    }

    @Test func integers() {
        for value in [0, 7, 10, 42, -1, -1234567, Int.max, Int.min] {
            var bytes: [UInt8] = []
            JSONText.appendInt(value, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == String(value))
        }
    }

    @Test func stringsRoundTripThroughJSONSerialization() throws {
        for text in ["person", "say \"hi\"", "back\\slash", "tab\tnew\nline\r", "\u{0}\u{1}\u{1f}\u{7f}", "café 🚗 ψ", ""] {
            var bytes: [UInt8] = []
            JSONText.appendString(text, to: &bytes)
            let parsed = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as? String
            #expect(parsed == text)
        }
    }

    private func trimmed(_ value: Double, _ decimals: Int) -> String {
        var bytes: [UInt8] = []
        JSONText.appendTrimmed(value, maxDecimals: decimals, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func trimmedDecimals() {
        #expect(trimmed(0.125, 6) == "0.125")
        #expect(trimmed(0.25, 3) == "0.25")
        #expect(trimmed(104, 4) == "104")
        #expect(trimmed(-2.5, 3) == "-2.5")
        #expect(trimmed(2.0625, 3) == "2.063")
        #expect(trimmed(0.0004, 3) == "0")
        #expect(trimmed(-0.0004, 3) == "0")
        #expect(trimmed(1200, 0) == "1200")
        #expect(trimmed(10, 2) == "10")
        #expect(trimmed(.nan, 3) == "null")
        #expect(trimmed(-.infinity, 3) == "null")
        // After the bytes already in the buffer, only this number's zeros go.
        var bytes = Array("[1.0, ".utf8)
        JSONText.appendTrimmed(2, maxDecimals: 2, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "[1.0, 2")
    }
}
