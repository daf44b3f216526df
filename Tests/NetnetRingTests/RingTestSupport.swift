import Foundation
import Testing
@testable import NetnetRing

/// A ring slot for tests: an identity and a payload the producer writes.
final class TestSlot {
    let id: Int
    var value = -1
    init(id: Int) { self.id = id }
}

/// `count` fresh slots with ids 0…count-1.
func makeSlots(_ count: Int) -> [TestSlot] { (0..<count).map(TestSlot.init(id:)) }

/// Deterministic SplitMix64 generator, so every run sees the same operation sequences.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Records an invariant violation (with the step that caused it) as a test issue.
func checkInvariants<S>(_ ring: StageRing<S>, _ step: @autoclosure () -> String,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    if let violation = ring.invariantViolation() {
        Issue.record("after \(step()): \(violation)", sourceLocation: sourceLocation)
    }
}

/// Per-thread results; each instance is written by one thread and read after that thread ends
/// (the semaphore in `runThreads` orders the accesses).
final class Recorder: @unchecked Sendable {
    var values: [Int] = []
    var drops: [Int] = []
    var count = 0
    var gotNil = false
}

/// Runs each body on its own Foundation `Thread` and waits for all of them, at most `timeout`
/// seconds in total. On timeout, calls `onTimeout` (which should cancel the ring so the threads can
/// end), records an issue and returns false: a bug fails the test instead of hanging it.
@discardableResult
func runThreads(_ bodies: [@Sendable () -> Void], timeout: Double, onTimeout: () -> Void,
                sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    let done = DispatchSemaphore(value: 0)
    for body in bodies {
        let thread = Thread {
            body()
            done.signal()
        }
        thread.start()
    }
    let deadline = DispatchTime.now() + timeout
    for i in 0..<bodies.count where done.wait(timeout: deadline) == .timedOut {
        onTimeout()
        Issue.record("watchdog: \(bodies.count - i) of \(bodies.count) threads still running after \(timeout) s", sourceLocation: sourceLocation)
        // Give the cancelled threads a moment to leave, so they do not outlive the test's objects' use.
        for _ in i..<bodies.count { _ = done.wait(timeout: .now() + 2) }
        return false
    }
    return true
}

/// Monotonic nanoseconds.
func nowNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
