/// SSD's L2Norm over batch-1 NCHW float32:
/// `out[c,y,x] = in[c,y,x] / (sqrt(sum_c in[c,y,x]^2) + eps) * scale[c]`.
/// Synchronous; callable from any thread, reentrant given disjoint outputs.
public enum L2Norm {
    /// Positions handled per block (the per-position norms live on the stack, no allocation).
    static let block = 256

    /// Normalises `input` `[channels, height, width]` into `output`. `output` may be the same
    /// buffer as `input` (in place) but must not otherwise overlap it.
    public static func forward(input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                               scale: UnsafePointer<Float>, eps: Float = 1e-10,
                               output: UnsafeMutablePointer<Float>, team: KernelTeam = .current) {
        require(channels >= 1 && height >= 1 && width >= 1,
                     "L2Norm.forward: invalid shape \(channels)x\(height)x\(width)")
        let plane = height * width
        let blocks = (plane + block - 1) / block
        let minimumBlocks = max(1, (64 * 1024) / max(1, channels * block))
        parallelChunks(count: blocks, minimumChunk: minimumBlocks, team: team) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { norms in
                guard let inv = norms.baseAddress else { return }
                for b in range {
                    let start = b * block
                    let n = min(block, plane - start)
                    inv.update(repeating: 0, count: n)
                    for c in 0 ..< channels {
                        let x = input + c * plane + start
                        for i in 0 ..< n { inv[i] += x[i] * x[i] }
                    }
                    for i in 0 ..< n { inv[i] = 1 / (inv[i].squareRoot() + eps) }
                    for c in 0 ..< channels {
                        let x = input + c * plane + start
                        let y = output + c * plane + start
                        let s = scale[c]
                        for i in 0 ..< n { y[i] = x[i] * inv[i] * s }
                    }
                }
            }
        }
    }
}
