import Foundation
import NetnetKernels

/// Which convolution kernel a `Detector` runs for its 3×3 stride-1 layers, chosen once, at load.
/// A plain value; usable from any thread. The engine reads no environment variable: callers pass
/// it (`netnet bench --conv`; the CLI reads `NETNET_CONV` as a default).
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Winograd where `prefersWinograd` says it pays (faster on the project's 2-core machine, and
    /// worth its 4× filter memory), im2col elsewhere.
    case auto
    /// im2col + sgemm everywhere (the pre-Winograd engine).
    case im2col
    /// Winograd F(4×4, 3×3) for every eligible layer (3×3, stride 1, dilation 1), and on oneDNN
    /// for the dilated ones too (`usesDilatedWinograd`); im2col for the rest.
    case winograd

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

    /// Whether this choice runs a dilated 3×3 stride-1 layer (conv6) with `DilatedWinograd`,
    /// which only the oneDNN path has (the caller checks). `winograd`: every such layer; `auto`:
    /// bf16 only, within the bf16 rule's bounds (channels, output size); fp32 leaves conv6 to
    /// im2col, as it does the 19×19 layers, for memory: its transformed filters in float32 would
    /// add ~57 MB. Measured on NETNet-300 bf16 (docs/performance.md): conv6 8.6 → 6.9–7.0 ms.
    /// Pure; callable from any thread.
    public func usesDilatedWinograd(_ g: ConvolutionGeometry, inputHeight: Int, inputWidth: Int,
                                    precision: Precision = .fp32) -> Bool {
        guard DilatedWinograd.isEligible(g) else { return false }
        switch self {
        case .im2col: return false
        case .winograd: return true
        case .auto:
            return precision == .bf16 && Self.prefersWinograd(g, inputHeight: inputHeight, inputWidth: inputWidth, precision: .bf16)
        }
    }

    /// The `auto` rule, for an eligible layer. fp32: at least 8 channels in and out, and an
    /// output of at least 32×32, or of at least 8×8 for a layer whose filters are small
    /// (in × out ≤ 128 × 128). bf16: at least 32 channels in and out and an output of at least
    /// 16×16. From `netnet bench --layers` on the project's 2-core Zen 4:
    /// - Full-width NETNet-300: with 3 input channels (conv1_1) the transforms cost more than the
    ///   multiplies saved; at 10×10 and below the 36 GEMMs have N ≤ 9 and read 4× the weights, so
    ///   the 510-channel head at 10×10 took twice im2col's time. At 19×19 Winograd still wins
    ///   (conv5_x 1.33×, the level-2 heads 1.43×), but those layers hold most of the weights, and
    ///   their transformed filters (4× the weights) would cost ~190 MB for ~13 ms of NETNet-300's
    ///   ~320: fp32 leaves them to im2col so that the engine stays within its memory bar (600 MB
    ///   peak for NETNet-300); `winograd` takes them too.
    /// - bf16: the transformed filters are bf16, half the memory, and oneDNN's batched matmul keeps
    ///   its speed at 19×19 (conv5_2/5_3 3.6 ms against 5.0 with im2col, the level-2 heads 8.9
    ///   against 10.0), so bf16 takes the 19×19 layers too (`minimumAutoOutputSideBF16`); at
    ///   10×10 the big heads still lose (1.1 against 0.3 ms).
    /// - Narrow models in fp32 (the default model, width 0.125: 8–64 channels), once the transforms
    ///   ran on explicit vectors: Winograd wins on every eligible layer from 8 channels up, even at
    ///   10×10 where the filters are small (conv2_2 1.6 against 3.1 ms, conv5_x 0.33 against 0.64,
    ///   the 10×10 head 0.09 against 0.33); it loses only on the 3×3 and 1×1 outputs of the last
    ///   extras. Small filters cost little memory, so `smallFilterChannelProduct` and
    ///   `minimumSmallFilterOutputSide` let those layers in. bf16 keeps its thin layers on im2col:
    ///   bf16 Winograd's error is 4–9 % of a layer's output against im2col's 0.1 %, and with the
    ///   narrow layers on Winograd too the narrow goldens drift past their 5e-2 bound, for a
    ///   precision that buys little at that width anyway.
    public static func prefersWinograd(_ g: ConvolutionGeometry, inputHeight: Int, inputWidth: Int,
                                       precision: Precision = .fp32) -> Bool {
        let oh = g.outputHeight(inputHeight: inputHeight), ow = g.outputWidth(inputWidth: inputWidth)
        if precision == .bf16 {
            return g.inputChannels >= 32 && g.outputChannels >= 32
                && oh >= minimumAutoOutputSideBF16 && ow >= minimumAutoOutputSideBF16
        }
        guard g.inputChannels >= minimumAutoChannels && g.outputChannels >= minimumAutoChannels else { return false }
        if oh >= minimumAutoOutputSide && ow >= minimumAutoOutputSide { return true }
        return g.inputChannels * g.outputChannels <= smallFilterChannelProduct
            && oh >= minimumSmallFilterOutputSide && ow >= minimumSmallFilterOutputSide
    }

    /// The fewest input (and output) channels `auto` runs with Winograd in fp32.
    public static let minimumAutoChannels = 8
    /// Layers with at most this many input × output channels have small filters: `auto` runs
    /// them with Winograd down to `minimumSmallFilterOutputSide` in fp32.
    public static let smallFilterChannelProduct = 128 * 128
    /// The smallest output side `auto` runs a small-filter layer with Winograd in fp32.
    public static let minimumSmallFilterOutputSide = 8
    /// The smallest output side `auto` runs with Winograd in fp32.
    public static let minimumAutoOutputSide = 32
    /// The smallest output side `auto` runs with Winograd in bf16.
    public static let minimumAutoOutputSideBF16 = 16
}
