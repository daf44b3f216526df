import Foundation
import NetnetKernels

/// The arithmetic a `Detector` runs its convolutions in. A plain value; usable from any thread.
public enum Precision: String, Sendable, CaseIterable {
    /// float32 throughout (the default).
    case fp32
    /// Convolution weights and the GEMMs' activation operand rounded to bfloat16, products
    /// accumulated in float32 by oneDNN's matmul; feature maps, the NETM/NNFM element-wise work
    /// and post-processing stay float32. Needs AVX512_BF16 or AMX (`OneDNNRuntime.checkBF16Support`).
    case bf16

    /// `NETNET_PRECISION` (`fp32` or `bf16`) if set, else `.fp32`. Traps on any other value rather
    /// than silently running the wrong arithmetic. Callable from any thread.
    public static var fromEnvironment: Precision {
        guard let raw = ProcessInfo.processInfo.environment["NETNET_PRECISION"], !raw.isEmpty else { return .fp32 }
        guard let value = Precision(rawValue: raw) else {
            fatalError("NETNET_PRECISION must be fp32 or bf16, not '\(raw)'")
        }
        return value
    }
}

/// Which library runs a `Detector`'s GEMMs. A plain value; usable from any thread.
public enum GEMMLibrary: String, Sendable, CaseIterable {
    /// OpenBLAS's `cblas_sgemm` (fp32 only), the engine's kernel loops on Dispatch threads.
    case openblas
    /// oneDNN's matmul (fp32 or bf16 operands), the engine's kernel loops on the same OpenMP
    /// threads as oneDNN's.
    case onednn

    /// `NETNET_GEMM` if set, else nil (the precision's default). Traps on an unknown value.
    /// Callable from any thread.
    public static var fromEnvironment: GEMMLibrary? {
        guard let raw = ProcessInfo.processInfo.environment["NETNET_GEMM"], !raw.isEmpty else { return nil }
        guard let value = GEMMLibrary(rawValue: raw) else {
            fatalError("NETNET_GEMM must be openblas or onednn, not '\(raw)'")
        }
        return value
    }

    /// The library `precision` runs on by default: oneDNN for both. bf16 has no other here; for
    /// fp32 oneDNN measured 222–234 ms a frame against OpenBLAS's 298–363 on full-width NETNet-300
    /// (`netnet bench --gemm …`, 3 alternating rounds, 2-core Zen 4; docs/performance.md): its
    /// brgemm kernels are no faster than sgemm, but the engine's own loops then share oneDNN's
    /// OpenMP threads instead of fighting OpenBLAS's spinning ones.
    public static func defaultFor(_ precision: Precision) -> GEMMLibrary {
        .onednn
    }
}
