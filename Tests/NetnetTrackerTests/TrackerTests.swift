import Testing
@testable import NetnetTracker

/// The plain twin of `KalmanBox`: the textbook filter with the full 8×8 state (cx, cy, w, h and
/// their velocities), F, H, Q, R as dense matrices, and the 4×4 innovation inverted by
/// Gauss–Jordan elimination, in Double.
struct ReferenceKalman {
    var x: [Double]      // 8
    var p: [[Double]]    // 8×8
    let noise: KalmanNoise

    init(box: TrackBox, noise: KalmanNoise = KalmanNoise()) {
        self.noise = noise
        x = [Double(box.centerX), Double(box.centerY), Double(box.width), Double(box.height), 0, 0, 0, 0]
        let h = Double(max(box.height, 1))
        let pos = 2 * Double(noise.position) * h, vel = 10 * Double(noise.velocity) * h
        p = (0..<8).map { i in (0..<8).map { j in i == j ? (i < 4 ? pos * pos : vel * vel) : 0 } }
    }

    static func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        a.map { row in (0..<b[0].count).map { j in zip(row, b.map { $0[j] }).reduce(0) { $0 + $1.0 * $1.1 } } }
    }
    static func transpose(_ a: [[Double]]) -> [[Double]] { (0..<a[0].count).map { j in a.map { $0[j] } } }
    static func add(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] { zip(a, b).map { zip($0, $1).map { $0 + $1 } } }
    static func inverse(_ a: [[Double]]) -> [[Double]] {
        let n = a.count
        var m = a.enumerated().map { i, row in row + (0..<n).map { $0 == i ? 1.0 : 0.0 } }
        for c in 0..<n {
            let pivot = (c..<n).max { abs(m[$0][c]) < abs(m[$1][c]) }!
            m.swapAt(c, pivot)
            let d = m[c][c]
            m[c] = m[c].map { $0 / d }
            for r in 0..<n where r != c {
                let f = m[r][c]
                m[r] = zip(m[r], m[c]).map { $0 - f * $1 }
            }
        }
        return m.map { Array($0[n...]) }
    }

    var f: [[Double]] { (0..<8).map { i in (0..<8).map { j in i == j || j == i + 4 ? 1 : 0 } } }
    var hMatrix: [[Double]] { (0..<4).map { i in (0..<8).map { j in i == j ? 1 : 0 } } }

    mutating func predict() {
        let h = max(x[3], 1)
        let q = Double(noise.position) * h, r = Double(noise.velocity) * h
        let qMatrix = (0..<8).map { i in (0..<8).map { j in i == j ? (i < 4 ? q * q : r * r) : 0 } }
        x = Self.multiply(f, x.map { [$0] }).map { $0[0] }
        p = Self.add(Self.multiply(Self.multiply(f, p), Self.transpose(f)), qMatrix)
    }

    mutating func update(_ box: TrackBox) {
        let z = [Double(box.centerX), Double(box.centerY), Double(box.width), Double(box.height)]
        let m = Double(noise.measurement) * max(x[3], 1)
        let rMatrix = (0..<4).map { i in (0..<4).map { j in i == j ? m * m : 0 } }
        let ht = Self.transpose(hMatrix)
        let s = Self.add(Self.multiply(Self.multiply(hMatrix, p), ht), rMatrix)
        let k = Self.multiply(Self.multiply(p, ht), Self.inverse(s))              // 8×4
        let innovation = zip(z, Self.multiply(hMatrix, x.map { [$0] }).map { $0[0] }).map { $0 - $1 }
        x = zip(x, Self.multiply(k, innovation.map { [$0] }).map { $0[0] }).map { $0 + $1 }
        let kh = Self.multiply(k, hMatrix)
        let identityMinusKH = (0..<8).map { i in (0..<8).map { j in (i == j ? 1 : 0) - kh[i][j] } }
        p = Self.multiply(identityMinusKH, p)
    }
}

/// A small deterministic generator (SplitMix64) so every run tests the same cases.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

@Suite struct KalmanTests {
    @Test("the per-coordinate filter equals the full 8×8 twin over 200 noisy steps")
    func matchesTwin() {
        var random = SplitMix(state: 7)
        var fast = KalmanBox(box: TrackBox(x1: 100, y1: 50, x2: 140, y2: 150))
        var twin = ReferenceKalman(box: TrackBox(x1: 100, y1: 50, x2: 140, y2: 150))
        for step in 0..<200 {
            fast.predict(); twin.predict()
            if step % 4 != 3 {   // some frames without a measurement
                let cx = 120 + Float(step) * 1.5 + (random.unit() - 0.5) * 4
                let cy = 100 + Float(step) * 0.3 + (random.unit() - 0.5) * 4
                let box = TrackBox(centerX: cx, centerY: cy, width: 40 + random.unit() * 2, height: 100 + random.unit() * 3)
                fast.update(box); twin.update(box)
            }
            // Float against Double over a well-conditioned filter: relative 1e-4 of the state's scale.
            let state = [fast.value[0], fast.value[1], fast.value[2], fast.value[3]]
            for i in 0..<4 {
                #expect(abs(Double(state[i]) - twin.x[i]) <= 1e-4 * max(1, abs(twin.x[i])), "step \(step) value \(i)")
                #expect(abs(Double(fast.velocity[i]) - twin.x[i + 4]) <= 1e-4 * max(1, abs(twin.x[i])), "step \(step) velocity \(i)")
                #expect(abs(Double(fast.pp[i]) - twin.p[i][i]) <= 1e-4 * max(1, twin.p[i][i]), "step \(step) var \(i)")
                #expect(abs(Double(fast.pv[i]) - twin.p[i][i + 4]) <= 1e-4 * max(1, twin.p[i][i]), "step \(step) cov \(i)")
                #expect(abs(Double(fast.vv[i]) - twin.p[i + 4][i + 4]) <= 1e-4 * max(1, twin.p[i][i]), "step \(step) vvar \(i)")
            }
        }
        // It learned the motion, 1.5 px and 0.3 px a frame, within 4 of the filter's own standard
        // deviations of the velocity (sqrt(vv)).
        for (axis, truth) in [(0, Float(1.5)), (1, Float(0.3))] {
            #expect(abs(fast.velocity[axis] - truth) < 4 * fast.vv[axis].squareRoot(), "axis \(axis): \(fast.velocity) ± \(fast.vv.squareRoot())")
        }
    }
}

@Suite struct AssignmentTests {
    /// Every partial matching of allowed pairs: the most pairs, then the least cost.
    func bruteForce(_ costs: [Float], rows: Int, columns: Int, maxCost: Float) -> (pairs: Int, cost: Double) {
        var best = (pairs: 0, cost: 0.0)
        func search(_ row: Int, _ used: Set<Int>, _ pairs: Int, _ cost: Double) {
            if row == rows {
                if pairs > best.pairs || (pairs == best.pairs && cost < best.cost) { best = (pairs, cost) }
                return
            }
            search(row + 1, used, pairs, cost)
            for c in 0..<columns where !used.contains(c) && costs[row * columns + c] <= maxCost {
                search(row + 1, used.union([c]), pairs + 1, cost + Double(costs[row * columns + c]))
            }
        }
        search(0, [], 0, 0)
        return best
    }

    @Test("equals brute force on 600 random cost matrices up to 6×6, with forbidden pairs")
    func matchesBruteForce() {
        var random = SplitMix(state: 42)
        for case_ in 0..<600 {
            let rows = Int(random.next() % 6) + 1, columns = Int(random.next() % 6) + 1
            let costs = (0..<rows * columns).map { _ in random.unit() }
            let maxCost: Float = [0.3, 0.6, 0.8, 1.0][case_ % 4]
            let pairs = Assignment.solve(costs: costs, rows: rows, columns: columns, maxCost: maxCost)
            let expected = bruteForce(costs, rows: rows, columns: columns, maxCost: maxCost)
            #expect(Set(pairs.map(\.row)).count == pairs.count && Set(pairs.map(\.column)).count == pairs.count, "case \(case_): not one-to-one")
            #expect(pairs.allSatisfy { costs[$0.row * columns + $0.column] <= maxCost }, "case \(case_): a forbidden pair")
            let cost = pairs.reduce(0.0) { $0 + Double(costs[$1.row * columns + $1.column]) }
            #expect(pairs.count == expected.pairs, "case \(case_) \(rows)×\(columns): \(pairs.count) pairs, brute force \(expected.pairs)")
            #expect(abs(cost - expected.cost) < 1e-5, "case \(case_) \(rows)×\(columns): cost \(cost), brute force \(expected.cost)")
        }
    }

    @Test func emptyAndDegenerate() {
        #expect(Assignment.solve(costs: [], rows: 0, columns: 3, maxCost: 1).isEmpty)
        #expect(Assignment.solve(costs: [0.9], rows: 1, columns: 1, maxCost: 0.5).isEmpty)
        #expect(Assignment.solve(costs: [0.1, 0.2], rows: 2, columns: 1, maxCost: 1).map(\.row) == [0])
    }
}

/// A synthetic scene: objects moving at constant speeds, crossing, one hidden for some frames.
@Suite struct SyntheticSceneTests {
    struct Walker {
        var x: Float, y: Float, dx: Float, dy: Float
        var hidden: Range<Int> = 0..<0
        var frames: Range<Int>
        func box(at frame: Int) -> TrackBox { TrackBox(centerX: x + dx * Float(frame), centerY: y + dy * Float(frame), width: 40, height: 100) }
    }

    /// Runs the scene through a tracker; returns for each walker the ids its detections got, and the events.
    func run(_ walkers: [Walker], frames: Int, every: Int = 1, settings: TrackerSettings = TrackerSettings())
        -> (ids: [[Int?]], events: [TrackEvent], predicted: Int) {
        var tracker = Tracker(settings: settings, frameRate: 10)
        var ids = [[Int?]](repeating: [], count: walkers.count)
        var events: [TrackEvent] = []
        var predicted = 0
        for frame in 0..<frames {
            let visible = walkers.indices.filter { walkers[$0].frames.contains(frame) && !walkers[$0].hidden.contains(frame) }
            let inputs = frame % every == 0
                ? visible.map { TrackerInput(box: walkers[$0].box(at: frame), score: 0.9, classIndex: 0) } : nil
            let (boxes, new) = tracker.update(frame: frame, time: Double(frame) / 10, detections: inputs)
            events += new
            for box in boxes {
                if box.origin == .tracker { predicted += 1; continue }
                ids[visible[box.inputIndex!]].append(box.trackID)
            }
        }
        events += tracker.finish()
        return (ids, events, predicted)
    }

    @Test("two people crossing and one hidden for 6 frames keep their ids; one start and one end each")
    func crossingAndOcclusion() {
        let walkers = [
            Walker(x: 50, y: 200, dx: 6, dy: 0, frames: 0..<80),
            Walker(x: 530, y: 210, dx: -6, dy: 0, frames: 0..<80),         // crosses the first near frame 40
            Walker(x: 300, y: 500, dx: 1, dy: -2, hidden: 30..<36, frames: 5..<70),
        ]
        let (ids, events, _) = run(walkers, frames: 90)
        var idsSeen: [Int] = []
        for (w, got) in ids.enumerated() {
            let confirmed = got.compactMap { $0 }
            #expect(Set(confirmed).count == 1, "walker \(w) got ids \(Set(confirmed))")
            #expect(got.prefix(2).allSatisfy { $0 == nil } && got.dropFirst(2).allSatisfy { $0 != nil }, "walker \(w): \(got)")
            idsSeen += Set(confirmed)
        }
        #expect(Set(idsSeen).count == 3, "ids are unique per object: \(idsSeen)")
        let starts = events.compactMap { if case let .started(id, _, _, _) = $0 { id } else { nil } }
        let ends = events.compactMap { if case let .ended(summary) = $0 { summary } else { nil } }
        #expect(starts.sorted() == [1, 2, 3], "\(events)")
        #expect(ends.map(\.trackID).sorted() == [1, 2, 3], "\(events)")
        // The third walker's end: first and last detected frames, its duration.
        let third = ends.first { $0.trackID == ids[2].compactMap { $0 }.first }!
        #expect(third.firstFrame == 5 && third.lastFrame == 69 && abs(third.duration - 6.4) < 1e-9)
    }

    @Test("ids are never reused: an object that leaves for good and a new one get different ids")
    func idsNotReused() {
        let walkers = [Walker(x: 50, y: 200, dx: 5, dy: 0, frames: 0..<20), Walker(x: 50, y: 200, dx: 5, dy: 0, frames: 60..<80)]
        let (ids, events, _) = run(walkers, frames: 90)
        #expect(Set(ids[0].compactMap { $0 }) == [1] && Set(ids[1].compactMap { $0 }) == [2])
        #expect(events.filter { if case .ended = $0 { true } else { false } }.count == 2)
    }

    @Test("every 3rd frame: predictions fill the frames between, ids hold")
    func everyThirdFrame() {
        let walkers = [Walker(x: 50, y: 200, dx: 4, dy: 1, frames: 0..<60), Walker(x: 600, y: 220, dx: -4, dy: 0, frames: 0..<60)]
        let (ids, events, predicted) = run(walkers, frames: 60, every: 3)
        for got in ids { #expect(Set(got.compactMap { $0 }).count == 1, "\(got)") }
        #expect(predicted > 60, "the frames between inferences get predicted boxes: \(predicted)")
        #expect(events.filter { if case .started = $0 { true } else { false } }.count == 2)
    }

    @Test("a confirmed track's detection carries the filter's box after it (a KalmanBox fed the same boxes); none before confirmation")
    func estimateIsTheFilteredBox() {
        var tracker = Tracker(settings: TrackerSettings(), frameRate: 10)
        var twin: KalmanBox?
        var rng = SplitMix(state: 7)
        for frame in 0..<30 {
            // A walker whose detected box jitters by up to 3 px, as a detector's does.
            let jitter = { Float(rng.next() % 7) - 3 }
            let box = TrackBox(centerX: 100 + 5 * Float(frame) + jitter(), centerY: 300 + jitter(), width: 40 + jitter(), height: 100)
            if twin == nil { twin = KalmanBox(box: box) } else { twin!.predict(); twin!.update(box) }
            let out = tracker.update(frame: frame, time: Double(frame) / 10, detections: [TrackerInput(box: box, score: 0.9, classIndex: 0)]).boxes
            #expect(out.count == 1 && out[0].box == box, "the detection's own box is kept")
            if out[0].trackID == nil {
                #expect(out[0].estimate == nil, "frame \(frame): unconfirmed, no estimate")
            } else {
                #expect(out[0].estimate == twin!.box, "frame \(frame): \(String(describing: out[0].estimate)) vs \(twin!.box)")
            }
        }
        // A frame without inference: the estimate is the prediction the box already is.
        let predicted = tracker.update(frame: 30, time: 3, detections: nil).boxes
        #expect(predicted.count == 1 && predicted[0].estimate == predicted[0].box && predicted[0].origin == .tracker)
    }

    @Test("a person standing still is marked stationary and keeps one track")
    func stationary() {
        var settings = TrackerSettings()
        settings.stationarySeconds = 2
        var tracker = Tracker(settings: settings, frameRate: 10)
        var last: TrackedBox?
        for frame in 0..<50 {
            let box = TrackBox(centerX: 200 + Float(frame % 2), centerY: 300, width: 40, height: 100)
            last = tracker.update(frame: frame, time: Double(frame) / 10, detections: [TrackerInput(box: box, score: 0.8, classIndex: 0)]).boxes.first
        }
        #expect(last?.stationary == true && last?.trackID == 1)
    }

    @Test("confirmation takes the same time at any frame rate: 0.2 s is 3 frames at 10 fps, 6 at 25, 7 at 30")
    func confirmationInTime() {
        #expect(Tracker(frameRate: 10).framesToConfirm == 3)
        #expect(Tracker(frameRate: 25).framesToConfirm == 6)
        #expect(Tracker(frameRate: 30).framesToConfirm == 7)
        #expect(Tracker(frameRate: 5).framesToConfirm == 2)
        // A bogus rate (a stream's time base taken for its frame rate) cannot keep ids away for good.
        #expect(Tracker(frameRate: 90_000).framesToConfirm == 100)
        #expect(Tracker(frameRate: .infinity).framesToConfirm == 3)
        var immediate = TrackerSettings()
        immediate.confirmSeconds = 0
        #expect(Tracker(settings: immediate, frameRate: 25).framesToConfirm == 1)
        var counted = TrackerSettings()
        counted.confirmFrames = 4
        #expect(Tracker(settings: counted, frameRate: 25).framesToConfirm == 4)

        // At 25 fps a walker's detections get an id at the sixth frame, not the third.
        var tracker = Tracker(frameRate: 25)
        var ids: [Int?] = []
        for frame in 0..<8 {
            let box = TrackBox(centerX: 200 + 2 * Float(frame), centerY: 300, width: 40, height: 100)
            ids += tracker.update(frame: frame, time: Double(frame) / 25,
                                  detections: [TrackerInput(box: box, score: 0.8, classIndex: 0)]).boxes.map(\.trackID)
        }
        #expect(ids == [nil, nil, nil, nil, nil, 1, 1, 1])
    }

    @Test("confirm and confirm_frames are settings with their ranges")
    func confirmSettings() throws {
        var settings = TrackerSettings()
        try settings.apply("confirm=0.5")
        #expect(settings.confirmSeconds == 0.5 && settings.confirmFrames == nil)
        try settings.apply("confirm_frames=2")
        #expect(settings.confirmFrames == 2 && Tracker(settings: settings, frameRate: 25).framesToConfirm == 2)
        #expect(throws: TrackerSettingError.self) { try settings.apply("confirm=11") }
        #expect(throws: TrackerSettingError.self) { try settings.apply("confirm_frames=0") }
    }
}
