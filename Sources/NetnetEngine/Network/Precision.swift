import Foundation
import NetnetKernels

/// The arithmetic a `Detector` runs its convolutions in. A plain value; usable from any thread.
public enum Precision: String, Sendable, CaseIterable {
    /// float32 throughout, GEMMs on OpenBLAS (the default).
    case fp32
    /// Convolution weights and the GEMMs' activation operand rounded to bfloat16, products
    /// accumulated in float32 by oneDNN's matmul; feature maps, the NETM/NNFM element-wise work
    /// and post-processing stay float32. Needs AVX512_BF16 or AMX (`BF16Runtime.checkSupport`).
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
