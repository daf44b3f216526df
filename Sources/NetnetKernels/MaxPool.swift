/// Max pooling over batch-1 NCHW float32 with PyTorch's `nn.MaxPool2d` semantics: square
/// kernel, equal stride and padding in both directions, padding acts as -inf, `ceilMode` as in
/// PyTorch (a last window may hang over the right/bottom edge but must start inside the input or
/// left padding). NaN inputs are not propagated specially.
/// Synchronous; callable from any thread, reentrant given disjoint outputs.
public enum MaxPool {
    /// PyTorch's rule: `out = floor_or_ceil((in + 2p - k) / s) + 1`, and with ceil mode, if
    /// `(out-1)*s >= in + p` then `out -= 1`. Pure function.
    public static func outputSize(input: Int, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> Int {
        require(kernel >= 1 && stride >= 1 && padding >= 0,
                     "MaxPool.outputSize: invalid kernel \(kernel) stride \(stride) padding \(padding)")
        let span = input + 2 * padding - kernel
        require(span >= 0, "MaxPool.outputSize: input \(input) (padding \(padding)) smaller than kernel \(kernel)")
        var out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
        if ceilMode && (out - 1) * stride >= input + padding { out -= 1 }
        return out
    }

    /// Writes `[channels, oh, ow]` maxima of `input` `[channels, height, width]`, with
    /// `oh = outputSize(height, …)`, `ow = outputSize(width, …)`. Requires `padding <= kernel/2`
    /// (as PyTorch does). `output` must not overlap `input`.
    public static func forward(input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                               kernel: Int, stride: Int, padding: Int, ceilMode: Bool,
                               output: UnsafeMutablePointer<Float>, team: KernelTeam = .current) {
        require(channels >= 0 && height >= 1 && width >= 1,
                     "MaxPool.forward: invalid shape \(channels)x\(height)x\(width)")
        require(padding <= kernel / 2, "MaxPool.forward: padding \(padding) must be <= kernel/2 (\(kernel / 2))")
        let oh = outputSize(input: height, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        let ow = outputSize(input: width, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        let plane = height * width
        let minimumChannels = max(1, (64 * 1024) / max(1, plane))
        parallelChunks(count: channels, minimumChunk: minimumChannels, team: team) { range in
            if kernel == 2 && stride == 2 && padding == 0 {
                for c in range {
                    pool2x2(input + c * plane, height, width, output + c * oh * ow, oh, ow)
                }
                return
            }
            // Separable: per output row, the column-wise max of its input rows into a scratch row
            // (on the stack), then the row-wise max over each window of that row.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: width + 8) { scratch in
                guard let row = scratch.baseAddress else { return }
                for c in range {
                    poolSeparable(input + c * plane, height, width, kernel, stride, padding,
                                  output + c * oh * ow, oh, ow, row)
                }
            }
        }
    }

    @inline(__always)
    static func poolSeparable(_ source: UnsafePointer<Float>, _ h: Int, _ w: Int, _ k: Int, _ s: Int, _ p: Int,
                              _ destination: UnsafeMutablePointer<Float>, _ oh: Int, _ ow: Int,
                              _ row: UnsafeMutablePointer<Float>) {
        typealias V = VectorMath.V
        for oy in 0 ..< oh {
            let y0 = max(oy * s - p, 0)
            let y1 = min(oy * s - p + k, h)
            row.update(from: source + y0 * w, count: w)
            var y = y0 + 1
            while y < y1 {
                let r = source + y * w
                var x = 0
                while x + 8 <= w {
                    VectorMath.store(VectorMath.maximum(VectorMath.load(row + x), VectorMath.load(r + x)), row + x)
                    x += 8
                }
                while x < w {
                    row[x] = max(row[x], r[x])
                    x += 1
                }
                y += 1
            }
            let d = destination + oy * ow
            for ox in 0 ..< ow {
                let x0 = max(ox * s - p, 0)
                let x1 = min(ox * s - p + k, w)
                var m = row[x0]
                var x = x0 + 1
                while x < x1 {
                    m = max(m, row[x])
                    x += 1
                }
                d[ox] = m
            }
        }
    }

    /// 2×2 stride 2 no padding (VGG pools); with ceil mode the last row/column window may be
    /// clipped to one input row/column.
    @inline(__always)
    static func pool2x2(_ source: UnsafePointer<Float>, _ h: Int, _ w: Int,
                        _ destination: UnsafeMutablePointer<Float>, _ oh: Int, _ ow: Int) {
        let fullColumns = min(ow, w / 2)
        for oy in 0 ..< oh {
            let r0 = source + 2 * oy * w
            let hasSecondRow = 2 * oy + 1 < h
            let r1 = hasSecondRow ? r0 + w : r0
            let d = destination + oy * ow
            var ox = 0
            while ox + 8 <= fullColumns {  // 16 inputs of each row -> 8 outputs
                let a = UnsafeRawPointer(r0 + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
                let b = UnsafeRawPointer(r1 + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
                let m = a.replacing(with: b, where: a .< b)
                let even = m.evenHalf, odd = m.oddHalf
                VectorMath.store(even.replacing(with: odd, where: even .< odd), d + ox)
                ox += 8
            }
            while ox < fullColumns {
                d[ox] = max(max(r0[2 * ox], r0[2 * ox + 1]), max(r1[2 * ox], r1[2 * ox + 1]))
                ox += 1
            }
            if fullColumns < ow {  // ceil mode, odd width: last window holds one column
                let x = 2 * fullColumns
                d[fullColumns] = max(r0[x], r1[x])
            }
        }
    }
}
