/// Winograd F(4×4, 3×3) for dilated 3×3 stride-1 convolutions (SSD's and NETNet's conv6:
/// dilation 6 at 19×19), batch-1 NCHW float32 in and out.
///
/// A 3×3 convolution with dilation d splits into d × d phases: the outputs at rows a, a + d,
/// a + 2d, … and columns b, b + d, … read only inputs at the same row and column phases, so each
/// phase is an ordinary 3×3 convolution over every d-th row and column. Each phase's outputs are
/// cut into 4×4 tiles, and tile (ti, tj) of phase (a, b) reads the 6×6 inputs at rows
/// a − pad + d·(4·ti + r) and columns b − pad + d·(4·tj + s), r, s in 0 ..< 6 (zero outside).
/// From there it is `Winograd`: the same filter transform (dilation does not change G g Gᵀ), the
/// same 36 products per tile, the same output transform; only the gathering of a tile's inputs
/// and the scattering of its outputs differ. conv6 at 19×19 has 36 phases of one tile each: 36
/// tiles where im2col runs 361 columns of 9 × 512, 2.5× fewer multiplies.
///
/// The transforms work on eight tiles at once (one vector lane per tile), with each tile's 36
/// input and 16 output offsets precomputed by `Tiles`. All entry points are synchronous and
/// callable from any thread.
public enum DilatedWinograd {
    /// True for the convolutions this kernel computes: 3×3 kernel, stride 1, a dilation above 1
    /// (either direction), any padding. Pure.
    public static func isEligible(_ g: ConvolutionGeometry) -> Bool {
        g.isValid && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideY == 1 && g.strideX == 1
            && (g.dilationY > 1 || g.dilationX > 1)
    }

    /// The geometry whose filter transform is this layer's: the same filters without dilation
    /// (`Winograd.transformWeights` takes it). Pure.
    public static func undilated(_ g: ConvolutionGeometry) -> ConvolutionGeometry {
        var result = g
        result.dilationY = 1; result.dilationX = 1
        return result
    }

    /// Every tile of a layer at one input size, and where each reads and writes.
    public struct Tiles: Sendable {
        /// Number of tiles (over all phases).
        public let count: Int
        /// `[tile * 36 + r * 6 + s]`: offset in an input channel of patch element (r, s), or −1
        /// for the zero padding.
        let inputOffsets: [Int32]
        /// `[tile * 16 + i * 4 + j]`: offset in an output channel of tile output (i, j), or −1
        /// past the output's edge.
        let outputOffsets: [Int32]

        /// The tiles of `g` (eligible) on an `h` × `w` input. Pure.
        public init(geometry g: ConvolutionGeometry, inputHeight h: Int, inputWidth w: Int) {
            let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
            require(oh >= 1 && ow >= 1 && h * w <= Int(Int32.max) && oh * ow <= Int(Int32.max),
                    "DilatedWinograd.Tiles: input \(h)x\(w) does not fit \(g)")
            /// Per phase along one axis, the tiles' first output index (in phase steps).
            func phases(_ outputs: Int, _ dilation: Int) -> [(phase: Int, tile: Int)] {
                var result: [(Int, Int)] = []
                for phase in 0 ..< min(dilation, outputs) {
                    let count = (outputs - phase + dilation - 1) / dilation
                    for tile in 0 ..< (count + 3) / 4 { result.append((phase, tile)) }
                }
                return result
            }
            let rows = phases(oh, g.dilationY), columns = phases(ow, g.dilationX)
            var inputs: [Int32] = [], outputs: [Int32] = []
            inputs.reserveCapacity(rows.count * columns.count * 36)
            outputs.reserveCapacity(rows.count * columns.count * 16)
            for (a, ti) in rows {
                for (b, tj) in columns {
                    for r in 0 ..< 6 {
                        let y = a - g.padY + g.dilationY * (4 * ti + r)
                        for s in 0 ..< 6 {
                            let x = b - g.padX + g.dilationX * (4 * tj + s)
                            inputs.append(y >= 0 && y < h && x >= 0 && x < w ? Int32(y * w + x) : -1)
                        }
                    }
                    for i in 0 ..< 4 {
                        let y = a + g.dilationY * (4 * ti + i)
                        for j in 0 ..< 4 {
                            let x = b + g.dilationX * (4 * tj + j)
                            outputs.append(y < oh && x < ow ? Int32(y * ow + x) : -1)
                        }
                    }
                }
            }
            count = rows.count * columns.count
            inputOffsets = inputs
            outputOffsets = outputs
        }
    }

    /// V = Bᵀ d B for every tile of one input channel (`input`, one plane), written to
    /// `destination[ξ * positionStride + t]`. Synchronous.
    @inline(__always)
    static func inputTransform<Element: ColumnElement>(input: UnsafePointer<Float>, tiles: Tiles,
                                                       destination: UnsafeMutablePointer<Element>, positionStride: Int) {
        let count = tiles.count
        tiles.inputOffsets.withUnsafeBufferPointer { offsets in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 72) { vectors in
                let d = vectors.baseAddress!, e = d + 36
                var first = 0
                while first < count {
                    let lanes = min(8, count - first)
                    // Gather: lane l of d[r * 6 + s] is patch element (r, s) of tile first + l
                    // (the last tile repeated in lanes past the end, never stored).
                    for k in 0 ..< 36 {
                        var v = SIMD8<Float>()
                        for l in 0 ..< 8 {
                            let offset = offsets[(first + min(l, lanes - 1)) * 36 + k]
                            v[l] = offset >= 0 ? input[Int(offset)] : 0
                        }
                        d[k] = v
                    }
                    // Bᵀ down each column, then B across each row (Winograd.acrossTransform is
                    // the same six combinations).
                    for s in 0 ..< 6 {
                        let t = Winograd.acrossTransform(d[s], d[6 + s], d[12 + s], d[18 + s], d[24 + s], d[30 + s])
                        e[s] = t.0; e[6 + s] = t.1; e[12 + s] = t.2; e[18 + s] = t.3; e[24 + s] = t.4; e[30 + s] = t.5
                    }
                    for r in 0 ..< 6 {
                        let row = e + 6 * r
                        let t = Winograd.acrossTransform(row[0], row[1], row[2], row[3], row[4], row[5])
                        // d is free once e is made: the row's six values, to store by index.
                        d[0] = t.0; d[1] = t.1; d[2] = t.2; d[3] = t.3; d[4] = t.4; d[5] = t.5
                        for s in 0 ..< 6 {
                            let target = destination + (r * 6 + s) * positionStride + first
                            if lanes == 8 {
                                Element.store(d[s], to: target)
                            } else {
                                for l in 0 ..< lanes { target[l] = Element(rounding: d[s][l]) }
                            }
                        }
                    }
                    first += 8
                }
            }
        }
    }

    /// Y = Aᵀ M A for every tile of one output channel (`products[ξ * positionStride + t]`),
    /// plus `bias`, plus the old output if `accumulate`, then ReLU if `relu`, scattered into
    /// `output` (one plane); outputs past the edge are not written. Reads up to 7 floats past a
    /// position's last tile (lanes it never stores). Synchronous.
    @inline(__always)
    static func outputTransform(products: UnsafePointer<Float>, positionStride: Int, tiles: Tiles,
                                output: UnsafeMutablePointer<Float>, bias: Float, relu: Bool, accumulate: Bool) {
        let count = tiles.count
        let floor: Float = relu ? 0 : -.infinity
        tiles.outputOffsets.withUnsafeBufferPointer { offsets in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 24 + 16) { vectors in
                let a = vectors.baseAddress!, y = a + 24
                var first = 0
                while first < count {
                    let lanes = min(8, count - first)
                    // Aᵀ down each column j: a[i * 6 + j].
                    for j in 0 ..< 6 {
                        let m = products + j * positionStride + first
                        let t = Winograd.outputRows(load8(m), load8(m + 6 * positionStride), load8(m + 12 * positionStride),
                                                    load8(m + 18 * positionStride), load8(m + 24 * positionStride),
                                                    load8(m + 30 * positionStride))
                        a[j] = t.0; a[6 + j] = t.1; a[12 + j] = t.2; a[18 + j] = t.3
                    }
                    // A across each row i: y[i * 4 + j], plus the bias.
                    let biasVector = SIMD8<Float>(repeating: bias)
                    for i in 0 ..< 4 {
                        let row = a + 6 * i
                        let t = Winograd.outputRows(row[0], row[1], row[2], row[3], row[4], row[5])
                        y[4 * i] = t.0 + biasVector; y[4 * i + 1] = t.1 + biasVector
                        y[4 * i + 2] = t.2 + biasVector; y[4 * i + 3] = t.3 + biasVector
                    }
                    for l in 0 ..< lanes {
                        let tileOffsets = (first + l) * 16
                        for k in 0 ..< 16 {
                            let offset = offsets[tileOffsets + k]
                            guard offset >= 0 else { continue }
                            var value = y[k][l]
                            if accumulate { value += output[Int(offset)] }
                            output[Int(offset)] = max(value, floor)
                        }
                    }
                    first += 8
                }
            }
        }
    }
}
