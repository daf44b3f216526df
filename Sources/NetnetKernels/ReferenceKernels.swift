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
}
