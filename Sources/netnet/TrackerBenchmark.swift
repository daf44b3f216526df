import Foundation
import NetnetTracker

/// The tracker's cost (`netnet bench --tracker`): a synthetic scene of `boxes` people walking at
/// constant speeds across a 1920×1080 frame (each box jittered by a pixel, new ones entering as
/// others leave), `Tracker.update` timed frame by frame after a warm-up. Single-threaded, like
/// the tracker. Any thread.
enum TrackerBenchmark {
    /// Median and mean microseconds per `update` with `boxes` detections a frame over `frames`
    /// timed frames (after `warmup`), and the tracks alive at the end.
    static func run(boxes: Int, frames: Int = 400, warmup: Int = 50) -> (median: Double, mean: Double, tracks: Int) {
        var tracker = Tracker(frameRate: 25)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func unit() -> Float {   // SplitMix64: the same scene every run
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24)
        }
        struct Walker { var x, y, dx, dy, w, h: Float }
        func spawn() -> Walker {
            Walker(x: unit() * 1880, y: unit() * 980, dx: (unit() - 0.5) * 8, dy: (unit() - 0.5) * 4,
                   w: 20 + unit() * 40, h: 60 + unit() * 100)
        }
        var walkers = (0..<boxes).map { _ in spawn() }
        var times: [Double] = []
        times.reserveCapacity(frames)
        var inputs = [TrackerInput]()
        inputs.reserveCapacity(boxes)
        for frame in 0..<(warmup + frames) {
            inputs.removeAll(keepingCapacity: true)
            for i in walkers.indices {
                walkers[i].x += walkers[i].dx
                walkers[i].y += walkers[i].dy
                if walkers[i].x < 0 || walkers[i].x > 1900 || walkers[i].y < 0 || walkers[i].y > 1060 { walkers[i] = spawn() }
                let w = walkers[i]
                let jx = unit() - 0.5, jy = unit() - 0.5
                inputs.append(TrackerInput(box: TrackBox(x1: w.x + jx, y1: w.y + jy, x2: w.x + w.w + jx, y2: w.y + w.h + jy),
                                           score: 0.5 + unit() * 0.5, classIndex: 0))
            }
            let start = DispatchTime.now().uptimeNanoseconds
            _ = tracker.update(frame: frame, time: Double(frame) / 25, detections: inputs)
            let took = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3
            if frame >= warmup { times.append(took) }
        }
        let sorted = times.sorted()
        return (sorted[sorted.count / 2], times.reduce(0, +) / Double(times.count), tracker.trackCount)
    }
}
