import Foundation
import Testing

/// One detection as a `netnet.frame/1` line writes it.
struct LineDetection: CustomStringConvertible {
    var classIndex: Int, score: Double, box: [Double]
    var description: String { "class \(classIndex) score \(score) box \(box)" }

    init(classIndex: Int, score: Double, box: [Double]) {
        self.classIndex = classIndex
        self.score = score
        self.box = box
    }

    /// From a parsed line's `detections` entry; nil if a key is missing.
    init?(json: Any) {
        guard let object = json as? [String: Any], let classIndex = object["class"] as? Int,
              let score = object["score"] as? Double, let box = object["box"] as? [Double], box.count == 4 else { return nil }
        self.init(classIndex: classIndex, score: score, box: box)
    }

    func iou(_ other: LineDetection) -> Double {
        let w = max(0, min(box[2], other.box[2]) - max(box[0], other.box[0]))
        let h = max(0, min(box[3], other.box[3]) - max(box[1], other.box[1]))
        let union = (box[2] - box[0]) * (box[3] - box[1]) + (other.box[2] - other.box[0]) * (other.box[3] - other.box[1]) - w * h
        return union > 0 ? w * h / union : 0
    }
}

/// How far two correct runs of one model on one frame may differ (docs/json-lines.md,
/// "Reproducibility"), and the post-processing settings whose edges let a box come and go.
///
/// The heads of two correct runs (any thread or worker count, ISA, GEMM library) are each within
/// the engine's golden bound of the exact network, 1e-4 of each head tensor's largest magnitude
/// (GoldenTests), so within 2e-4 of it of each other. With logits and box offsets under 20 in
/// magnitude (`headLimit`; the bundled model's on the sample footage: 9.4 and 12.8):
/// - a score is a softmax of the class logits, whose derivative is at most ½ in the largest
///   logit change (∂pᵢ/∂zⱼ = pᵢ(δᵢⱼ − pⱼ)): |Δscore| ≤ ½ · 2e-4 · 20 = 2e-3;
/// - a corner is centre ± ½ size, the centre moved by 0.1 · offset · prior size and the size
///   exp(0.2 · offset) · prior size: it moves by at most 0.1 · 2e-4 · 20 (centre) +
///   ½ · 0.2 · 2e-4 · 20 · the box's size (≤ 1 image: clipped) = 8e-4 of the image's side,
///   held to 2e-3.
/// Writing rounds a score to 5 decimals and a coordinate to 0.01 px on top.
struct DetectionTolerance {
    /// The largest |logit| and |box offset| the derivation above assumes.
    static let headLimit: Float = 20
    var score = 2e-3
    /// Of the frame's larger side.
    var box = 2e-3
    var threshold: Double
    var nmsIoU = 0.45
    var keepTop = 200
}

/// What differs between two runs' detections of one frame beyond `tolerance`: boxes matched by
/// class, score and coordinates; a box in one run only is a problem unless it sits at an edge of
/// the post-processing where a change within the tolerance may add or remove it: a score within
/// the tolerance of the threshold (or of the last kept box when `keepTop` boxes were kept), or
/// an NMS decision (a same-class box of the other run, scored no lower within the tolerance,
/// whose overlap with it is within the tolerance's reach of the NMS IoU). Two boxes of tied
/// scores that swap places are not excused: seen from the lines, that is a box that moved.
func detectionDifferences(_ first: [LineDetection], _ second: [LineDetection], width: Int, height: Int,
                          tolerance: DetectionTolerance) -> [String] {
    let size = Double(max(width, height))
    var unmatchedSecond = Array(second.indices)
    var onlyFirst: [Int] = []
    for (i, a) in first.enumerated() {
        var best: (error: Double, index: Int)?
        for (slot, j) in unmatchedSecond.enumerated() {
            let b = second[j]
            guard b.classIndex == a.classIndex, abs(b.score - a.score) <= tolerance.score else { continue }
            let error = zip(a.box, b.box).map { abs($0 - $1) }.max()! / size
            if error <= tolerance.box && (best == nil || error < best!.error) { best = (error, slot) }
        }
        if let best { unmatchedSecond.remove(at: best.index) } else { onlyFirst.append(i) }
    }
    func excused(_ d: LineDetection, run: [LineDetection], other: [LineDetection]) -> Bool {
        if d.score - tolerance.threshold <= tolerance.score { return true }
        if run.count >= tolerance.keepTop || other.count >= tolerance.keepTop,
           let last = (run + other).map(\.score).sorted(by: >).dropFirst(tolerance.keepTop - 1).first,
           d.score - last <= tolerance.score { return true }
        // Moving every corner of two boxes by δ changes their IoU by at most about 8δ / the
        // smaller box's side.
        let δ = tolerance.box * size
        return other.contains { z in
            guard z.classIndex == d.classIndex, z.score >= d.score - tolerance.score else { return false }
            let side = max(1e-9, min(d.box[2] - d.box[0], d.box[3] - d.box[1], z.box[2] - z.box[0], z.box[3] - z.box[1]))
            let reach = 8 * δ / side
            let overlap = d.iou(z)
            return abs(overlap - tolerance.nmsIoU) <= reach
        }
    }
    var problems: [String] = []
    for i in onlyFirst where !excused(first[i], run: first, other: second) { problems.append("only in the first run: \(first[i])") }
    for j in unmatchedSecond where !excused(second[j], run: second, other: first) { problems.append("only in the second run: \(second[j])") }
    return problems
}

@Suite("comparing detections of two runs")
struct DetectionMatchingTests {
    static let tolerance = DetectionTolerance(threshold: 0.3)
    static let frame = [LineDetection(classIndex: 0, score: 0.91, box: [100, 100, 150, 220]),
                        LineDetection(classIndex: 0, score: 0.62, box: [400, 90, 440, 190]),
                        LineDetection(classIndex: 1, score: 0.301, box: [10, 10, 60, 40])]

    @Test("the same boxes moved within the tolerance match; beyond it, or missing away from an edge, they do not")
    func rules() {
        let size = 768.0
        #expect(detectionDifferences(Self.frame, Self.frame, width: 768, height: 576, tolerance: Self.tolerance).isEmpty)
        var within = Self.frame
        within[0].box[0] += 0.9 * Self.tolerance.box * size
        within[1].score += 0.9 * Self.tolerance.score
        #expect(detectionDifferences(Self.frame, within, width: 768, height: 576, tolerance: Self.tolerance).isEmpty)
        var moved = Self.frame
        moved[0].box[2] += 1.5 * Self.tolerance.box * size
        #expect(detectionDifferences(Self.frame, moved, width: 768, height: 576, tolerance: Self.tolerance).count == 2,
                "a moved box is missing from each side")
        var rescored = Self.frame
        rescored[1].score -= 1.5 * Self.tolerance.score
        #expect(!detectionDifferences(Self.frame, rescored, width: 768, height: 576, tolerance: Self.tolerance).isEmpty)
        // A box at the threshold may come and go; a confident one may not.
        #expect(detectionDifferences(Self.frame, Array(Self.frame.prefix(2)), width: 768, height: 576, tolerance: Self.tolerance).isEmpty)
        #expect(detectionDifferences(Self.frame, [Self.frame[0], Self.frame[2]], width: 768, height: 576,
                                     tolerance: Self.tolerance) == ["only in the first run: \(Self.frame[1])"])
    }

    @Test("NMS: a box that an overlap at the NMS IoU suppresses in one run only is excused; one clear of it is not")
    func nmsEdges() {
        let keeper = LineDetection(classIndex: 0, score: 0.9, box: [0, 0, 100, 100])
        // IoU of [0,0,100,100] and [x,0,100+x,100] is (100 - x) / (100 + x): 0.45 at x ≈ 37.93.
        let edge = LineDetection(classIndex: 0, score: 0.8, box: [37.9, 0, 137.9, 100])
        #expect(detectionDifferences([keeper, edge], [keeper], width: 768, height: 576, tolerance: Self.tolerance).isEmpty)
        let clear = LineDetection(classIndex: 0, score: 0.8, box: [60, 0, 160, 100])   // IoU 0.25
        #expect(detectionDifferences([keeper, clear], [keeper], width: 768, height: 576, tolerance: Self.tolerance).count == 1)
        let otherClass = LineDetection(classIndex: 1, score: 0.8, box: [37.9, 0, 137.9, 100])
        #expect(detectionDifferences([keeper, otherClass], [keeper], width: 768, height: 576, tolerance: Self.tolerance).count == 1)
    }
}
