import Foundation
import XCTest
@testable import NetnetEngine

/// XCTest on purpose: the suite keeps XCTest's closing line meaningful beside Swift Testing's.
final class PostProcessingTests: XCTestCase {
    func testDecodeIdentity() {
        let priors: [Float] = [0.5, 0.5, 0.2, 0.4, 0.1, 0.9, 0.05, 0.1]
        let loc = [Float](repeating: 0, count: 8)
        var out = [Float](repeating: 0, count: 8)
        BoxCoder.decode(locations: loc, priors: priors, variances: [0.1, 0.2], count: 2, into: &out)
        let expected: [Float] = [0.4, 0.3, 0.6, 0.7, 0.075, 0.85, 0.125, 0.95]
        for i in 0..<8 { XCTAssertEqual(out[i], expected[i], accuracy: 1e-6) }
    }

    func testDecodeVariances() {
        let priors: [Float] = [0.5, 0.5, 0.2, 0.2]
        let loc: [Float] = [1, -1, 1, 0]
        var out = [Float](repeating: 0, count: 4)
        BoxCoder.decode(locations: loc, priors: priors, variances: [0.1, 0.2], count: 1, into: &out)
        let w = 0.2 * expf(0.2)
        XCTAssert(abs(out[0] - (0.52 - w / 2)) < 1e-6)
        XCTAssert(abs(out[1] - (0.48 - 0.1)) < 1e-6)
        XCTAssert(abs(out[2] - (0.52 + w / 2)) < 1e-6)
    }

    func testNms() {
        // Three priors; two overlap heavily.
        let boxes: [Float] = [0, 0, 0.5, 0.5, 0.025, 0.025, 0.5, 0.5, 0.6, 0.6, 0.9, 0.9]
        // Columns: background, cat, dog.
        let scores: [Float] = [0.1, 0.8, 0.1,
                               0.1, 0.7, 0.6,
                               0.5, 0.3, 0.2]
        let kept = NonMaximumSuppression.run(boxes: boxes, scores: scores, priorCount: 3, scoreCount: 3,
                                             threshold: 0.25, settings: DetectionSettings())
        XCTAssert(kept.map(\.prior) == [0, 1, 2])
        XCTAssert(kept.map(\.scoreIndex) == [1, 2, 1])
        var settings = DetectionSettings()
        settings.keepTop = 1
        XCTAssert(NonMaximumSuppression.run(boxes: boxes, scores: scores, priorCount: 3, scoreCount: 3,
                                          threshold: 0.25, settings: settings).count == 1)
    }

    func testDegenerateBoxesAreNotDetections() {
        // A box collapsed onto the right edge, a NaN box, and a good one.
        let boxes: [Float] = [1.2, 0.1, 1.5, 0.4, .nan, 0, 0.5, 0.5, 0.1, 0.1, 0.3, 0.3]
        let scores: [Float] = [0.1, 0.9, 0.1, 0.9, 0.2, 0.8]
        let kept = NonMaximumSuppression.run(boxes: boxes, scores: scores, priorCount: 3, scoreCount: 2,
                                             threshold: 0.5, settings: DetectionSettings())
        XCTAssertEqual(kept.map(\.prior), [2])
    }

    func testIou() {
        let a: [Float] = [0, 0, 2, 2], b: [Float] = [1, 0, 3, 2], c: [Float] = [5, 5, 6, 6]
        XCTAssert(NonMaximumSuppression.iou(a, a) == 1)
        XCTAssert(abs(NonMaximumSuppression.iou(a, b) - 1.0 / 3.0) < 1e-6)
        XCTAssert(NonMaximumSuppression.iou(a, c) == 0)
    }

    func testFirstPriors() {
        let plan = NetworkPlan(ModelDescription(network: .ssdVGG16_300, width: 0.125, classes: ["a"]))
        let p = PriorBoxes.generate(plan: plan)
        let cell = Float(0.5 / (300.0 / 8.0))
        XCTAssert(abs(p[0] - cell) < 1e-6 && abs(p[2] - 0.07) < 1e-6)
        XCTAssert(abs(p[6] - Float((0.07 * 0.15).squareRoot())) < 1e-6)
        XCTAssert(abs(p[10] - Float(0.07 * 2.0.squareRoot())) < 1e-6)
    }
}
