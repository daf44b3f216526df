import Foundation
import NetnetKernels

/// Which convolution kernel a `Detector` runs for its 3×3 stride-1 layers. A plain value; usable
/// from any thread.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Winograd where `prefersWinograd` says it pays (faster on the project's 2-core machine, and
    /// worth its 4× filter memory), im2col elsewhere.
    case auto
    /// im2col + sgemm everywhere (the pre-Winograd engine).
    case im2col
    /// Winograd F(4×4, 3×3) for every eligible layer (3×3, stride 1, dilation 1), im2col for the rest.
    case winograd

    /// `NETNET_CONV` (`auto`, `im2col` or `winograd`) if set, else `.auto`. Traps on any other
    /// value rather than silently benchmarking the wrong kernel. Callable from any thread.
    public static var fromEnvironment: ConvolutionAlgorithm {
        guard let raw = ProcessInfo.processInfo.environment["NETNET_CONV"], !raw.isEmpty else { return .auto }
        guard let value = ConvolutionAlgorithm(rawValue: raw) else {
            fatalError("NETNET_CONV must be auto, im2col or winograd, not '\(raw)'")
        }
        return value
    }

    /// Whether this choice runs `geometry` at `inputHeight` × `inputWidth` with Winograd.
    /// Pure; callable from any thread.
    /// `precision` matters to `auto` only: see `prefersWinograd`.
    public func usesWinograd(_ geometry: ConvolutionGeometry, inputHeight: Int, inputWidth: Int,
                             precision: Precision = .fp32) -> Bool {
        guard Winograd.isEligible(geometry) else { return false }
        switch self {
        case .im2col: return false
        case .winograd: return true
        case .auto: return Self.prefersWinograd(geometry, inputHeight: inputHeight, inputWidth: inputWidth, precision: precision)
        }
    }

    /// The `auto` rule, for an eligible layer: Winograd when both channel counts are at least 32
    /// and the output is at least 32×32. From `netnet bench --layers` on full-width NETNet-300
    /// (2-core Zen 4): with 3 input channels (conv1_1) the transforms cost more than the
    /// multiplies saved; at 10×10 and below (9 tiles or fewer) the 36 GEMMs have N ≤ 9 and read 4×
    /// the weights, so the 510-channel head at 10×10 took twice im2col's time. At 19×19 Winograd
    /// still wins (conv5_x 1.33×, the level-2 heads 1.43×), but those layers hold most of the
    /// weights, and their transformed filters (4× the weights) would cost ~190 MB for ~13 ms of
    /// NETNet-300's ~320: `auto` leaves them to im2col so that the engine stays within its memory
    /// bar (600 MB peak for NETNet-300); `winograd` takes them too.
    ///
    /// bf16 (`netnet bench --precision bf16 --layers`, same machine): the transformed filters are
    /// bf16, half the memory, and oneDNN's batched matmul keeps its speed at 19×19 (conv5_2/5_3
    /// 3.6 ms against 5.0 with im2col, the level-2 heads 8.9 against 10.0), so `auto` takes the
    /// 19×19 layers there too (`minimumAutoOutputSideBF16`); at 10×10 it still loses (1.1 against 0.3 ms).
    public static func prefersWinograd(_ g: ConvolutionGeometry, inputHeight: Int, inputWidth: Int,
                                       precision: Precision = .fp32) -> Bool {
        let oh = g.outputHeight(inputHeight: inputHeight), ow = g.outputWidth(inputWidth: inputWidth)
        let side = precision == .bf16 ? minimumAutoOutputSideBF16 : minimumAutoOutputSide
        return g.inputChannels >= 32 && g.outputChannels >= 32 && oh >= side && ow >= side
    }

    /// The smallest output side `auto` runs with Winograd in fp32.
    public static let minimumAutoOutputSide = 32
    /// The smallest output side `auto` runs with Winograd in bf16.
    public static let minimumAutoOutputSideBF16 = 16
}
