import Foundation
import NetnetKernels

/// The arithmetic a `Detector` runs its convolutions in. A plain value; usable from any thread.
/// The engine reads no environment variable: callers pass the value (the CLI's `--precision`,
/// the daemon's `precision` key).
public enum Precision: String, Sendable, CaseIterable {
    /// float32 throughout (the default).
    case fp32
    /// Convolution weights and the GEMMs' activation operand rounded to bfloat16, products
    /// accumulated in float32 by oneDNN's matmul; feature maps, the NETM/NNFM element-wise work
    /// and post-processing stay float32. Needs AVX512_BF16 or AMX (`OneDNNRuntime.checkBF16Support`).
    case bf16
}

/// Which library runs a `Detector`'s GEMMs. A plain value; usable from any thread.
public enum GEMMLibrary: String, Sendable, CaseIterable {
    /// OpenBLAS's `cblas_sgemm` (fp32 only), the engine's kernel loops on Dispatch threads.
    case openblas
    /// oneDNN's matmul (fp32 or bf16 operands), the engine's kernel loops on the same OpenMP
    /// threads as oneDNN's.
    case onednn

    /// The library `precision` runs on by default: oneDNN for both. bf16 has no other here; for
    /// fp32 oneDNN measured 222–234 ms a frame against OpenBLAS's 298–363 on full-width NETNet-300
    /// (`netnet bench --gemm …`, 3 alternating rounds, 2-core Zen 4; docs/performance.md): its
    /// brgemm kernels are no faster than sgemm, but the engine's own loops then share oneDNN's
    /// OpenMP threads instead of fighting OpenBLAS's spinning ones.
    public static func defaultFor(_ precision: Precision) -> GEMMLibrary {
        .onednn
    }
}
