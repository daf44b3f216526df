/// Element-wise ops over `count` contiguous floats. An output may alias (be the same pointer as)
/// an input; partial overlap is not allowed. Large counts are split over `team`.
/// Synchronous; callable from any thread, reentrant given disjoint outputs.
public enum Elementwise {
    /// Floats per thread below which an op stays on the calling thread.
    static let minimumChunk = 64 * 1024

    /// out = a + b.
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, team: KernelTeam = .current) {
        require(count >= 0, "Elementwise.add: negative count \(count)")
        parallelChunks(count: count, minimumChunk: minimumChunk, team: team) { r in
            for i in r { out[i] = a[i] + b[i] }
        }
    }

    /// out = max(x, 0).
    public static func relu(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, team: KernelTeam = .current) {
        require(count >= 0, "Elementwise.relu: negative count \(count)")
        parallelChunks(count: count, minimumChunk: minimumChunk, team: team) { r in
            for i in r { out[i] = max(x[i], 0) }
        }
    }

    /// out = 1 / (1 + exp(-x)), vectorised exp; absolute error below 1e-6.
    public static func sigmoid(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, team: KernelTeam = .current) {
        require(count >= 0, "Elementwise.sigmoid: negative count \(count)")
        parallelChunks(count: count, minimumChunk: minimumChunk / 4, team: team) { r in
            typealias V = VectorMath.V
            let one = V(repeating: 1)
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                let v = VectorMath.load(x + i)
                VectorMath.store(one / (one + VectorMath.exp(-v)), out + i)
                i += 8
            }
            let rest = r.upperBound - i
            if rest > 0 {
                let v = VectorMath.loadPartial(x + i, rest, fill: 0)
                VectorMath.storePartial(one / (one + VectorMath.exp(-v)), out + i, rest)
            }
        }
    }

    /// NETNet's Neighbor Erasing with the gate's sigmoid fused in, one pass instead of two:
    /// g = sigmoid(gateLogits), erased = p*g, kept = p − erased. Either output may be nil; each
    /// may alias `feature` or `gateLogits`, but not each other. Equals `sigmoid` followed by
    /// `gateErase` bit for bit (same exp, same operation order).
    public static func sigmoidGateErase(feature: UnsafePointer<Float>, gateLogits: UnsafePointer<Float>,
                                        erased: UnsafeMutablePointer<Float>?, kept: UnsafeMutablePointer<Float>?,
                                        count: Int, team: KernelTeam = .current) {
        require(count >= 0, "Elementwise.sigmoidGateErase: negative count \(count)")
        parallelChunks(count: count, minimumChunk: minimumChunk / 4, team: team) { r in
            typealias V = VectorMath.V
            let one = V(repeating: 1)
            var i = r.lowerBound
            while i < r.upperBound {
                let n = min(8, r.upperBound - i)
                let x = n == 8 ? VectorMath.load(gateLogits + i) : VectorMath.loadPartial(gateLogits + i, n, fill: 0)
                let p = n == 8 ? VectorMath.load(feature + i) : VectorMath.loadPartial(feature + i, n, fill: 0)
                let pe = p * (one / (one + VectorMath.exp(-x)))
                if let erased { n == 8 ? VectorMath.store(pe, erased + i) : VectorMath.storePartial(pe, erased + i, n) }
                if let kept { n == 8 ? VectorMath.store(p - pe, kept + i) : VectorMath.storePartial(p - pe, kept + i, n) }
                i += 8
            }
        }
    }

    /// NETNet's Neighbor Erasing: given feature p and gate g (already sigmoid'ed):
    /// erased = p*g, kept = p - erased. Either output may be nil (not needed); each may alias
    /// `feature` or `gate`, but not each other.
    public static func gateErase(feature: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                 erased: UnsafeMutablePointer<Float>?, kept: UnsafeMutablePointer<Float>?, count: Int, team: KernelTeam = .current) {
        require(count >= 0, "Elementwise.gateErase: negative count \(count)")
        parallelChunks(count: count, minimumChunk: minimumChunk, team: team) { r in
            switch (erased, kept) {
            case let (e?, k?):
                for i in r {
                    let p = feature[i]
                    let pe = p * gate[i]
                    e[i] = pe
                    k[i] = p - pe
                }
            case let (e?, nil):
                for i in r { e[i] = feature[i] * gate[i] }
            case let (nil, k?):
                for i in r {
                    let p = feature[i]
                    k[i] = p - p * gate[i]
                }
            case (nil, nil):
                break
            }
        }
    }

    /// out = x (a no-op when they are the same pointer).
    public static func copy(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, team: KernelTeam = .current) {
        require(count >= 0, "Elementwise.copy: negative count \(count)")
        if UnsafePointer(out) == x { return }
        parallelChunks(count: count, minimumChunk: 4 * minimumChunk, team: team) { r in
            (out + r.lowerBound).update(from: x + r.lowerBound, count: r.count)
        }
    }
}

/// Row-wise softmax over a row-major `[rows, columns]` matrix, numerically stable (subtracts the
/// row max), vectorised exp (relative error ~1e-7).
/// Synchronous; callable from any thread, reentrant given disjoint outputs.
public enum Softmax {
    /// output[r, :] = softmax(input[r, :]). `output` may be the same pointer as `input`.
    public static func rows(_ input: UnsafePointer<Float>, rows: Int, columns: Int, into output: UnsafeMutablePointer<Float>, team: KernelTeam = .current) {
        require(rows >= 0 && columns >= 1, "Softmax.rows: invalid shape \(rows)x\(columns)")
        let minimumRows = max(1, (32 * 1024) / columns)
        parallelChunks(count: rows, minimumChunk: minimumRows, team: team) { range in
            typealias V = VectorMath.V
            let full = columns & ~7
            let rest = columns - full
            for row in range {
                let x = input + row * columns
                let y = output + row * columns
                var vmax = V(repeating: -.infinity)
                var j = 0
                while j < full { vmax = VectorMath.maximum(vmax, VectorMath.load(x + j)); j += 8 }
                var m = VectorMath.horizontalMaximum(vmax)
                for t in full ..< columns { m = max(m, x[t]) }
                let vm = V(repeating: m)
                var vsum = V(repeating: 0)
                j = 0
                while j < full {
                    let e = VectorMath.exp(VectorMath.load(x + j) - vm)
                    VectorMath.store(e, y + j)
                    vsum += e
                    j += 8
                }
                var sum = VectorMath.horizontalSum(vsum)
                if rest > 0 {
                    let e = VectorMath.exp(VectorMath.loadPartial(x + full, rest, fill: m) - vm)
                    for t in 0 ..< rest { sum += e[t] }
                    VectorMath.storePartial(e, y + full, rest)
                }
                let inv = 1 / sum
                for t in 0 ..< columns { y[t] *= inv }
            }
        }
    }
}

/// A reduction over the channels of an NCHW map (NETNet's one-channel erasing gates, the
/// paper's Eq. 5). Value type.
public enum ChannelReduction: String, Sendable, Hashable {
    /// The largest value over the channels.
    case max
    /// The mean over the channels (summed in channel order, then divided).
    case mean
}

extension Elementwise {
    /// output[i] = max or mean over c of input[c · count + i], for i < count: `channels` planes
    /// of `count` floats into one plane. The output must not alias the input. Positions are
    /// split over `team`; each position's channels are visited in order, so the result does not
    /// depend on the split. Synchronous; any thread.
    public static func reduceChannels(_ input: UnsafePointer<Float>, channels: Int, count: Int, _ reduction: ChannelReduction,
                                      into output: UnsafeMutablePointer<Float>, team: KernelTeam = .current) {
        require(channels > 0 && count >= 0, "Elementwise.reduceChannels: \(channels) channels, count \(count)")
        parallelChunks(count: count, minimumChunk: max(1024, minimumChunk / channels), team: team) { r in
            let n = r.count
            guard n > 0 else { return }
            let out = output + r.lowerBound
            Elementwise.copy(input + r.lowerBound, into: out, count: n, team: .single)
            for c in 1..<max(channels, 1) {
                let plane = input + c * count + r.lowerBound
                switch reduction {
                case .max: for i in 0..<n where plane[i] > out[i] || plane[i].isNaN { out[i] = plane[i] }
                case .mean: for i in 0..<n { out[i] += plane[i] }
                }
            }
            if reduction == .mean {
                let divisor = Float(channels)
                for i in 0..<n { out[i] /= divisor }
            }
        }
    }

    /// Copies one plane of `count` floats into each of `channels` planes of `output`. Synchronous; any thread.
    public static func broadcastPlane(_ plane: UnsafePointer<Float>, count: Int, channels: Int,
                                      into output: UnsafeMutablePointer<Float>, team: KernelTeam = .current) {
        require(channels >= 0 && count >= 0, "Elementwise.broadcastPlane: \(channels) channels, count \(count)")
        for c in 0..<channels { copy(plane, into: output + c * count, count: count, team: team) }
    }
}
