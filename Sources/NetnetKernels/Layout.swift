/// Layout changes of batch-1 tensors.
/// Synchronous; callable from any thread, reentrant given disjoint outputs.
public enum Layout {
    /// [c, h, w] → [h*w, c] (NCHW → NHWC), densely packed (row stride = channels).
    /// `output` must not overlap `input`.
    public static func nchwToNHWC(_ input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                                  into output: UnsafeMutablePointer<Float>, team: KernelTeam = .current) {
        nchwToNHWC(input, channels: channels, height: height, width: width, into: output, rowStride: channels, team: team)
    }

    /// [c, h, w] → [h*w, c], writing position i's `channels` floats at `output + i*rowStride`
    /// (`rowStride >= channels`; the floats between rows are left untouched). Used to scatter SSD
    /// head outputs into the concatenated `[priors, k*…]` matrices. `output` must not overlap
    /// `input`.
    public static func nchwToNHWC(_ input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                                  into output: UnsafeMutablePointer<Float>, rowStride: Int, team: KernelTeam = .current) {
        require(channels >= 0 && height >= 0 && width >= 0,
                     "Layout.nchwToNHWC: invalid shape \(channels)x\(height)x\(width)")
        require(rowStride >= channels, "Layout.nchwToNHWC: rowStride \(rowStride) < channels \(channels)")
        let positions = height * width
        let tile = 32
        let positionTiles = (positions + tile - 1) / tile
        let minimumTiles = max(1, (64 * 1024) / max(1, channels * tile))
        parallelChunks(count: positionTiles, minimumChunk: minimumTiles, team: team) { range in
            for pt in range {
                let p0 = pt * tile
                let p1 = min(p0 + tile, positions)
                var c0 = 0
                while c0 < channels {
                    let c1 = min(c0 + tile, channels)
                    for p in p0 ..< p1 {
                        let d = output + p * rowStride
                        for c in c0 ..< c1 { d[c] = input[c * positions + p] }
                    }
                    c0 = c1
                }
            }
        }
    }
}
