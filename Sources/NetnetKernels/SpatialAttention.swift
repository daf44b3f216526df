import Foundation

/// Dot-product attention between two NCHW maps' positions, the core of NETNet's "Global
/// Attention" erasing gate (a simplified non-local block): for each query position i,
/// out[c, i] = Σ_j softmax_j(scale · Σ_r query[r, i] · key[r, j]) · value[c, j].
/// Synchronous; any thread (the GEMMs use OpenBLAS's threads).
public enum SpatialAttention {
    /// Floats of `workspace` the forward pass needs: the queries × keys weights.
    public static func workspaceCount(queries: Int, keys: Int) -> Int { queries * keys }

    /// query `[inner × queries]`, key `[inner × keys]`, value `[channels × keys]` (planes of
    /// positions, as NCHW maps are), output `[channels × queries]`; `workspace` holds at least
    /// `workspaceCount` floats. The output must not alias an input.
    public static func forward(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                               inner: Int, channels: Int, queries: Int, keys: Int, scale: Float,
                               workspace: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>) {
        require(inner > 0 && channels > 0 && queries > 0 && keys > 0, "SpatialAttention: empty shape")
        // weights[i, j] = scale · q[:, i] · k[:, j]
        GEMM.multiply(transposeA: true, m: queries, n: keys, k: inner, alpha: scale,
                      a: query, lda: queries, b: key, ldb: keys, c: workspace, ldc: keys)
        for i in 0..<queries {
            let row = workspace + i * keys
            var largest = -Float.infinity
            for j in 0..<keys { largest = max(largest, row[j]) }
            var sum: Float = 0
            for j in 0..<keys {
                let e = Foundation.exp(row[j] - largest)
                row[j] = e
                sum += e
            }
            let inverse = 1 / sum
            for j in 0..<keys { row[j] *= inverse }
        }
        // out[c, i] = Σ_j v[c, j] · weights[i, j]
        GEMM.multiply(transposeB: true, m: channels, n: queries, k: keys,
                      a: value, lda: keys, b: workspace, ldb: keys, c: output, ldc: queries)
    }
}

extension ReferenceKernels {
    /// The twin of `SpatialAttention.forward`: the same formula position by position in double.
    public static func spatialAttention(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                                        inner: Int, channels: Int, queries: Int, keys: Int, scale: Float,
                                        output: UnsafeMutablePointer<Float>) {
        var weights = [Double](repeating: 0, count: keys)
        for i in 0..<queries {
            for j in 0..<keys {
                var dot = 0.0
                for r in 0..<inner { dot += Double(query[r * queries + i]) * Double(key[r * keys + j]) }
                weights[j] = Double(scale) * dot
            }
            let largest = weights.max()!
            var sum = 0.0
            for j in 0..<keys { weights[j] = exp(weights[j] - largest); sum += weights[j] }
            for c in 0..<channels {
                var acc = 0.0
                for j in 0..<keys { acc += weights[j] / sum * Double(value[c * keys + j]) }
                output[c * queries + i] = Float(acc)
            }
        }
    }
}
