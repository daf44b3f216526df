import Testing
import NetnetKernels

struct PoolCase: CustomStringConvertible, Sendable {
    var channels: Int, height: Int, width: Int, kernel: Int, stride: Int, padding: Int, ceilMode: Bool
    var description: String { "c \(channels) \(height)x\(width) k \(kernel) s \(stride) p \(padding) ceil \(ceilMode)" }
}

@Suite struct MaxPoolTests {
    /// Values PyTorch's nn.MaxPool2d gives (the SSD/NETNet pools).
    @Test func outputSizeMatchesPyTorch() {
        #expect(MaxPool.outputSize(input: 75, kernel: 2, stride: 2, padding: 0, ceilMode: true) == 38)
        #expect(MaxPool.outputSize(input: 75, kernel: 2, stride: 2, padding: 0, ceilMode: false) == 37)
        #expect(MaxPool.outputSize(input: 38, kernel: 4, stride: 4, padding: 0, ceilMode: true) == 10)
        #expect(MaxPool.outputSize(input: 19, kernel: 4, stride: 4, padding: 0, ceilMode: true) == 5)
        #expect(MaxPool.outputSize(input: 64, kernel: 4, stride: 4, padding: 0, ceilMode: true) == 16)
        #expect(MaxPool.outputSize(input: 32, kernel: 4, stride: 4, padding: 0, ceilMode: true) == 8)
        #expect(MaxPool.outputSize(input: 19, kernel: 3, stride: 1, padding: 1, ceilMode: false) == 19)
        #expect(MaxPool.outputSize(input: 300, kernel: 2, stride: 2, padding: 0, ceilMode: false) == 150)
        #expect(MaxPool.outputSize(input: 38, kernel: 2, stride: 2, padding: 0, ceilMode: true) == 19)
        #expect(MaxPool.outputSize(input: 19, kernel: 2, stride: 2, padding: 0, ceilMode: true) == 10)
        // The ceil-mode correction: a window may not start in the right padding.
        #expect(MaxPool.outputSize(input: 5, kernel: 2, stride: 2, padding: 1, ceilMode: true) == 3)
        #expect(MaxPool.outputSize(input: 6, kernel: 3, stride: 3, padding: 1, ceilMode: true) == 3)
    }

    static let cases: [PoolCase] = [
        PoolCase(channels: 3, height: 75, width: 75, kernel: 2, stride: 2, padding: 0, ceilMode: true),
        PoolCase(channels: 2, height: 75, width: 74, kernel: 2, stride: 2, padding: 0, ceilMode: true),
        PoolCase(channels: 2, height: 9, width: 11, kernel: 2, stride: 2, padding: 0, ceilMode: false),
        PoolCase(channels: 3, height: 38, width: 38, kernel: 4, stride: 4, padding: 0, ceilMode: true),
        PoolCase(channels: 3, height: 19, width: 19, kernel: 4, stride: 4, padding: 0, ceilMode: true),
        PoolCase(channels: 2, height: 64, width: 64, kernel: 4, stride: 4, padding: 0, ceilMode: true),
        PoolCase(channels: 4, height: 19, width: 19, kernel: 3, stride: 1, padding: 1, ceilMode: false),
        PoolCase(channels: 2, height: 5, width: 5, kernel: 2, stride: 2, padding: 1, ceilMode: true),
        PoolCase(channels: 2, height: 7, width: 6, kernel: 3, stride: 2, padding: 1, ceilMode: true),
        PoolCase(channels: 40, height: 60, width: 60, kernel: 2, stride: 2, padding: 0, ceilMode: true),  // threaded
        PoolCase(channels: 1, height: 1, width: 1, kernel: 1, stride: 1, padding: 0, ceilMode: false),
    ]

    @Test(arguments: MaxPoolTests.cases)
    func matchesReference(_ c: PoolCase) {
        var rng = SeededGenerator(seed: UInt64(c.height * 31 + c.kernel))
        // Negative values only, so a padded (-inf) tap that wrongly counted as 0 would show.
        let input = rng.array(c.channels * c.height * c.width, -10 ... -0.1)
        let oh = MaxPool.outputSize(input: c.height, kernel: c.kernel, stride: c.stride, padding: c.padding, ceilMode: c.ceilMode)
        let ow = MaxPool.outputSize(input: c.width, kernel: c.kernel, stride: c.stride, padding: c.padding, ceilMode: c.ceilMode)
        var fast = [Float](repeating: .nan, count: c.channels * oh * ow)
        var reference = fast
        input.withPointer { x in
            fast.withMutablePointer { y in
                MaxPool.forward(input: x, channels: c.channels, height: c.height, width: c.width, kernel: c.kernel,
                                stride: c.stride, padding: c.padding, ceilMode: c.ceilMode, output: y)
            }
            reference.withMutablePointer { y in
                ReferenceKernels.maxPool(input: x, channels: c.channels, height: c.height, width: c.width, kernel: c.kernel,
                                         stride: c.stride, padding: c.padding, ceilMode: c.ceilMode, output: y)
            }
        }
        expectIdentical(fast, reference, "\(c): \(describe(errors(fast, reference)))")
        #expect(!fast.contains { $0.isInfinite || $0.isNaN }, "\(c): empty window")
    }
}

struct ResizeCase: CustomStringConvertible, Sendable {
    var channels: Int, inputHeight: Int, inputWidth: Int, outputHeight: Int, outputWidth: Int
    var description: String { "c \(channels) \(inputHeight)x\(inputWidth) -> \(outputHeight)x\(outputWidth)" }
}

@Suite struct BilinearResizeTests {
    /// Hand-computed PyTorch values: F.interpolate([0, 1], size=4) = [0, .25, .75, 1];
    /// [0, 10, 20] to 5 = [0, 4, 10, 16, 20] (align_corners=False).
    @Test func knownPyTorchValues() {
        func resizeRow(_ x: [Float], to n: Int) -> [Float] {
            var out = [Float](repeating: 0, count: n)
            x.withPointer { xp in
                out.withMutablePointer { yp in
                    BilinearResize.forward(input: xp, channels: 1, inputHeight: 1, inputWidth: x.count,
                                           output: yp, outputHeight: 1, outputWidth: n)
                }
            }
            return out
        }
        #expect(resizeRow([0, 1], to: 4) == [0, 0.25, 0.75, 1])
        let five = resizeRow([0, 10, 20], to: 5)
        let expected: [Float] = [0, 4, 10, 16, 20]
        #expect(errors(five, expected).maxError <= 1e-5, "\(five)")
        // Down: [0, 1, 2, 3] -> 2: src = 0.5 and 2.5 -> [0.5, 2.5].
        #expect(resizeRow([0, 1, 2, 3], to: 2) == [0.5, 2.5])
        // Same size is the identity.
        #expect(resizeRow([3, -1, 7], to: 3) == [3, -1, 7])
    }

    static let cases: [ResizeCase] = [
        ResizeCase(channels: 3, inputHeight: 3, inputWidth: 3, outputHeight: 5, outputWidth: 5),
        ResizeCase(channels: 3, inputHeight: 10, inputWidth: 10, outputHeight: 19, outputWidth: 19),
        ResizeCase(channels: 2, inputHeight: 19, inputWidth: 19, outputHeight: 38, outputWidth: 38),
        ResizeCase(channels: 3, inputHeight: 5, inputWidth: 5, outputHeight: 10, outputWidth: 10),
        ResizeCase(channels: 2, inputHeight: 38, inputWidth: 38, outputHeight: 19, outputWidth: 19),
        ResizeCase(channels: 2, inputHeight: 19, inputWidth: 19, outputHeight: 10, outputWidth: 10),
        ResizeCase(channels: 2, inputHeight: 10, inputWidth: 10, outputHeight: 3, outputWidth: 3),
        ResizeCase(channels: 2, inputHeight: 1, inputWidth: 1, outputHeight: 3, outputWidth: 2),
        ResizeCase(channels: 2, inputHeight: 7, inputWidth: 4, outputHeight: 3, outputWidth: 9),
        ResizeCase(channels: 24, inputHeight: 19, inputWidth: 19, outputHeight: 38, outputWidth: 38),  // threaded
    ]

    @Test(arguments: BilinearResizeTests.cases)
    func matchesReference(_ c: ResizeCase) {
        var rng = SeededGenerator(seed: UInt64(c.inputHeight * 100 + c.outputHeight))
        let input = rng.array(c.channels * c.inputHeight * c.inputWidth)
        var fast = [Float](repeating: .nan, count: c.channels * c.outputHeight * c.outputWidth)
        var reference = fast
        input.withPointer { x in
            fast.withMutablePointer { y in
                BilinearResize.forward(input: x, channels: c.channels, inputHeight: c.inputHeight, inputWidth: c.inputWidth,
                                       output: y, outputHeight: c.outputHeight, outputWidth: c.outputWidth)
            }
            reference.withMutablePointer { y in
                ReferenceKernels.bilinearResize(input: x, channels: c.channels, inputHeight: c.inputHeight, inputWidth: c.inputWidth,
                                                output: y, outputHeight: c.outputHeight, outputWidth: c.outputWidth)
            }
        }
        // Bilinear: two lerps across, one down, weights in [0, 1]: at most 6 roundings on a
        // term's path, each of at most max |x| ≤ 1 here: γ(6) ≈ 3.6e-7 of it, held to 1e-6.
        let e = errors(fast, reference)
        #expect(e.maxError <= 1e-6, "\(c): \(describe(e))")
    }

    @Test("accumulate + ReLU equals resize, then add, then ReLU, bit for bit", arguments: BilinearResizeTests.cases)
    func accumulatesLikeAddThenReLU(_ c: ResizeCase) {
        var rng = SeededGenerator(seed: UInt64(c.inputHeight * 100 + c.outputHeight) + 7)
        let input = rng.array(c.channels * c.inputHeight * c.inputWidth)
        let count = c.channels * c.outputHeight * c.outputWidth
        let initial = rng.array(count)
        for relu in [false, true] {
            var resized = [Float](repeating: .nan, count: count), twoPass = initial, fused = initial
            input.withPointer { x in
                resized.withMutablePointer { y in
                    BilinearResize.forward(input: x, channels: c.channels, inputHeight: c.inputHeight, inputWidth: c.inputWidth,
                                           output: y, outputHeight: c.outputHeight, outputWidth: c.outputWidth)
                }
                fused.withMutablePointer { y in
                    BilinearResize.forward(input: x, channels: c.channels, inputHeight: c.inputHeight, inputWidth: c.inputWidth,
                                           output: y, outputHeight: c.outputHeight, outputWidth: c.outputWidth,
                                           accumulate: true, relu: relu)
                }
            }
            resized.withPointer { r in
                twoPass.withMutablePointer { y in
                    Elementwise.add(r, y, into: y, count: count)
                    if relu { Elementwise.relu(y, into: y, count: count) }
                }
            }
            expectIdentical(fused, twoPass, "\(c) relu \(relu)")
        }
    }
}

@Suite struct L2NormTests {
    @Test(arguments: [(16, 5, 7), (1, 3, 3), (512, 4, 4), (64, 38, 38), (3, 1, 1)])
    func matchesReference(_ shape: (Int, Int, Int)) {
        let (c, h, w) = shape
        var rng = SeededGenerator(seed: UInt64(c * h))
        let input = rng.array(c * h * w, -3 ... 3)
        let scale = rng.array(c, 1 ... 20)
        var fast = [Float](repeating: .nan, count: c * h * w)
        var reference = fast
        input.withPointer { x in scale.withPointer { s in
            fast.withMutablePointer { y in L2Norm.forward(input: x, channels: c, height: h, width: w, scale: s, output: y) }
            reference.withMutablePointer { y in ReferenceKernels.l2Norm(input: x, channels: c, height: h, width: w, scale: s, output: y) }
        } }
        // Σ x² over c channels (γ(c + 1) relative), its square root (halves that, + u), + eps,
        // the division and × scale (3u): relative ≤ γ(c + 1)/2 + 4u of each output.
        let e = errors(fast, reference)
        let bound = (ErrorBound.gamma(c + 1) / 2 + 4 * ErrorBound.unitRoundoff) * Double(e.maxReference)
        #expect(Double(e.maxError) <= bound, "c \(c) \(h)x\(w): \(describe(e)), bound \(bound)")

        // In place gives the same answer.
        var inPlace = input
        scale.withPointer { s in
            inPlace.withMutablePointer { p in L2Norm.forward(input: p, channels: c, height: h, width: w, scale: s, output: p) }
        }
        expectIdentical(inPlace, fast, "c \(c) \(h)x\(w): in-place differs")
    }

    @Test func zeroVectorStaysFinite() {
        let input = [Float](repeating: 0, count: 8 * 4)
        let scale = [Float](repeating: 20, count: 8)
        var out = [Float](repeating: .nan, count: 8 * 4)
        input.withPointer { x in scale.withPointer { s in out.withMutablePointer { y in
            L2Norm.forward(input: x, channels: 8, height: 2, width: 2, scale: s, output: y)
        } } }
        #expect(out.allSatisfy { $0 == 0 })
    }
}
