/// Bilinear resize of batch-1 NCHW float32, exactly PyTorch's
/// `F.interpolate(size=(oh, ow), mode="bilinear", align_corners=False)`: `scale = in/out`,
/// `src = max(0, (dst + 0.5) * scale - 0.5)`, `i0 = floor(src)`, `i1 = min(i0 + 1, in - 1)`,
/// `lambda = src - i0`, computed in float like PyTorch's CPU kernel. Works for up- and
/// down-sampling (no antialiasing, as PyTorch's default).
/// Synchronous; callable from any thread, reentrant given disjoint outputs.
public enum BilinearResize {
    /// Index pair and weights for one output coordinate.
    @inline(__always)
    static func taps(_ dst: Int, scale: Float, inputSize: Int) -> (i0: Int, i1: Int, w0: Float, w1: Float) {
        let src = max(0, (Float(dst) + 0.5) * scale - 0.5)
        let i0 = min(Int(src), inputSize - 1)  // src >= 0, so truncation is floor
        let lambda = min(max(src - Float(i0), 0), 1)
        let i1 = i0 < inputSize - 1 ? i0 + 1 : i0
        return (i0, i1, 1 - lambda, lambda)
    }

    /// Resizes `input` `[channels, inputHeight, inputWidth]` to `output`
    /// `[channels, outputHeight, outputWidth]`; with `accumulate`, adds the resized values to what
    /// `output` holds instead (NNFM's sums, one pass instead of resize-then-add; the same bits as
    /// `Elementwise.add`), then ReLU if `relu`. `output` must not overlap `input`.
    public static func forward(input: UnsafePointer<Float>, channels: Int, inputHeight: Int, inputWidth: Int,
                               output: UnsafeMutablePointer<Float>, outputHeight: Int, outputWidth: Int,
                               accumulate: Bool = false, relu: Bool = false, team: KernelTeam = .current) {
        require(channels >= 0 && inputHeight >= 1 && inputWidth >= 1 && outputHeight >= 1 && outputWidth >= 1,
                     "BilinearResize.forward: invalid sizes \(channels)x\(inputHeight)x\(inputWidth) -> \(outputHeight)x\(outputWidth)")
        let scaleY = Float(inputHeight) / Float(outputHeight)
        let scaleX = Float(inputWidth) / Float(outputWidth)
        let inPlane = inputHeight * inputWidth
        let outPlane = outputHeight * outputWidth
        let minimumChannels = max(1, (32 * 1024) / max(1, outPlane))
        parallelChunks(count: channels, minimumChunk: minimumChannels, team: team) { range in
            // Stack scratch: horizontal taps (indices and weights) and two horizontally
            // interpolated input rows. Each input row is interpolated along x once and reused by
            // every output row that reads it; the arithmetic (and so the rounding) is exactly
            // `(r0[x0]*wx0 + r0[x1]*wx1) * wy0 + (r1[x0]*wx0 + r1[x1]*wx1) * wy1`, as PyTorch.
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * outputWidth) { indices in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * outputWidth) { floats in
                    guard let xi = indices.baseAddress, let scratch = floats.baseAddress else { return }
                    let xw = scratch
                    for ox in 0 ..< outputWidth {
                        let t = taps(ox, scale: scaleX, inputSize: inputWidth)
                        xi[2 * ox] = t.i0; xi[2 * ox + 1] = t.i1
                        xw[2 * ox] = t.w0; xw[2 * ox + 1] = t.w1
                    }
                    var lo = scratch + 2 * outputWidth
                    var hi = scratch + 3 * outputWidth
                    @inline(__always)
                    func interpolateRow(_ r: UnsafePointer<Float>, into d: UnsafeMutablePointer<Float>) {
                        for ox in 0 ..< outputWidth {
                            d[ox] = r[xi[2 * ox]] * xw[2 * ox] + r[xi[2 * ox + 1]] * xw[2 * ox + 1]
                        }
                    }
                    for c in range {
                        let source = input + c * inPlane
                        let destination = output + c * outPlane
                        var loIndex = -1, hiIndex = -1
                        for oy in 0 ..< outputHeight {
                            let ty = taps(oy, scale: scaleY, inputSize: inputHeight)
                            if loIndex != ty.i0 {
                                if hiIndex == ty.i0 {
                                    swap(&lo, &hi)
                                    swap(&loIndex, &hiIndex)
                                } else {
                                    interpolateRow(source + ty.i0 * inputWidth, into: lo)
                                    loIndex = ty.i0
                                }
                            }
                            var bottom = lo
                            if ty.i1 != ty.i0 {
                                if hiIndex != ty.i1 {
                                    interpolateRow(source + ty.i1 * inputWidth, into: hi)
                                    hiIndex = ty.i1
                                }
                                bottom = hi
                            }
                            let top = lo
                            let d = destination + oy * outputWidth
                            let w0 = ty.w0, w1 = ty.w1
                            switch (accumulate, relu) {
                            case (false, false):
                                for ox in 0 ..< outputWidth { d[ox] = top[ox] * w0 + bottom[ox] * w1 }
                            case (false, true):
                                for ox in 0 ..< outputWidth { d[ox] = max(top[ox] * w0 + bottom[ox] * w1, 0) }
                            case (true, false):
                                for ox in 0 ..< outputWidth { d[ox] = (top[ox] * w0 + bottom[ox] * w1) + d[ox] }
                            case (true, true):
                                for ox in 0 ..< outputWidth { d[ox] = max((top[ox] * w0 + bottom[ox] * w1) + d[ox], 0) }
                            }
                        }
                    }
                }
            }
        }
    }
}
