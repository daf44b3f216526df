import Foundation
import Testing
@testable import NetnetRing

/// Producer and stages on real threads. Every wait is bounded by a watchdog that cancels the ring,
/// so a bug fails the test instead of hanging it. Serialized: the timings need the two cores.
@Suite(.serialized) struct StageRingThreadTests {

    /// A stage's thread: records every value and drop count it is handed, in order, then whether
    /// it saw the end; waits `delay` µs on each slot.
    private func recordingStage(_ ring: StageRing<TestSlot>, stage: Int, _ recorder: Recorder,
                                delay: UInt32 = 0) -> @Sendable () -> Void {
        {
            while let (s, d) = ring.next(stage: stage) {
                recorder.values.append(s.value)
                recorder.drops.append(d)
                if delay > 0 { usleep(delay) }
                ring.complete(s, stage: stage)
            }
            recorder.gotNil = true
        }
    }

    /// Producer writes 0…count-1 into slots; stage 1 and stage 2 record what they see.
    private func run(policy: BackPressurePolicy, count: Int, capacity: Int, producerDelay: UInt32 = 0,
                     stage1Delay: UInt32 = 0, timeout: Double = 60) -> (first: Recorder, last: Recorder, ring: StageRing<TestSlot>, finished: Bool) {
        let ring = StageRing(slots: makeSlots(capacity), stageCount: 2, policy: policy)
        let first = Recorder(), last = Recorder()
        let producer: @Sendable () -> Void = {
            for i in 0..<count {
                guard let s = ring.acquire() else { return }
                s.value = i
                if producerDelay > 0 { usleep(producerDelay) }
                ring.submit(s)
            }
            ring.finish()
        }
        let stage1 = recordingStage(ring, stage: 1, first, delay: stage1Delay)
        let stage2 = recordingStage(ring, stage: 2, last)
        let ok = runThreads([producer, stage1, stage2], timeout: timeout, onTimeout: { ring.cancel() })
        return (first, last, ring, ok)
    }

    @Test func blockDeliversEveryItemInOrder() {
        let count = 10_000
        for capacity in [1, 3, 8] {
            let (first, last, ring, ok) = run(policy: .block, count: count, capacity: capacity)
            guard ok else { return }
            #expect(first.values == Array(0..<count), "capacity \(capacity): stage 1 order")
            #expect(last.values == Array(0..<count), "capacity \(capacity): stage 2 order")
            #expect(last.drops.allSatisfy { $0 == 0 })
            #expect(ring.droppedCount == 0)
            #expect(first.gotNil && last.gotNil)
            #expect(ring.invariantViolation() == nil)
            #expect(ring.depths == [0, 0])
        }
    }

    /// Annotate's inference workers: two threads share stage 1, finishing in whatever order; stage
    /// 2 must still see every item once, in order.
    @Test func twoThreadsInOneStageStillHandOverInOrder() {
        let count = 5_000
        for policy in BackPressurePolicy.allCases {
            let ring = StageRing(slots: makeSlots(6), stageCount: 2, policy: policy)
            let workers = [Recorder(), Recorder()], last = Recorder()
            let producer: @Sendable () -> Void = {
                for i in 0..<count {
                    guard let s = ring.acquire() else { return }
                    s.value = i
                    ring.submit(s)
                }
                ring.finish()
            }
            func worker(_ recorder: Recorder, seed: UInt64) -> @Sendable () -> Void {
                {
                    var random = SeededGenerator(seed: seed)
                    while let (s, _) = ring.next(stage: 1) {
                        recorder.values.append(s.value)
                        usleep(UInt32.random(in: 0...40, using: &random))   // uneven work: out-of-order completion
                        ring.complete(s, stage: 1)
                    }
                    recorder.gotNil = true
                }
            }
            let writer = recordingStage(ring, stage: 2, last)
            let ok = runThreads([producer, worker(workers[0], seed: 1), worker(workers[1], seed: 2), writer], timeout: 60,
                                onTimeout: { ring.cancel() })
            guard ok else { return }
            #expect(workers[0].gotNil && workers[1].gotNil && last.gotNil, "\(policy): a thread did not see the end")
            #expect(zip(last.values, last.values.dropFirst()).allSatisfy { $0 < $1 }, "\(policy): stage 2 out of order")
            #expect(Set(workers[0].values).isDisjoint(with: workers[1].values), "\(policy): an item went to both workers")
            #expect((workers[0].values + workers[1].values).sorted() == last.values, "\(policy): stage 2 saw other items than stage 1")
            if policy == .block {
                #expect(last.values == Array(0..<count))
                #expect(workers[0].values.count > 0 && workers[1].values.count > 0, "one worker did everything")
            } else {
                #expect(last.values.count + ring.droppedCount == count)
                #expect(last.drops.reduce(0, +) == ring.droppedCount)
            }
            #expect(ring.invariantViolation() == nil)
        }
    }

    @Test func latestWithASlowStageDropsAndCountsExactly() {
        let count = 10_000
        let (first, last, ring, ok) = run(policy: .latest, count: count, capacity: 4, producerDelay: 20,
                                          stage1Delay: 100)
        guard ok else { return }
        let dropped = ring.droppedCount
        print("latest, slow stage 1: \(count) produced, \(last.values.count) processed, \(dropped) dropped")
        #expect(dropped > 0, "a slow stage 1 should make the producer drop frames")
        #expect(last.values.count + dropped == count, "processed \(last.values.count) + dropped \(dropped) != \(count)")
        #expect(last.values == first.values)
        #expect(last.drops == first.drops, "droppedBefore is carried unchanged to the last stage")
        #expect(last.drops.reduce(0, +) == dropped)
        #expect(ring.undeliveredDrops == 0)
        // Strictly increasing, and droppedBefore is exactly the gap since the previous item.
        var previous = -1
        for (value, d) in zip(last.values, last.drops) {
            #expect(value > previous)
            #expect(d == value - previous - 1, "item \(value): droppedBefore \(d), gap \(value - previous - 1)")
            if value <= previous || d != value - previous - 1 { break }
            previous = value
        }
        // The newest frame is never dropped: the producer finished right after it.
        #expect(last.values.last == count - 1)
        #expect(ring.invariantViolation() == nil)
    }

    @Test func finishDrainsEveryQueuedItem() {
        let ring = StageRing(slots: makeSlots(6), stageCount: 2, policy: .block)
        for i in 0..<6 {
            let s = ring.acquire()!
            s.value = i
            ring.submit(s)
        }
        ring.finish()
        let first = Recorder(), last = Recorder()
        runThreads([
            { while let (s, _) = ring.next(stage: 1) { usleep(1_000); first.values.append(s.value); ring.complete(s, stage: 1) }; first.gotNil = true },
            { while let (s, _) = ring.next(stage: 2) { last.values.append(s.value); ring.complete(s, stage: 2) }; last.gotNil = true },
        ], timeout: 20, onTimeout: { ring.cancel() })
        #expect(first.values == Array(0..<6))
        #expect(last.values == Array(0..<6))
        #expect(first.gotNil && last.gotNil)
        #expect(ring.invariantViolation() == nil)
    }

    @Test func cancelWakesEveryWaiterPromptly() {
        for policy in BackPressurePolicy.allCases {
            let ring = StageRing(slots: makeSlots(2), stageCount: 3, policy: policy)
            // Both slots inside stage 1, so the producer waits under either policy; stages 2 and 3
            // wait for input.
            for _ in 0..<2 { ring.submit(ring.acquire()!) }
            _ = ring.next(stage: 1)!
            if policy == .block { _ = ring.next(stage: 1)! }
            if policy == .latest {
                // latest took the newest and freed the other; take it back and hand it to stage 1 too.
                ring.submit(ring.acquire()!)
                _ = ring.next(stage: 1)!
            }
            #expect(ring.invariantViolation() == nil)
            let results = (0..<3).map { _ in Recorder() }
            let started = DispatchSemaphore(value: 0)
            let bodies: [@Sendable () -> Void] = [
                { started.signal(); results[0].gotNil = ring.acquire() == nil },
                { started.signal(); results[1].gotNil = ring.next(stage: 2) == nil },
                { started.signal(); results[2].gotNil = ring.next(stage: 3) == nil },
            ]
            let canceller = Thread {
                for _ in 0..<3 { started.wait() }
                usleep(50_000)  // let them reach their waits
                ring.cancel()
            }
            canceller.start()
            let t0 = nowNanoseconds()
            let ok = runThreads(bodies, timeout: 5, onTimeout: { ring.cancel() })
            let elapsed = Double(nowNanoseconds() - t0) / 1e9
            #expect(ok, "\(policy): waiters did not wake")
            #expect(results.allSatisfy { $0.gotNil }, "\(policy)")
            #expect(elapsed < 2, "\(policy): cancel took \(elapsed) s to wake the waiters")
            #expect(ring.invariantViolation() == nil)
        }
    }

    @Test func finishWakesIdleStages() {
        let ring = StageRing(slots: makeSlots(2), stageCount: 2, policy: .block)
        let results = (0..<2).map { _ in Recorder() }
        let finisher = Thread {
            usleep(50_000)
            ring.finish()
        }
        finisher.start()
        let ok = runThreads([
            { results[0].gotNil = ring.next(stage: 1) == nil },
            { results[1].gotNil = ring.next(stage: 2) == nil },
        ], timeout: 5, onTimeout: { ring.cancel() })
        #expect(ok && results.allSatisfy { $0.gotNil })
    }

    /// Measures the cost of one acquire → submit → next → complete round trip: on one thread (the
    /// locking cost) and across a producer thread and a stage thread (including the hand-over).
    @Test func roundTripCostsMicroseconds() {
        let ring = StageRing(slots: makeSlots(4), stageCount: 1, policy: .block)
        let rounds = 200_000
        let t0 = nowNanoseconds()
        for i in 0..<rounds {
            let s = ring.acquire()!
            s.value = i
            ring.submit(s)
            let (t, _) = ring.next(stage: 1)!
            ring.complete(t, stage: 1)
        }
        let single = Double(nowNanoseconds() - t0) / Double(rounds)

        let threaded = StageRing(slots: makeSlots(4), stageCount: 2, policy: .block)
        let items = 100_000
        let t1 = nowNanoseconds()
        let ok = runThreads([
            { for i in 0..<items { let s = threaded.acquire()!; s.value = i; threaded.submit(s) }; threaded.finish() },
            { while let (s, _) = threaded.next(stage: 1) { threaded.complete(s, stage: 1) } },
            { while let (s, _) = threaded.next(stage: 2) { threaded.complete(s, stage: 2) } },
        ], timeout: 60, onTimeout: { threaded.cancel() })
        let perItem = Double(nowNanoseconds() - t1) / Double(items)
        print("StageRing round trip: \(String(format: "%.3f", single / 1000)) µs on one thread; "
              + "\(String(format: "%.3f", perItem / 1000)) µs per item through producer + 2 stage threads (4 slots)")
        #expect(ok)
        #expect(single < 20_000, "one-thread round trip \(single) ns")
        #expect(perItem < 200_000, "threaded per-item cost \(perItem) ns")
    }
}
