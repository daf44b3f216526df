import Foundation
import Testing
@testable import NetnetMedia

/// Runs `prepare` into a fresh buffer with NaN guard values after the 3*S*S outputs.
private func prepared(_ preparer: InputPreparer, _ image: BGRImage) throws -> [Float] {
    let count = 3 * preparer.inputSize * preparer.inputSize
    let guardCount = 64
    var buffer = [Float](repeating: .nan, count: count + guardCount)
    try buffer.withUnsafeMutableBufferPointer { try preparer.prepare(image, into: $0.baseAddress!) }
    #expect(buffer[count...].allSatisfy { $0.isNaN }, "prepare wrote past 3*S*S floats")
    return Array(buffer[..<count])
}

/// Expects plane k of `values` to equal (channel value - mean[k]) / std[k] everywhere, within tolerance/std.
private func expectPlanes(_ values: [Float], size: Int, bgr: (Int, Int, Int), normalisation n: Normalisation,
                          tolerance: Float, _ label: String) {
    let channel = n.order == .bgr ? [bgr.0, bgr.1, bgr.2] : [bgr.2, bgr.1, bgr.0]
    for k in 0..<3 {
        let expected = (Float(channel[k]) - n.mean[k]) / n.std[k]
        let plane = values[(k * size * size)..<((k + 1) * size * size)]
        let worst = plane.reduce(Float(0)) { max($0, abs($1 - expected)) }
        #expect(worst <= tolerance / n.std[k], "\(label) plane \(k): worst |diff| \(worst), expected \(expected)")
    }
}

@Suite("InputPreparer")
struct InputPreparerTests {
    static let imagenetRGB = Normalisation(order: .rgb, mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375])
    static let caffeBGR = Normalisation(order: .bgr, mean: [104, 117, 123], std: [1, 1, 1])

    @Test("synthetic solid colour: exact for both orders and for up/down/same size",
          arguments: [(imagenetRGB, 300), (caffeBGR, 300), (imagenetRGB, 32), (caffeBGR, 48), (imagenetRGB, 1)])
    func syntheticSolid(normalisation: Normalisation, size: Int) throws {
        let image = BGRImage(width: 64, height: 48, blue: 0xCC, green: 0x66, red: 0x33)
        let preparer = InputPreparer(inputSize: size, normalisation: normalisation)
        let values = try prepared(preparer, image)
        #expect(values.count == 3 * size * size)
        expectPlanes(values, size: size, bgr: (0xCC, 0x66, 0x33), normalisation: normalisation, tolerance: 0.0001, "synthetic \(size)")
    }

    @Test("extreme values 0 and 255 survive the resize")
    func extremes() throws {
        let n = Normalisation(order: .bgr, mean: [0, 0, 0], std: [1, 1, 1])
        for (b, g, r) in [(UInt8(0), UInt8(255), UInt8(0)), (255, 0, 255)] {
            let preparer = InputPreparer(inputSize: 77, normalisation: n)
            let values = try prepared(preparer, BGRImage(width: 161, height: 97, blue: b, green: g, red: r))
            expectPlanes(values, size: 77, bgr: (Int(b), Int(g), Int(r)), normalisation: n, tolerance: 0, "extremes")
        }
    }

    @Test("same size: values are the source bytes, in place, in the requested order")
    func identity() throws {
        let size = 5
        var pixels = [UInt8]()
        for i in 0..<(size * size) { pixels += [UInt8(i), UInt8(100 + i), UInt8(200 + i)] }   // B, G, R
        let image = BGRImage(width: size, height: size, pixels: pixels)
        let n = Normalisation(order: .rgb, mean: [0, 0, 0], std: [1, 1, 1])
        let values = try prepared(InputPreparer(inputSize: size, normalisation: n), image)
        for i in 0..<(size * size) {
            #expect(values[i] == Float(200 + i))                  // R plane first
            #expect(values[size * size + i] == Float(100 + i))    // G
            #expect(values[2 * size * size + i] == Float(i))      // B
        }
    }

    @Test("horizontal gradient stays monotonic and left-to-right after resizing")
    func gradientOrientation() throws {
        let width = 256, height = 10
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height { for x in 0..<width { pixels[(y * width + x) * 3 + 2] = UInt8(x) } }   // red ramp
        let n = Normalisation(order: .rgb, mean: [0, 0, 0], std: [1, 1, 1])
        let size = 64
        let values = try prepared(InputPreparer(inputSize: size, normalisation: n), BGRImage(width: width, height: height, pixels: pixels))
        let row = Array(values[(10 * size)..<(11 * size)])   // R plane, row 10
        #expect(row.first! < 8 && row.last! > 247, "ramp ends \(row.first!) … \(row.last!)")
        #expect(zip(row, row.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(values[(size * size)...].allSatisfy { $0 == 0 }, "G and B planes should stay 0")
    }

    @Test("one preparer reused across source sizes")
    func reuseAcrossSizes() throws {
        let n = Self.caffeBGR
        let preparer = InputPreparer(inputSize: 40, normalisation: n)
        for (w, h) in [(64, 48), (64, 48), (161, 97), (40, 40), (3, 2), (64, 48)] {
            let values = try prepared(preparer, BGRImage(width: w, height: h, blue: 10, green: 20, red: 30))
            expectPlanes(values, size: 40, bgr: (10, 20, 30), normalisation: n, tolerance: 0.0001, "\(w)x\(h)")
        }
    }

    @Test("invalid normalisation and inconsistent images throw")
    func invalidInputs() throws {
        let bad = InputPreparer(inputSize: 8, normalisation: Normalisation(order: .rgb, mean: [0, 0], std: [1, 1, 1]))
        #expect(throws: MediaError.self) { _ = try prepared(bad, BGRImage(width: 4, height: 4, blue: 0, green: 0, red: 0)) }
        let zeroStd = InputPreparer(inputSize: 8, normalisation: Normalisation(order: .rgb, mean: [0, 0, 0], std: [1, 0, 1]))
        #expect(throws: MediaError.self) { _ = try prepared(zeroStd, BGRImage(width: 4, height: 4, blue: 0, green: 0, red: 0)) }

        let good = InputPreparer(inputSize: 8, normalisation: Self.caffeBGR)
        var image = BGRImage(width: 4, height: 4, blue: 0, green: 0, red: 0)
        image.pixels.removeLast()
        #expect(throws: MediaError.self) { _ = try prepared(good, image) }
        #expect(throws: MediaError.self) { _ = try prepared(good, BGRImage(width: 0, height: 0, pixels: [])) }
    }
}

@Suite("InputPreparer on decoded files", .enabled(if: Fixtures.ffmpegAvailable, Fixtures.skipMessage))
struct InputPreparerFileTests {
    let fx: Fixtures
    init() throws { fx = try Fixtures.get() }

    @Test("decoded solid colour: every value is (v - mean)/std in the right channel order",
          arguments: [("solid.png", 2), ("solid.jpg", 4)],
          [InputPreparerTests.imagenetRGB, InputPreparerTests.caffeBGR])
    func decodedSolid(file: (String, Int), normalisation: Normalisation) throws {
        let image = try ImageDecoder.decodeFirstFrame(path: fx.path(file.0))
        for size in [300, 512, 20] {
            let values = try prepared(InputPreparer(inputSize: size, normalisation: normalisation), image)
            #expect(values.count == 3 * size * size)
            expectPlanes(values, size: size, bgr: (0xCC, 0x66, 0x33), normalisation: normalisation,
                         tolerance: Float(file.1), "\(file.0) → \(size)")
        }
    }

    @Test("resize output shape for a real-size picture")
    func shape() throws {
        let image = try ImageDecoder.decodeFirstFrame(path: fx.path("odd.png"))
        let values = try prepared(InputPreparer(inputSize: 300, normalisation: InputPreparerTests.imagenetRGB), image)
        #expect(values.count == 3 * 300 * 300)
        #expect(values.allSatisfy { $0.isFinite && abs($0) < 3 })
    }
}
