/// Winograd F(4×4, 3×3) convolution for 3×3, stride-1, dilation-1 layers over batch-1 NCHW
/// float32, with the bias, optional accumulation and ReLU fused into the output transform.
///
/// Each 4×4 block of outputs ("tile") comes from a 6×6 input patch: V = Bᵀ d B, then for each of
/// the 36 transform positions ξ one GEMM M[ξ] = U[ξ] · V[ξ] (`[out × in] · [in × tiles]`, U the
/// filters pre-transformed by `transformWeights`, G g Gᵀ), then Y = Aᵀ M A. That is 36 products
/// per 16 outputs instead of 144: 4× fewer multiplies, paid for with transforms (O(channels ×
/// tiles), not O(channels² × tiles)) and a larger float32 rounding error (see the tests: around
/// 1e-6–1e-5 of the output's magnitude on unit-scale data, versus 1e-7 for im2col).
///
/// Tiles are processed in chunks of whole tile rows, so the workspace (`workspaceCount`) stays
/// bounded: `[36, in, T]` transformed inputs, `[36, out, T]` products and a small scratch per
/// kernel thread. The transforms split over the caller's `KernelTeam`; the GEMMs run on OpenBLAS's threads.
///
/// All entry points are synchronous and callable from any thread; concurrent calls are safe as
/// long as their outputs and workspaces are disjoint.
public enum Winograd {
    /// Output tile edge (m of F(m×m, 3×3)).
    public static let tileSize = 4
    /// Transform edge, m + 3 − 1; there are `alpha * alpha` = 36 GEMMs per chunk.
    public static let alpha = 6

    /// Tiles per chunk that chunking aims for (at least one tile row, fewer when
    /// `defaultBudget` forces it). Large enough that each of the 36 GEMMs has a useful N.
    public static let targetTiles = 768

    /// Floats left unused after the products in every workspace: the output transform's last
    /// vector of a chunk may read up to 7 floats past the products (lanes it never stores), and
    /// they must not be another thread's scratch.
    public static let productSlack = 8

    /// Upper bound, in floats, on a chunk's transformed inputs plus products
    /// (`36 × (in + out) × T`): 4 Mi floats (16 MiB), unless one tile row alone needs more.
    public static let defaultBudget = 4 << 20

    /// 2×2, stride-2 max pooling of a Winograd layer's output, done by the output transform as it
    /// stores: only the pooled map, `height` × `width`, is written. Floor mode (`height` = half
    /// the output height, rounded down) or ceil mode (rounded up: the last row and column pool
    /// the one output row or column left). A plain value.
    public struct FusedPool: Sendable, Hashable {
        /// The pooled map's height and width.
        public let height: Int, width: Int

        /// The pooling of an `outputHeight` × `outputWidth` output, floor or ceil mode.
        public init(outputHeight: Int, outputWidth: Int, ceilMode: Bool) {
            height = ceilMode ? (outputHeight + 1) / 2 : outputHeight / 2
            width = ceilMode ? (outputWidth + 1) / 2 : outputWidth / 2
        }
    }

    /// True for the convolutions this kernel computes: 3×3 kernel, stride 1, dilation 1, any
    /// padding (the output is `h + 2p − 2` by `w + 2p − 2`). Pure; callable from any thread.
    public static func isEligible(_ g: ConvolutionGeometry) -> Bool {
        g.isValid && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideY == 1 && g.strideX == 1
            && g.dilationY == 1 && g.dilationX == 1
    }

    /// Floats of pre-transformed weights for `g`: `36 × out × in`, laid out `[ξ][out][in]`.
    public static func transformedWeightCount(geometry g: ConvolutionGeometry) -> Int {
        alpha * alpha * g.outputChannels * g.inputChannels
    }

    /// Writes U = G g Gᵀ for every (out, in) filter of `weights` (`[out][in][3][3]`) into
    /// `transformed` (`transformedWeightCount` floats, `[ξ][out][in]` so that each ξ is a
    /// row-major `[out × in]` GEMM operand). Computed in double, rounded once. Done once at model
    /// load. Split over `team`. Synchronous; callable from any thread.
    public static func transformWeights(geometry g: ConvolutionGeometry, weights: UnsafePointer<Float>,
                                        transformed: UnsafeMutablePointer<Float>, team: KernelTeam = .current) {
        require(isEligible(g), "Winograd.transformWeights: not a 3x3 stride-1 convolution: \(g)")
        let cin = g.inputChannels, cout = g.outputChannels
        let plane = cout * cin
        // Split over output channels: full-width VGG has ~15 M filters' worth of taps to transform.
        parallelChunks(count: cout, minimumChunk: max(1, 4096 / cin), team: team) { outputs in
            for o in outputs {
                for c in 0 ..< cin {
                    let f = weights + (o * cin + c) * 9
                    // Columns of G g (6×3), then rows of (G g) Gᵀ (6×6).
                    let a = filterColumn(Double(f[0]), Double(f[3]), Double(f[6]))
                    let b = filterColumn(Double(f[1]), Double(f[4]), Double(f[7]))
                    let d = filterColumn(Double(f[2]), Double(f[5]), Double(f[8]))
                    for i in 0 ..< 6 {
                        let row = filterColumn(a[i], b[i], d[i])
                        for j in 0 ..< 6 {
                            transformed[(i * 6 + j) * plane + o * cin + c] = Float(row[j])
                        }
                    }
                }
            }
        }
    }

    /// G · (g0, g1, g2) for F(4×4, 3×3).
    @inline(__always)
    static func filterColumn(_ g0: Double, _ g1: Double, _ g2: Double) -> SIMD8<Double> {
        SIMD8(g0 / 4,
              -(g0 + g1 + g2) / 6,
              -(g0 - g1 + g2) / 6,
              g0 / 24 + g1 / 12 + g2 / 6,
              g0 / 24 - g1 / 12 + g2 / 6,
              g2, 0, 0)
    }

    /// The chunking `forward` uses: tiles across and down, tile rows per chunk.
    @_spi(Benchmarks) public struct Plan {
        @_spi(Benchmarks) public let outputHeight: Int, outputWidth: Int
        @_spi(Benchmarks) public let tilesX: Int, tilesY: Int
        @_spi(Benchmarks) public let chunkRows: Int
        /// Tiles in a full chunk.
        @_spi(Benchmarks) public var chunkTiles: Int { chunkRows * tilesX }
        /// `tilesX` rounded up to whole 8-lane vectors: the row stride of the output transform's
        /// scratch, so that its passes run on whole vectors.
        var paddedTilesX: Int { (tilesX + 7) & ~7 }
        /// Floats of scratch per kernel thread: room for 12 padded, de-interleaved input rows
        /// (input transform) or 40 rows of one tile row's partial outputs (output transform),
        /// plus one vector of slack that the input transform's last partial vector may read.
        var slotFloats: Int { max(48 * (tilesX + 1), 40 * paddedTilesX) + 8 }
    }

    /// The chunking of `geometry` at `inputHeight` × `inputWidth` for `budget` and `targetTiles`. Pure.
    @_spi(Benchmarks) public static func plan(geometry g: ConvolutionGeometry, inputHeight h: Int, inputWidth w: Int,
                                              budget: Int, targetTiles: Int) -> Plan {
        let oh = g.outputHeight(inputHeight: h), ow = g.outputWidth(inputWidth: w)
        let tilesX = (ow + tileSize - 1) / tileSize, tilesY = (oh + tileSize - 1) / tileSize
        let rows = chunkRows(tileRows: tilesY, tilesX: tilesX, inputChannels: g.inputChannels,
                             outputChannels: g.outputChannels, budget: budget, targetTiles: targetTiles)
        return Plan(outputHeight: oh, outputWidth: ow, tilesX: tilesX, tilesY: tilesY, chunkRows: rows)
    }

    /// Tile rows per chunk for `tileRows` rows of `tilesX` tiles: about `targetTiles` tiles (at
    /// least one row), fewer where a chunk's transformed inputs and products,
    /// `36 × (in + out) × tiles` floats, would pass `budget`; the rows shared out evenly over the
    /// chunks, the last one shorter. Pure.
    static func chunkRows(tileRows: Int, tilesX: Int, inputChannels: Int, outputChannels: Int,
                          budget: Int, targetTiles: Int) -> Int {
        let perRow = alpha * alpha * (inputChannels + outputChannels) * tilesX
        let wanted = (max(1, targetTiles) + tilesX - 1) / tilesX
        let maximum = max(1, min(tileRows, budget / max(1, perRow), wanted))
        let chunks = (tileRows + maximum - 1) / maximum
        return (tileRows + chunks - 1) / chunks
    }

    /// Floats of workspace `forward` needs for this geometry and input size with `threads` kernel
    /// threads (scratch for fewer threads than the team's only makes `forward` use
    /// fewer): `36 × (in + out) × T` for a chunk of T tiles, `productSlack`, plus `Plan.slotFloats`
    /// per thread.
    /// Pure; callable from any thread.
    public static func workspaceCount(geometry g: ConvolutionGeometry, inputHeight h: Int, inputWidth w: Int,
                                      threads: Int = KernelThreads.onlineProcessors,
                                      budget: Int = Winograd.defaultBudget,
                                      targetTiles: Int = Winograd.targetTiles) -> Int {
        require(isEligible(g), "Winograd.workspaceCount: not a 3x3 stride-1 convolution: \(g)")
        let p = plan(geometry: g, inputHeight: h, inputWidth: w, budget: budget, targetTiles: targetTiles)
        require(p.outputHeight >= 1 && p.outputWidth >= 1, "Winograd.workspaceCount: input \(h)x\(w) too small for \(g)")
        return alpha * alpha * (g.inputChannels + g.outputChannels) * p.chunkTiles + productSlack + max(1, threads) * p.slotFloats
    }

    /// output = [output +] conv(input, weights) + bias, then ReLU if `relu`, for an eligible
    /// geometry (`isEligible`), with `transformedWeights` from `transformWeights`. Same meaning as
    /// `Convolution.forward`. `workspace` must hold at least `workspaceCount(…, threads: 1, …)`
    /// floats for the same budget and target; `output` must not overlap anything else. The
    /// transforms split over `team`; the GEMMs run on OpenBLAS's threads.
    /// Synchronous; callable from any thread, reentrant given disjoint output and workspace.
    public static func forward(geometry g: ConvolutionGeometry,
                               input: UnsafePointer<Float>, inputHeight h: Int, inputWidth w: Int,
                               transformedWeights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               output: UnsafeMutablePointer<Float>,
                               relu: Bool, accumulate: Bool,
                               workspace: UnsafeMutableBufferPointer<Float>,
                               budget: Int = Winograd.defaultBudget,
                               targetTiles: Int = Winograd.targetTiles,
                               team: KernelTeam = .current) {
        require(isEligible(g), "Winograd.forward: not a 3x3 stride-1 convolution: \(g)")
        require(h >= 1 && w >= 1, "Winograd.forward: invalid input size \(h)x\(w)")
        let p = plan(geometry: g, inputHeight: h, inputWidth: w, budget: budget, targetTiles: targetTiles)
        require(p.outputHeight >= 1 && p.outputWidth >= 1, "Winograd.forward: input \(h)x\(w) too small for \(g)")
        let cin = g.inputChannels, cout = g.outputChannels
        let chunkTiles = p.chunkTiles
        let transformedCount = alpha * alpha * cin * chunkTiles
        let productCount = alpha * alpha * cout * chunkTiles
        let slots = (workspace.count - transformedCount - productCount - productSlack) / p.slotFloats
        require(slots >= 1 && max(cin, cout, chunkTiles) <= Int(Int32.max),
                "Winograd.forward: workspace too small: \(workspace.count) floats, need \(workspaceCount(geometry: g, inputHeight: h, inputWidth: w, threads: 1, budget: budget, targetTiles: targetTiles)) for \(g) at \(h)x\(w)")
        guard let base = workspace.baseAddress else { fatalError("Winograd.forward: workspace has no base address") }
        let transformed = base
        let products = base + transformedCount
        let scratch = base + transformedCount + productCount + productSlack
        chunks(geometry: g, input: input, inputHeight: h, inputWidth: w, plan: p, transformed: transformed,
               products: products, scratch: scratch, slots: slots, team: team, bias: bias, output: output,
               relu: relu, accumulate: accumulate) { tiles in
            for xi in 0 ..< alpha * alpha {
                GEMM.multiply(m: cout, n: tiles, k: cin,
                              a: transformedWeights + xi * cout * cin, lda: cin,
                              b: transformed + xi * cin * tiles, ldb: tiles,
                              c: products + xi * cout * tiles, ldc: tiles)
            }
        }
    }

    /// The chunk loop both precisions share: per chunk of tile rows, the input transform into
    /// `transformed` (`[36, in, tiles]`, float32 or bf16), then `multiply(tiles)`, which must
    /// fill `products` (float32) from it, then the output transform. The products are laid out
    /// by slices of output channels, `sliceBounds` (first channels, then `out`; nil: one slice),
    /// each `[36, its channels, tiles]`, slices one after another. `columns(tiles)` (≥ tiles) is
    /// the row length of both for a chunk of `tiles` tiles: the columns past `tiles` of the
    /// transformed inputs are zeroed, and those of the products never reach the output. With
    /// `pool` (not with `accumulate`), `output` is `[out, pool.height, pool.width]`: the output
    /// transform stores the 2×2 max pooling.
    @inline(__always)
    static func chunks<Element: ColumnElement>(geometry g: ConvolutionGeometry,
                                               input: UnsafePointer<Float>, inputHeight h: Int, inputWidth w: Int,
                                               plan p: Plan, transformed: UnsafeMutablePointer<Element>,
                                               products: UnsafeMutablePointer<Float>,
                                               scratch: UnsafeMutablePointer<Float>, slots: Int, team: KernelTeam,
                                               bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                                               relu: Bool, accumulate: Bool, sliceBounds: [Int]? = nil,
                                               columns: (_ tiles: Int) -> Int = { $0 }, pool: FusedPool? = nil,
                                               multiply: (_ tiles: Int) -> Void) {
        let cin = g.inputChannels, cout = g.outputChannels
        let plane = pool.map { $0.height * $0.width } ?? p.outputHeight * p.outputWidth
        var tileRow = 0
        while tileRow < p.tilesY {
            let rows = min(p.chunkRows, p.tilesY - tileRow)
            let tiles = rows * p.tilesX
            let stride = columns(tiles)
            // Input transform, split over input channels.
            parallelSlots(count: cin, slots: slots, minimumChunk: max(1, 4096 / max(1, tiles)), team: team) { slot, channels in
                let local = scratch + slot * p.slotFloats
                for c in channels {
                    inputTransform(input: input + c * h * w, height: h, width: w, pad: g.padY, padX: g.padX,
                                   plan: p, firstTileRow: tileRow, tileRows: rows,
                                   destination: transformed + c * stride, positionStride: cin * stride,
                                   scratch: local)
                    zeroPadding(transformed + c * stride + tiles, count: stride - tiles, positionStride: cin * stride)
                }
            }
            multiply(tiles)
            // Output transform, split over output channels.
            parallelSlots(count: cout, slots: slots, minimumChunk: max(1, 4096 / max(1, tiles)), team: team) { slot, channels in
                let local = scratch + slot * p.slotFloats
                var slice = 0
                for o in channels {
                    var first = 0, count = cout
                    if let bounds = sliceBounds {
                        while o >= bounds[slice + 1] { slice += 1 }
                        first = bounds[slice]; count = bounds[slice + 1] - first
                    }
                    outputTransform(products: products + alpha * alpha * first * stride + (o - first) * stride,
                                    positionStride: count * stride,
                                    plan: p, firstTileRow: tileRow, tileRows: rows,
                                    output: output + o * plane,
                                    bias: bias.map { $0[o] } ?? 0, relu: relu, accumulate: accumulate,
                                    pool: pool, scratch: local)
                }
            }
            tileRow += rows
        }
    }

    /// Zeroes `count` elements at `start + ξ * positionStride` for each of the 36 positions: the
    /// padding columns of one channel's transformed inputs.
    @inline(__always)
    static func zeroPadding<Element: ColumnElement>(_ start: UnsafeMutablePointer<Element>, count: Int, positionStride: Int) {
        guard count > 0 else { return }
        for xi in 0 ..< alpha * alpha {
            (start + xi * positionStride).update(repeating: Element.zero, count: count)
        }
    }

    // MARK: - Transforms

    /// V = Bᵀ d B for the tiles of tile rows `firstTileRow ..< +tileRows` of one channel, written
    /// to `destination[ξ * positionStride + t]` (t the tile's index within the chunk).
    ///
    /// Per tile row, the six input rows it reads are copied zero-padded and de-interleaved by
    /// column mod 4 (`row[q * P + u]` = column `4u + q − pad`, P = tilesX + 1), so that both
    /// passes, Bᵀ down the rows and then B across, are plain loops over consecutive tiles that the
    /// compiler vectorises.
    @inline(__always)
    static func inputTransform<Element: ColumnElement>(input: UnsafePointer<Float>, height h: Int, width w: Int, pad: Int, padX: Int,
                               plan p: Plan, firstTileRow: Int, tileRows: Int,
                               destination: UnsafeMutablePointer<Element>, positionStride: Int,
                               scratch: UnsafeMutablePointer<Float>) {
        let stride = p.tilesX + 1
        let rowLength = 4 * stride
        let padded = scratch                  // 6 rows of rowLength
        let down = scratch + 6 * rowLength    // Bᵀ d: 6 rows of rowLength
        let callTiles = tileRows * p.tilesX
        for r in 0 ..< tileRows {
            let ty = firstTileRow + r
            for k in 0 ..< 6 {
                let y = 4 * ty - pad + k
                let row = padded + k * rowLength
                if y < 0 || y >= h {
                    row.update(repeating: 0, count: rowLength)
                    continue
                }
                let source = input + y * w
                // Interior: whole groups of 4 tiles whose 16 columns are all inside the row, split
                // into the 4 phases with SIMD shuffles; the columns around them one by one.
                let first = (padX + 3) / 4
                var u = 0
                while u < stride && u < first {
                    for q in 0 ..< 4 {
                        let x = 4 * u + q - padX
                        row[q * stride + u] = (x >= 0 && x < w) ? source[x] : 0
                    }
                    u += 1
                }
                let raw = UnsafeRawPointer(source)
                while u + 4 <= stride && 4 * u + 16 - padX <= w {
                    let v = raw.loadUnaligned(fromByteOffset: (4 * u - padX) * 4, as: SIMD16<Float>.self)
                    let even = v.evenHalf, odd = v.oddHalf
                    let destination = UnsafeMutableRawPointer(row + u)
                    destination.storeBytes(of: even.evenHalf, toByteOffset: 0, as: SIMD4<Float>.self)
                    destination.storeBytes(of: odd.evenHalf, toByteOffset: stride * 4, as: SIMD4<Float>.self)
                    destination.storeBytes(of: even.oddHalf, toByteOffset: 2 * stride * 4, as: SIMD4<Float>.self)
                    destination.storeBytes(of: odd.oddHalf, toByteOffset: 3 * stride * 4, as: SIMD4<Float>.self)
                    u += 4
                }
                while u < stride {
                    for q in 0 ..< 4 {
                        let x = 4 * u + q - padX
                        row[q * stride + u] = (x >= 0 && x < w) ? source[x] : 0
                    }
                    u += 1
                }
            }
            do {
                let d0 = padded, d1 = padded + rowLength, d2 = padded + 2 * rowLength
                let d3 = padded + 3 * rowLength, d4 = padded + 4 * rowLength, d5 = padded + 5 * rowLength
                let v0 = down, v1 = down + rowLength, v2 = down + 2 * rowLength
                let v3 = down + 3 * rowLength, v4 = down + 4 * rowLength, v5 = down + 5 * rowLength
                for e in 0 ..< rowLength {
                    let a0 = d0[e], a1 = d1[e], a2 = d2[e], a3 = d3[e], a4 = d4[e], a5 = d5[e]
                    v0[e] = 4 * a0 - 5 * a2 + a4
                    v1[e] = -4 * (a1 + a2) + a3 + a4
                    v2[e] = 4 * (a1 - a2) - a3 + a4
                    v3[e] = 2 * (a3 - a1) - a2 + a4
                    v4[e] = 2 * (a1 - a3) - a2 + a4
                    v5[e] = 4 * a1 - 5 * a3 + a5
                }
            }
            let tileBase = r * p.tilesX
            for i in 0 ..< 6 {
                let v = down + i * rowLength
                let c0 = v, c1 = v + stride, c2 = v + 2 * stride, c3 = v + 3 * stride
                let c4 = v + 1, c5 = v + stride + 1
                let o = destination + i * 6 * positionStride + tileBase
                let o0 = o, o1 = o + positionStride, o2 = o + 2 * positionStride
                let o3 = o + 3 * positionStride, o4 = o + 4 * positionStride, o5 = o + 5 * positionStride
                // Eight tiles at a time with explicit vectors: the compiler leaves the bf16
                // rounding stores of the plain loop scalar.
                var t = 0
                while t + 8 <= p.tilesX {
                    let v = acrossTransform(load8(c0 + t), load8(c1 + t), load8(c2 + t),
                                            load8(c3 + t), load8(c4 + t), load8(c5 + t))
                    Element.store(v.0, to: o0 + t); Element.store(v.1, to: o1 + t); Element.store(v.2, to: o2 + t)
                    Element.store(v.3, to: o3 + t); Element.store(v.4, to: o4 + t); Element.store(v.5, to: o5 + t)
                    t += 8
                }
                // The last partial vector: computed whole (its lanes past the row read the
                // slot's slack, see `slotFloats`). Stored whole where its extra lanes fall on
                // tiles of a later row of this call, which this loop overwrites (on small maps
                // most rows end so, and lane-by-lane stores were a third of the transform);
                // else only its own lanes.
                if t < p.tilesX {
                    let v = acrossTransform(load8(c0 + t), load8(c1 + t), load8(c2 + t),
                                            load8(c3 + t), load8(c4 + t), load8(c5 + t))
                    if tileBase + t + 8 <= callTiles {
                        Element.store(v.0, to: o0 + t); Element.store(v.1, to: o1 + t); Element.store(v.2, to: o2 + t)
                        Element.store(v.3, to: o3 + t); Element.store(v.4, to: o4 + t); Element.store(v.5, to: o5 + t)
                    } else {
                        let count = p.tilesX - t
                        Element.store(v.0, to: o0 + t, count: count); Element.store(v.1, to: o1 + t, count: count)
                        Element.store(v.2, to: o2 + t, count: count); Element.store(v.3, to: o3 + t, count: count)
                        Element.store(v.4, to: o4 + t, count: count); Element.store(v.5, to: o5 + t, count: count)
                    }
                }
            }
        }
    }

    /// (d · B) for eight tiles at once: the six values of one row of Bᵀ d B from that row's six
    /// phase columns.
    @inline(__always)
    static func acrossTransform(_ a0: SIMD8<Float>, _ a1: SIMD8<Float>, _ a2: SIMD8<Float>,
                                _ a3: SIMD8<Float>, _ a4: SIMD8<Float>, _ a5: SIMD8<Float>)
        -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        (4 * a0 - 5 * a2 + a4, -4 * (a1 + a2) + a3 + a4, 4 * (a1 - a2) - a3 + a4,
         2 * (a3 - a1) - a2 + a4, 2 * (a1 - a3) - a2 + a4, 4 * a1 - 5 * a3 + a5)
    }

    /// Aᵀ applied to six values for eight tiles at once: the four outputs of F(4×4, 3×3) along
    /// one direction.
    @inline(__always)
    static func outputRows(_ b0: SIMD8<Float>, _ b1: SIMD8<Float>, _ b2: SIMD8<Float>,
                           _ b3: SIMD8<Float>, _ b4: SIMD8<Float>, _ b5: SIMD8<Float>)
        -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let sum12 = b1 + b2, difference12 = b1 - b2
        let sum34 = b3 + b4, difference34 = b3 - b4
        return (b0 + sum12 + sum34, difference12 + 2 * difference34, sum12 + 4 * sum34, difference12 + 8 * difference34 + b5)
    }

    /// Y = Aᵀ M A for one output channel's tiles of the chunk (`products[ξ * positionStride + t]`),
    /// plus `bias`, plus the old output if `accumulate`, then ReLU if `relu`; only the outputs
    /// inside the image are written. Both passes run over consecutive tiles of a tile row
    /// (vectorised), then one loop interleaves the 4×4 blocks into the output rows. With `pool`
    /// (not with `accumulate`), `output` is the channel's pooled map instead, and each 4×4 block
    /// stores its 2×2 maxima (`storePooled`).
    @inline(__always)
    static func outputTransform(products: UnsafePointer<Float>, positionStride: Int,
                                plan p: Plan, firstTileRow: Int, tileRows: Int,
                                output: UnsafeMutablePointer<Float>, bias: Float, relu: Bool, accumulate: Bool,
                                pool: FusedPool? = nil, scratch: UnsafeMutablePointer<Float>) {
        // Both passes run on whole 8-lane vectors over rows padded to `n` (explicit vectors: the
        // plain loops left their remainders scalar, which were most of the work on 19×19 and
        // smaller maps). The lanes past the tile row read the next row's products, or at the
        // chunk's very end up to 7 floats of `productSlack`; those lanes are never stored.
        let n = p.paddedTilesX
        let across = scratch            // Aᵀ M: 24 rows of n, row (r * 6 + j)
        let blocks = scratch + 24 * n   // Y: 16 rows of n, row (r * 4 + s)
        let oh = p.outputHeight, ow = p.outputWidth
        let biasVector = SIMD8<Float>(repeating: bias)
        for rowInChunk in 0 ..< tileRows {
            let tileBase = rowInChunk * p.tilesX
            for j in 0 ..< 6 {
                let m0 = products + j * positionStride + tileBase
                let m1 = m0 + 6 * positionStride, m2 = m0 + 12 * positionStride
                let m3 = m0 + 18 * positionStride, m4 = m0 + 24 * positionStride, m5 = m0 + 30 * positionStride
                let a0 = across + j * n, a1 = across + (6 + j) * n
                let a2 = across + (12 + j) * n, a3 = across + (18 + j) * n
                var t = 0
                while t < n {
                    let y = outputRows(load8(m0 + t), load8(m1 + t), load8(m2 + t),
                                       load8(m3 + t), load8(m4 + t), load8(m5 + t))
                    store8(y.0, a0 + t); store8(y.1, a1 + t); store8(y.2, a2 + t); store8(y.3, a3 + t)
                    t += 8
                }
            }
            for r in 0 ..< 4 {
                let m0 = across + r * 6 * n, m1 = m0 + n, m2 = m0 + 2 * n
                let m3 = m0 + 3 * n, m4 = m0 + 4 * n, m5 = m0 + 5 * n
                let y0 = blocks + r * 4 * n, y1 = y0 + n, y2 = y0 + 2 * n, y3 = y0 + 3 * n
                var t = 0
                while t < n {
                    let y = outputRows(load8(m0 + t), load8(m1 + t), load8(m2 + t),
                                       load8(m3 + t), load8(m4 + t), load8(m5 + t))
                    store8(y.0 + biasVector, y0 + t); store8(y.1 + biasVector, y1 + t)
                    store8(y.2 + biasVector, y2 + t); store8(y.3 + biasVector, y3 + t)
                    t += 8
                }
            }
            let ty = firstTileRow + rowInChunk
            if let pool {
                storePooled(blocks: blocks, rowStride: n, tileRow: ty, outputHeight: oh, outputWidth: ow,
                            pool: pool, output: output, relu: relu)
                continue
            }
            for r in 0 ..< min(4, oh - 4 * ty) {
                let destination = output + (4 * ty + r) * ow
                let y0 = blocks + r * 4 * n, y1 = y0 + n, y2 = y0 + 2 * n, y3 = y0 + 3 * n
                let fullTiles = ow / 4
                switch (accumulate, relu) {
                case (false, false):
                    for t in 0 ..< fullTiles {
                        let d = destination + 4 * t
                        d[0] = y0[t]; d[1] = y1[t]; d[2] = y2[t]; d[3] = y3[t]
                    }
                case (false, true):
                    for t in 0 ..< fullTiles {
                        let d = destination + 4 * t
                        d[0] = max(y0[t], 0); d[1] = max(y1[t], 0); d[2] = max(y2[t], 0); d[3] = max(y3[t], 0)
                    }
                case (true, false):
                    for t in 0 ..< fullTiles {
                        let d = destination + 4 * t
                        d[0] += y0[t]; d[1] += y1[t]; d[2] += y2[t]; d[3] += y3[t]
                    }
                case (true, true):
                    for t in 0 ..< fullTiles {
                        let d = destination + 4 * t
                        d[0] = max(d[0] + y0[t], 0); d[1] = max(d[1] + y1[t], 0)
                        d[2] = max(d[2] + y2[t], 0); d[3] = max(d[3] + y3[t], 0)
                    }
                }
                // The last, partial tile of the row.
                var x = 4 * fullTiles
                while x < ow {
                    var value = blocks[(r * 4 + x % 4) * n + fullTiles]
                    if accumulate { value += destination[x] }
                    destination[x] = relu ? max(value, 0) : value
                    x += 1
                }
            }
        }
    }
}

extension Winograd {
    /// Stores the 2×2 maxima (then ReLU) of tile row `ty`'s 4×4 output blocks (`blocks`, row
    /// `r * 4 + s` holding output (r, s) of every tile of the row, `rowStride` apart) into
    /// pooled rows 2·ty and 2·ty + 1 of `output` (`pool.height` × `pool.width`). A window's
    /// outputs past the output's edge (ceil mode) are left out of its maximum.
    @inline(__always)
    static func storePooled(blocks: UnsafePointer<Float>, rowStride n: Int, tileRow ty: Int,
                            outputHeight oh: Int, outputWidth ow: Int, pool: FusedPool,
                            output: UnsafeMutablePointer<Float>, relu: Bool) {
        let rowsInTile = min(4, oh - 4 * ty)
        // max(x, −∞) is x: one loop for both, no branch inside it.
        let floor: Float = relu ? 0 : -.infinity
        // Tiles whose two pooled columns both exist and pool two outputs each.
        let pairs = min(ow / 4, pool.width / 2)
        for half in 0 ..< 2 {
            let pooledRow = 2 * ty + half
            guard pooledRow < pool.height, 2 * half < rowsInTile else { break }
            let top = blocks + 2 * half * 4 * n
            let bottom = 2 * half + 1 < rowsInTile ? top + 4 * n : top
            let destination = output + pooledRow * pool.width
            for t in 0 ..< pairs {
                let left = max(max(top[t], top[n + t]), max(bottom[t], bottom[n + t]))
                let right = max(max(top[2 * n + t], top[3 * n + t]), max(bottom[2 * n + t], bottom[3 * n + t]))
                destination[2 * t] = max(left, floor)
                destination[2 * t + 1] = max(right, floor)
            }
            // The pooled columns of the last, partial tile.
            for column in 2 * pairs ..< pool.width {
                let t = column / 2, first = 2 * (column % 2)
                let second = 4 * t + first + 1 < ow ? first + 1 : first
                let value = max(max(top[first * n + t], top[second * n + t]), max(bottom[first * n + t], bottom[second * n + t]))
                destination[column] = max(value, floor)
            }
        }
    }
}

/// Eight floats from `pointer`, no alignment needed.
@inline(__always)
func load8(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
}

/// Stores eight floats at `pointer`, no alignment needed.
@inline(__always)
func store8(_ values: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: values, as: SIMD8<Float>.self)
}

/// Runs `body(slot, range)` over `0..<count` in at most `min(team.threads, slots)` contiguous
/// chunks of at least `minimumChunk` items, each with its own `slot` index in `0 ..< slots` (for
/// per-thread scratch), on the team's pool. Blocks until all are done.
@inline(__always)
func parallelSlots(count: Int, slots: Int, minimumChunk: Int, team: KernelTeam, _ body: (Int, Range<Int>) -> Void) {
    guard count > 0 else { return }
    let threads = min(team.threads, slots, max(1, count / max(1, minimumChunk)))
    if threads <= 1 {
        body(0, 0..<count)
        return
    }
    parallelChunks(count: threads, minimumChunk: 1, team: team) { range in
        for t in range {
            let start = count * t / threads, end = count * (t + 1) / threads
            if start < end { body(t, start..<end) }
        }
    }
}
