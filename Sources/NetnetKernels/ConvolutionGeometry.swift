/// Geometry of a 2-D convolution over batch-1 NCHW float32 tensors. A plain value: usable from
/// any thread.
public struct ConvolutionGeometry: Sendable, Hashable {
    /// Channels in (C of the input) and out (C of the output).
    public var inputChannels: Int, outputChannels: Int
    /// Kernel extent (before dilation).
    public var kernelHeight: Int, kernelWidth: Int
    /// Step between output positions, in input pixels.
    public var strideY: Int, strideX: Int
    /// Zero padding on each side (top = bottom = padY, left = right = padX).
    public var padY: Int, padX: Int
    /// Spacing between kernel taps (1 = dense).
    public var dilationY: Int, dilationX: Int

    /// Square kernel, equal stride, padding and dilation in both directions.
    public init(inputChannels: Int, outputChannels: Int, kernel: Int, stride: Int = 1,
                padding: Int = 0, dilation: Int = 1) {
        self.init(inputChannels: inputChannels, outputChannels: outputChannels,
                  kernelHeight: kernel, kernelWidth: kernel, strideY: stride, strideX: stride,
                  padY: padding, padX: padding, dilationY: dilation, dilationX: dilation)
    }

    /// Every field given separately.
    public init(inputChannels: Int, outputChannels: Int, kernelHeight: Int, kernelWidth: Int,
                strideY: Int, strideX: Int, padY: Int, padX: Int, dilationY: Int, dilationX: Int) {
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideY = strideY
        self.strideX = strideX
        self.padY = padY
        self.padX = padX
        self.dilationY = dilationY
        self.dilationX = dilationX
    }

    /// True when every field is in range: channels and kernel >= 1, stride and dilation >= 1,
    /// padding >= 0.
    public var isValid: Bool {
        inputChannels >= 1 && outputChannels >= 1 && kernelHeight >= 1 && kernelWidth >= 1
            && strideY >= 1 && strideX >= 1 && padY >= 0 && padX >= 0
            && dilationY >= 1 && dilationX >= 1
    }

    /// Output height, `(h + 2p - d*(k-1) - 1) / s + 1` (floor); <= 0 when the input is too small.
    public func outputHeight(inputHeight: Int) -> Int {
        Self.outputExtent(inputHeight, kernelHeight, strideY, padY, dilationY)
    }

    /// Output width, `(w + 2p - d*(k-1) - 1) / s + 1` (floor); <= 0 when the input is too small.
    public func outputWidth(inputWidth: Int) -> Int {
        Self.outputExtent(inputWidth, kernelWidth, strideX, padX, dilationX)
    }

    private static func outputExtent(_ n: Int, _ k: Int, _ s: Int, _ p: Int, _ d: Int) -> Int {
        let span = n + 2 * p - d * (k - 1) - 1
        // Floor division (a negative span means no output at all).
        return span >= 0 ? span / s + 1 : (span - s + 1) / s + 1
    }

    /// 1×1 kernel, stride 1, no padding: the convolution is a GEMM straight on the input, with
    /// no im2col and no workspace. (Dilation is irrelevant for a 1×1 kernel.)
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideY == 1 && strideX == 1 && padY == 0 && padX == 0
    }

    /// Rows of the im2col matrix (= GEMM K): `in * kh * kw`.
    public var columnRows: Int { inputChannels * kernelHeight * kernelWidth }

    /// Number of weights, `out * in * kh * kw`, laid out `[out][in][kh][kw]`.
    public var weightCount: Int { outputChannels * inputChannels * kernelHeight * kernelWidth }

    /// Multiply-accumulates of one forward pass: `out * oh * ow * in * kh * kw`.
    public func multiplyAccumulates(inputHeight: Int, inputWidth: Int) -> Int {
        let oh = max(0, outputHeight(inputHeight: inputHeight))
        let ow = max(0, outputWidth(inputWidth: inputWidth))
        return weightCount * oh * ow
    }
}
