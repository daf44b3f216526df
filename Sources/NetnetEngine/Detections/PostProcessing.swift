import Foundation

/// One detected object: class index (0-based over the model's object classes), its name, the
/// score (softmax probability) and the box `[x1, y1, x2, y2]` in the image's pixels.
public struct Detection: Sendable, Hashable, Codable {
    /// Class index among the model's object classes (background excluded).
    public var classIndex: Int
    /// The class name.
    public var label: String
    /// Softmax probability of the class.
    public var score: Float
    /// Corner box in image pixels: left, top, right, bottom.
    public var box: [Float]
    /// Creates a detection.
    public init(classIndex: Int, label: String, score: Float, box: [Float]) {
        self.classIndex = classIndex; self.label = label; self.score = score; self.box = box
    }
}

/// Post-processing limits. Value type.
public struct DetectionSettings: Sendable, Hashable {
    /// IoU above which a lower-scored box of the same class is suppressed.
    public var nmsIoU: Float = 0.45
    /// Detections kept over all classes, best first.
    public var keepTop: Int = 200
    /// Candidates per class that enter NMS (best first), bounding NMS's quadratic cost.
    public var candidatesPerClass: Int = 400
    /// The spec's defaults: IoU 0.45, top 200, 400 candidates a class.
    public init() {}
}

/// SSD prior boxes (docs/model-format.md, "Output layout"). Any thread.
public enum PriorBoxes {
    /// `[priors, 4]` in centre form (cx, cy, w, h), relative to the input, clipped to [0, 1] if set.
    public static func generate(plan: NetworkPlan) -> [Float] {
        let settings = plan.description.priors
        let size = Double(plan.description.inputSize)
        var result: [Float] = []
        result.reserveCapacity(plan.priorCount * 4)
        for (level, input) in plan.headInputs.enumerated() {
            let map = plan.buffers[input]
            let cells = size / settings.steps[level]
            let small = settings.minSizes[level] / size
            let large = (small * (settings.maxSizes[level] / size)).squareRoot()
            for y in 0..<map.height {
                for x in 0..<map.width {
                    let cx = (Double(x) + 0.5) / cells, cy = (Double(y) + 0.5) / cells
                    var boxes: [(Double, Double)] = [(small, small), (large, large)]
                    for ratio in settings.aspectRatios[level] {
                        let r = ratio.squareRoot()
                        boxes.append((small * r, small / r))
                        boxes.append((small / r, small * r))
                    }
                    for (w, h) in boxes {
                        var box = [cx, cy, w, h]
                        if settings.clip {
                            for i in (settings.clipCentres ? 0 : 2)..<4 { box[i] = min(max(box[i], 0), 1) }
                        }
                        result.append(contentsOf: box.map { Float($0) })
                    }
                }
            }
        }
        precondition(result.count == plan.priorCount * 4, "prior count \(result.count / 4) does not match the heads' \(plan.priorCount)")
        return result
    }
}

/// SSD box coding with variances. Any thread.
public enum BoxCoder {
    /// Decodes `count` location rows against `priors` into corner form `[x1, y1, x2, y2]` (relative).
    public static func decode(locations: UnsafePointer<Float>, priors: [Float], variances: [Double], count: Int,
                              into output: UnsafeMutablePointer<Float>) {
        let v0 = Float(variances[0]), v1 = Float(variances[1])
        priors.withUnsafeBufferPointer { prior in
            for i in 0..<count {
                let l = locations + i * 4, p = prior.baseAddress! + i * 4
                let cx = p[0] + l[0] * v0 * p[2]
                let cy = p[1] + l[1] * v0 * p[3]
                let w = p[2] * expf(l[2] * v1)
                let h = p[3] * expf(l[3] * v1)
                let o = output + i * 4
                o[0] = cx - w / 2; o[1] = cy - h / 2; o[2] = cx + w / 2; o[3] = cy + h / 2
            }
        }
    }
}

/// Per-class greedy non-maximum suppression. Any thread.
public enum NonMaximumSuppression {
    /// A kept candidate: which prior, which score column (≥ 1), its score.
    public struct Candidate: Sendable, Hashable {
        /// Prior (row) index.
        public var prior: Int
        /// Score column (1…classes; 0 is background).
        public var scoreIndex: Int
        /// The score.
        public var score: Float
    }

    /// For each class: candidates above `threshold` whose box keeps some area inside the image,
    /// best `candidatesPerClass`, greedy NMS at
    /// `nmsIoU`; then all classes together, best `keepTop`, best first (ties: lower prior first).
    public static func run(boxes: UnsafePointer<Float>, scores: UnsafePointer<Float>, priorCount: Int, scoreCount: Int,
                           threshold: Float, settings: DetectionSettings) -> [Candidate] {
        var kept: [Candidate] = []
        var candidates: [Candidate] = []
        for column in 1..<scoreCount {
            candidates.removeAll(keepingCapacity: true)
            for prior in 0..<priorCount {
                let score = scores[prior * scoreCount + column]
                if score > threshold, hasArea(boxes + prior * 4) {
                    candidates.append(Candidate(prior: prior, scoreIndex: column, score: score))
                }
            }
            if candidates.isEmpty { continue }
            candidates.sort { $0.score != $1.score ? $0.score > $1.score : $0.prior < $1.prior }
            if candidates.count > settings.candidatesPerClass { candidates.removeLast(candidates.count - settings.candidatesPerClass) }
            var selected: [Candidate] = []
            for candidate in candidates {
                let a = boxes + candidate.prior * 4
                var suppressed = false
                for other in selected where iou(a, boxes + other.prior * 4) > settings.nmsIoU {
                    suppressed = true
                    break
                }
                if !suppressed { selected.append(candidate) }
            }
            kept.append(contentsOf: selected)
        }
        kept.sort { $0.score != $1.score ? $0.score > $1.score : ($0.prior, $0.scoreIndex) < ($1.prior, $1.scoreIndex) }
        if kept.count > settings.keepTop { kept.removeLast(kept.count - settings.keepTop) }
        return kept
    }

    /// Whether a relative corner box is finite and keeps some area inside the image once clipped
    /// to [0, 1]: boxes that collapse onto an edge are not detections.
    @inline(__always)
    static func hasArea(_ b: UnsafePointer<Float>) -> Bool {
        guard b[0].isFinite, b[1].isFinite, b[2].isFinite, b[3].isFinite else { return false }
        let width = min(b[2], 1) - max(b[0], 0), height = min(b[3], 1) - max(b[1], 0)
        return width > 1e-4 && height > 1e-4
    }

    /// Intersection over union of two corner boxes.
    @inline(__always)
    static func iou(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>) -> Float {
        let iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        let ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        let inter = iw * ih
        let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return union > 0 ? inter / union : 0
    }
}
