#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Plain, obviously-correct twins of the fast kernels (direct loops, no BLAS, no tiling, no
/// threads, double accumulation where it matters), for tests. Same argument meaning as the fast
/// versions. Slow: never use them in the engine. Synchronous; callable from any thread.
public enum ReferenceKernels {
    /// Direct 7-loop convolution: output = [output +] conv + bias, then ReLU; double accumulator.
    public static func convolution(geometry g: ConvolutionGeometry,
                                   input: UnsafePointer<Float>, inputHeight h: Int, inputWidth w: Int,
                                   weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                   output: UnsafeMutablePointer<Float>,
                                   relu: Bool, accumulate: Bool) {
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        require(g.isValid && oh >= 1 && ow >= 1, "ReferenceKernels.convolution: bad geometry/size")
        for o in 0 ..< g.outputChannels {
            for oy in 0 ..< oh {
                for ox in 0 ..< ow {
                    var sum = 0.0
                    for c in 0 ..< g.inputChannels {
                        for ky in 0 ..< g.kernelHeight {
                            let iy = oy * g.strideY - g.padY + ky * g.dilationY
                            if iy < 0 || iy >= h { continue }
                            for kx in 0 ..< g.kernelWidth {
                                let ix = ox * g.strideX - g.padX + kx * g.dilationX
                                if ix < 0 || ix >= w { continue }
                                let wi = ((o * g.inputChannels + c) * g.kernelHeight + ky) * g.kernelWidth + kx
                                sum += Double(weights[wi]) * Double(input[(c * h + iy) * w + ix])
                            }
                        }
                    }
                    let index = (o * oh + oy) * ow + ox
                    if accumulate { sum += Double(output[index]) }
                    if let bias { sum += Double(bias[o]) }
                    if relu { sum = max(sum, 0) }
                    output[index] = Float(sum)
                }
            }
        }
    }

    /// Max pooling with -inf padding, PyTorch output size (`MaxPool.outputSize`).
    public static func maxPool(input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                               kernel: Int, stride: Int, padding: Int, ceilMode: Bool,
                               output: UnsafeMutablePointer<Float>) {
        let oh = MaxPool.outputSize(input: height, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        let ow = MaxPool.outputSize(input: width, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        for c in 0 ..< channels {
            for oy in 0 ..< oh {
                for ox in 0 ..< ow {
                    var m = -Float.infinity
                    for ky in 0 ..< kernel {
                        for kx in 0 ..< kernel {
                            let y = oy * stride - padding + ky
                            let x = ox * stride - padding + kx
                            if y >= 0 && y < height && x >= 0 && x < width {
                                m = max(m, input[(c * height + y) * width + x])
                            }
                        }
                    }
                    output[(c * oh + oy) * ow + ox] = m
                }
            }
        }
    }

    /// out = in / (sqrt(sum_c in^2) + eps) * scale[c], sums in double.
    public static func l2Norm(input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                              scale: UnsafePointer<Float>, eps: Float = 1e-10,
                              output: UnsafeMutablePointer<Float>) {
        let plane = height * width
        for i in 0 ..< plane {
            var s = 0.0
            for c in 0 ..< channels { s += Double(input[c * plane + i]) * Double(input[c * plane + i]) }
            let norm = s.squareRoot() + Double(eps)
            for c in 0 ..< channels {
                output[c * plane + i] = Float(Double(input[c * plane + i]) / norm * Double(scale[c]))
            }
        }
    }

    /// PyTorch bilinear, align_corners = false, written out per output element in float.
    public static func bilinearResize(input: UnsafePointer<Float>, channels: Int, inputHeight: Int, inputWidth: Int,
                                      output: UnsafeMutablePointer<Float>, outputHeight: Int, outputWidth: Int) {
        let sy = Float(inputHeight) / Float(outputHeight)
        let sx = Float(inputWidth) / Float(outputWidth)
        for c in 0 ..< channels {
            for oy in 0 ..< outputHeight {
                let fy = max(0, (Float(oy) + 0.5) * sy - 0.5)
                let y0 = min(Int(fy.rounded(.down)), inputHeight - 1)
                let y1 = min(y0 + 1, inputHeight - 1)
                let ly = fy - Float(y0)
                for ox in 0 ..< outputWidth {
                    let fx = max(0, (Float(ox) + 0.5) * sx - 0.5)
                    let x0 = min(Int(fx.rounded(.down)), inputWidth - 1)
                    let x1 = min(x0 + 1, inputWidth - 1)
                    let lx = fx - Float(x0)
                    func at(_ y: Int, _ x: Int) -> Float { input[(c * inputHeight + y) * inputWidth + x] }
                    let top = at(y0, x0) * (1 - lx) + at(y0, x1) * lx
                    let bottom = at(y1, x0) * (1 - lx) + at(y1, x1) * lx
                    output[(c * outputHeight + oy) * outputWidth + ox] = top * (1 - ly) + bottom * ly
                }
            }
        }
    }

    /// out = 1 / (1 + exp(-x)) in double.
    public static func sigmoid(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0 ..< count { out[i] = Float(1 / (1 + exp(-Double(x[i])))) }
    }

    /// Row-wise stable softmax in double.
    public static func softmax(_ input: UnsafePointer<Float>, rows: Int, columns: Int, into output: UnsafeMutablePointer<Float>) {
        for r in 0 ..< rows {
            var m = -Double.infinity
            for j in 0 ..< columns { m = max(m, Double(input[r * columns + j])) }
            var s = 0.0
            for j in 0 ..< columns { s += exp(Double(input[r * columns + j]) - m) }
            for j in 0 ..< columns { output[r * columns + j] = Float(exp(Double(input[r * columns + j]) - m) / s) }
        }
    }

    /// out[i*c + c'] = in[c'*h*w + i] (dense NHWC).
    public static func nchwToNHWC(_ input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                                  into output: UnsafeMutablePointer<Float>) {
        nchwToNHWC(input, channels: channels, height: height, width: width, into: output, rowStride: channels)
    }

    /// out[i*rowStride + c] = in[c*h*w + i].
    public static func nchwToNHWC(_ input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                                  into output: UnsafeMutablePointer<Float>, rowStride: Int) {
        for c in 0 ..< channels {
            for i in 0 ..< height * width { output[i * rowStride + c] = input[c * height * width + i] }
        }
    }

    /// g = sigmoid(logits) (the plain twin's own sigmoid), then `gateErase`.
    public static func sigmoidGateErase(feature: UnsafePointer<Float>, gateLogits: UnsafePointer<Float>,
                                        erased: UnsafeMutablePointer<Float>?, kept: UnsafeMutablePointer<Float>?, count: Int) {
        let gate = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        defer { gate.deallocate() }
        sigmoid(gateLogits, into: gate, count: count)
        gateErase(feature: feature, gate: gate, erased: erased, kept: kept, count: count)
    }

    /// output[i] = max or mean over the channels of input[c · count + i] (the twin of
    /// `Elementwise.reduceChannels`): one position at a time, its channels in order.
    public static func reduceChannels(_ input: UnsafePointer<Float>, channels: Int, count: Int, _ reduction: ChannelReduction,
                                      into output: UnsafeMutablePointer<Float>) {
        for i in 0 ..< count {
            var value = input[i]
            for c in 1 ..< max(channels, 1) {
                let x = input[c * count + i]
                switch reduction {
                case .max: if x > value || x.isNaN { value = x }
                case .mean: value += x
                }
            }
            output[i] = reduction == .mean ? value / Float(channels) : value
        }
    }

    /// erased = p*g, kept = p - p*g.
    public static func gateErase(feature: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                 erased: UnsafeMutablePointer<Float>?, kept: UnsafeMutablePointer<Float>?, count: Int) {
        for i in 0 ..< count {
            let e = feature[i] * gate[i]
            erased?[i] = e
            kept?[i] = feature[i] - e
        }
    }

    /// out = a + b.
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0 ..< count { out[i] = a[i] + b[i] }
    }

    /// out = max(x, 0).
    public static func relu(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0 ..< count { out[i] = x[i] > 0 ? x[i] : 0 }
    }

    /// The matrices of Winograd F(4×4, 3×3) with interpolation points 0, ±1, ±2, ∞: input
    /// transform Bᵀ (6×6), filter transform G (6×3), output transform Aᵀ (4×6). The fast
    /// kernels hard-code the same numbers; tests derive their error bounds from them.
    public enum WinogradMatrices {
        public static let bt: [[Double]] = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                                            [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        public static let g: [[Double]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                                           [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        public static let at: [[Double]] = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    }

    /// Textbook Winograd F(4×4, 3×3) for a 3×3, stride-1, dilation-1 convolution, one tile and
    /// one (out, in) pair at a time with the matrices written out: U = G g Gᵀ (double, rounded
    /// to float, as `Winograd.transformWeights`), V = Bᵀ d B and Y = Aᵀ (Σ_in U ⊙ V) A in float,
    /// so it rounds like the fast kernel (no BLAS, no chunking, no threads). Then [+ output],
    /// + bias, ReLU. The twin of `Winograd.forward`; compare both with `convolution` for the error
    /// the algorithm itself adds.
    public static func winogradConvolution(geometry g: ConvolutionGeometry,
                                           input: UnsafePointer<Float>, inputHeight h: Int, inputWidth w: Int,
                                           weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                           output: UnsafeMutablePointer<Float>,
                                           relu: Bool, accumulate: Bool, roundingToBFloat16: Bool = false) {
        require(Winograd.isEligible(g), "ReferenceKernels.winogradConvolution: not 3x3 stride 1 dilation 1")
        // The bf16 path rounds the two GEMM operands, U and V, and nothing else.
        let operand: (Float) -> Float = roundingToBFloat16 ? { BFloat16.toFloat(bfloat16($0)) } : { $0 }
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        require(oh >= 1 && ow >= 1, "ReferenceKernels.winogradConvolution: input too small")
        let bt = WinogradMatrices.bt.map { $0.map(Float.init) }, gm = WinogradMatrices.g
        let at = WinogradMatrices.at.map { $0.map(Float.init) }
        let cin = g.inputChannels, cout = g.outputChannels
        // U[o][c][i][j]
        var u = [Float](repeating: 0, count: cout * cin * 36)
        for o in 0 ..< cout {
            for c in 0 ..< cin {
                for i in 0 ..< 6 {
                    for j in 0 ..< 6 {
                        var sum = 0.0
                        for a in 0 ..< 3 {
                            for b in 0 ..< 3 {
                                sum += gm[i][a] * Double(weights[((o * cin + c) * 3 + a) * 3 + b]) * gm[j][b]
                            }
                        }
                        u[((o * cin + c) * 6 + i) * 6 + j] = operand(Float(sum))
                    }
                }
            }
        }
        var v = [Float](repeating: 0, count: cin * 36)
        var d = [Float](repeating: 0, count: 36)
        var t = [Float](repeating: 0, count: 36)
        for ty in 0 ..< (oh + 3) / 4 {
            for tx in 0 ..< (ow + 3) / 4 {
                for c in 0 ..< cin {
                    for k in 0 ..< 6 {
                        for l in 0 ..< 6 {
                            let y = 4 * ty - g.padY + k, x = 4 * tx - g.padX + l
                            d[k * 6 + l] = (y >= 0 && y < h && x >= 0 && x < w) ? input[(c * h + y) * w + x] : 0
                        }
                    }
                    for i in 0 ..< 6 {
                        for l in 0 ..< 6 {
                            var s: Float = 0
                            for k in 0 ..< 6 { s += bt[i][k] * d[k * 6 + l] }
                            t[i * 6 + l] = s
                        }
                    }
                    for i in 0 ..< 6 {
                        for j in 0 ..< 6 {
                            var s: Float = 0
                            for l in 0 ..< 6 { s += t[i * 6 + l] * bt[j][l] }
                            v[c * 36 + i * 6 + j] = operand(s)
                        }
                    }
                }
                for o in 0 ..< cout {
                    var m = [Float](repeating: 0, count: 36)
                    for c in 0 ..< cin {
                        for e in 0 ..< 36 { m[e] += u[(o * cin + c) * 36 + e] * v[c * 36 + e] }
                    }
                    for r in 0 ..< 4 {
                        for s in 0 ..< 4 {
                            let y = 4 * ty + r, x = 4 * tx + s
                            if y >= oh || x >= ow { continue }
                            var value: Float = 0
                            for i in 0 ..< 6 {
                                for j in 0 ..< 6 { value += at[r][i] * m[i * 6 + j] * at[s][j] }
                            }
                            let index = (o * oh + y) * ow + x
                            if accumulate { value += output[index] }
                            if let bias { value += bias[o] }
                            output[index] = relu ? max(value, 0) : value
                        }
                    }
                }
            }
        }
    }
}

extension ReferenceKernels {
    /// The bf16 nearest to `value`, ties to even, found the slow way: the two bf16 values around
    /// it (truncated, and one step further from zero), compared in double. NaN → quiet NaN.
    public static func bfloat16(_ value: Float) -> UInt16 {
        if value.isNaN { return UInt16(value.bitPattern >> 16) | 0x0040 }
        let truncated = UInt16(value.bitPattern >> 16)
        let lower = Double(Float(bitPattern: UInt32(truncated) << 16))
        let upperBits = truncated &+ 1
        // One step past the largest finite bf16 is infinity; IEEE rounding measures the distance
        // to it as if it were the next power of two (2^128), so values past the midpoint overflow.
        let upper = upperBits & 0x7FFF == 0x7F80
            ? (value < 0 ? -0x1p128 : 0x1p128)
            : Double(Float(bitPattern: UInt32(upperBits) << 16))
        let exact = Double(value)
        let toLower = abs(exact - lower), toUpper = abs(upper - exact)
        if toLower < toUpper { return truncated }
        if toUpper < toLower { return upperBits }
        return truncated & 1 == 0 ? truncated : upperBits
    }
}
