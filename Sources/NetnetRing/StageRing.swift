#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What the producer does when the ring is full. `block` for offline work (files: every frame is
/// processed, the reader waits); `latest` for live sources (cameras: a stale frame is dropped and
/// counted so the pipeline works on the newest one). Value type; any thread.
public enum BackPressurePolicy: String, Sendable, CaseIterable {
    /// The producer waits for a free slot; nothing is ever dropped.
    case block
    /// Frames that stage 1 has not started are dropped (and counted) in favour of newer ones.
    case latest
}

/// A fixed set of slots (allocated once, by the caller) cycling through `stageCount` consumer
/// stages after the producer: producer → stage 1 → … → stage N → free. Thread-safe: one producer
/// thread, one or more threads per stage (each `next` hands a slot to one of them; `complete`
/// keeps the order, so several workers may share a stage); `cancel()`, `droppedCount`, `depths`
/// and `invariantViolation()` from any thread.
///
/// Every slot is, at any moment, in exactly one place: the free queue, the producer's hands, the
/// queue waiting for stage k, or stage k's hands. Queues are fixed-capacity circular queues of slot
/// indices over one allocation made at `init`; no operation allocates. One `pthread_mutex` guards
/// the state; each waiter role (the producer, each stage) has its own condition variable, so a
/// hand-over wakes exactly the thread that can use it.
///
/// Sequence numbers: `submit` stamps each slot with the next number (0, 1, 2, …). Every queue is
/// FIFO in that number, and slots leave every stage in that order (`complete` out of order is held
/// back until the older slots of that stage complete).
///
/// Drops (policy `latest` only) happen where stage 1 would otherwise fall behind: `acquire` takes
/// back the oldest slot still waiting for stage 1, and `next(stage: 1)` skips older waiting slots in
/// favour of the newest. Each drop is counted once in `droppedCount`, and reported once, as
/// `droppedBefore`, with the next slot stage 1 returns; that slot carries the number through every
/// later stage, so the last stage (the writer) sees the same `droppedBefore` and can put it in the
/// frame's JSON line.
///
/// Sizing: `stageCount + 2` slots let every thread work at once (one slot being filled, one in each
/// stage, one waiting), which is what both policies need; more slots only add latency under
/// `block` and change nothing under `latest` (stage 1 always takes the newest). Under `latest` only
/// frames waiting for stage 1 are dropped: if a later stage is the bottleneck, its queue fills and
/// the producer waits as under `block`.
public final class StageRing<Slot: AnyObject>: @unchecked Sendable {
    /// The slots, in the order given at `init`; a slot's position here is its index.
    private let slots: [Slot]
    /// Slot object → index; immutable after `init`, so read without the lock.
    private let indexOf: [ObjectIdentifier: Int]
    /// Number of consumer stages.
    public let stageCount: Int
    /// The back-pressure policy chosen at `init`.
    public let policy: BackPressurePolicy

    // Place codes in `place`: producerPlace, freePlace, k (waiting for stage k), stageCount + k (in stage k).
    private static var producerPlace: Int { -1 }
    private static var freePlace: Int { 0 }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// `conditions[0]` wakes the producer; `conditions[k]` wakes stage k.
    private let conditions: UnsafeMutablePointer<pthread_cond_t>
    /// One allocation holding every queue's storage: `queueCount × slots.count` indices.
    private let queueStorage: UnsafeMutablePointer<Int>
    /// Queue 0: free. Queue k (1…N): waiting for stage k. Queue N + k: in stage k, in order.
    private let queues: UnsafeMutablePointer<IndexQueue>
    private let queueCount: Int
    /// Per slot: where it is (place code).
    private let place: UnsafeMutablePointer<Int>
    /// Per slot: the sequence number `submit` stamped on it.
    private let sequence: UnsafeMutablePointer<Int>
    /// Per slot: drops reported with it (`droppedBefore`), fixed when stage 1 takes it.
    private let carriedDrops: UnsafeMutablePointer<Int>
    /// Per slot: completed by its current stage but held back behind an older slot of that stage.
    private let completed: UnsafeMutablePointer<Bool>

    private var nextSequence = 0
    private var producerHeld = 0
    private var dropped = 0
    /// Drops not yet handed to stage 1 as `droppedBefore`.
    private var pendingDrops = 0
    /// Drops handed to stage 1 as `droppedBefore`.
    private var deliveredDrops = 0
    private var finished = false
    private var cancelled = false

    /// Creates a ring over `slots` (at least one; each object once) with `stageCount` (≥ 1) consumer
    /// stages; every slot starts free. Allocates all the ring's memory. Any thread, before sharing.
    public init(slots: [Slot], stageCount: Int, policy: BackPressurePolicy) {
        precondition(!slots.isEmpty, "StageRing needs at least one slot")
        precondition(stageCount >= 1, "StageRing needs at least one consumer stage")
        var indexOf: [ObjectIdentifier: Int] = [:]
        for (i, slot) in slots.enumerated() {
            let previous = indexOf.updateValue(i, forKey: ObjectIdentifier(slot))
            precondition(previous == nil, "StageRing: slot \(i) is the same object as slot \(previous!)")
        }
        self.slots = slots
        self.indexOf = indexOf
        self.stageCount = stageCount
        self.policy = policy
        let n = slots.count
        queueCount = 2 * stageCount + 1

        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        conditions = .allocate(capacity: stageCount + 1)
        for i in 0...stageCount { pthread_cond_init(conditions + i, nil) }

        queueStorage = .allocate(capacity: queueCount * n)
        queueStorage.initialize(repeating: -1, count: queueCount * n)
        queues = .allocate(capacity: queueCount)
        for q in 0..<queueCount {
            (queues + q).initialize(to: IndexQueue(storage: queueStorage + q * n, capacity: n))
        }
        place = .allocate(capacity: n)
        place.initialize(repeating: Self.freePlace, count: n)
        sequence = .allocate(capacity: n)
        sequence.initialize(repeating: -1, count: n)
        carriedDrops = .allocate(capacity: n)
        carriedDrops.initialize(repeating: 0, count: n)
        completed = .allocate(capacity: n)
        completed.initialize(repeating: false, count: n)
        for i in 0..<n { queues[0].pushBack(i) }
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        for i in 0...stageCount { pthread_cond_destroy(conditions + i) }
        conditions.deallocate()
        queues.deinitialize(count: queueCount)
        queues.deallocate()
        queueStorage.deallocate()
        place.deallocate()
        sequence.deallocate()
        carriedDrops.deallocate()
        completed.deallocate()
    }

    /// Number of slots the ring cycles. Any thread.
    public var capacity: Int { slots.count }

    // MARK: Producer

    /// Producer: a free slot to fill. `block`: waits until one is free (never drops). `latest`: if
    /// none is free, takes back the OLDEST slot still waiting for stage 1 (a stale frame never
    /// processed), counts it as dropped, and returns it; waits only if every slot is inside a stage
    /// (or in the producer's hands). nil once cancelled. Producer thread only.
    public func acquire() -> Slot? {
        lock()
        defer { unlock() }
        var index: Int
        while true {
            if cancelled { return nil }
            if !queues[0].isEmpty {
                index = queues[0].popFront()
                break
            }
            if policy == .latest && !queues[1].isEmpty {
                index = queues[1].popFront()
                dropped += 1
                pendingDrops += 1
                break
            }
            pthread_cond_wait(conditions, mutex)
        }
        place[index] = Self.producerPlace
        producerHeld += 1
        return slots[index]
    }

    /// Producer: hands a filled slot (one `acquire` returned) to stage 1, behind every slot submitted
    /// before it (FIFO). Never waits. Producer thread only.
    public func submit(_ slot: Slot) {
        let index = self.index(of: slot)
        lock()
        defer { unlock() }
        precondition(place[index] == Self.producerPlace, "StageRing.submit: slot \(index) is not held by the producer")
        producerHeld -= 1
        sequence[index] = nextSequence
        nextSequence += 1
        queues[1].pushBack(index)
        place[index] = 1
        pthread_cond_signal(conditions + 1)
    }

    /// Producer: gives back a slot `acquire` returned without submitting it (for instance when the
    /// source ends after the slot was taken); it becomes free. If `acquire` dropped a waiting frame to
    /// get it, that drop stays counted and is reported with the next slot stage 1 returns (or stays in
    /// `undeliveredDrops` if none follows). Producer thread only.
    public func release(_ slot: Slot) {
        let index = self.index(of: slot)
        lock()
        defer { unlock() }
        precondition(place[index] == Self.producerPlace, "StageRing.release: slot \(index) is not held by the producer")
        producerHeld -= 1
        queues[0].pushBack(index)
        place[index] = Self.freePlace
    }

    /// Producer: no more slots will be submitted; each stage drains what is queued before it and
    /// then gets nil from `next`. Call after the last `submit` (slots still held by the producer are
    /// simply never delivered). Producer thread (or any thread once the producer has stopped).
    public func finish() {
        lock()
        defer { unlock() }
        finished = true
        broadcastAll()
    }

    /// Anyone: stop now; every waiting call (and every later `acquire`/`next`) returns nil. Slots in
    /// flight stay with their holders; `submit`, `release` and `complete` still move them so the
    /// bookkeeping stays whole. Used on errors and on SIGINT. Any thread.
    public func cancel() {
        lock()
        defer { unlock() }
        cancelled = true
        broadcastAll()
    }

    // MARK: Stages

    /// Stage k (1…stageCount): the next slot in order, waiting if none; nil once the producer has
    /// finished and everything before stage k is drained, or once cancelled. For stage 1 under
    /// `latest`: if several slots wait, takes the NEWEST and drops the older ones (recycled to free,
    /// counted). `droppedBefore` = slots dropped since the previous slot this stage returned (the same
    /// number at every stage for a given slot). Stage k's thread only.
    public func next(stage: Int) -> (slot: Slot, droppedBefore: Int)? {
        precondition(stage >= 1 && stage <= stageCount, "StageRing.next: stage \(stage) outside 1...\(stageCount)")
        lock()
        defer { unlock() }
        while true {
            if cancelled { return nil }
            if !queues[stage].isEmpty {
                if stage == 1 && policy == .latest && queues[1].count > 1 {
                    while queues[1].count > 1 {
                        let stale = queues[1].popFront()
                        queues[0].pushBack(stale)
                        place[stale] = Self.freePlace
                        dropped += 1
                        pendingDrops += 1
                    }
                    pthread_cond_signal(conditions)
                }
                let index = queues[stage].popFront()
                if stage == 1 {
                    carriedDrops[index] = pendingDrops
                    deliveredDrops += pendingDrops
                    pendingDrops = 0
                }
                queues[stageCount + stage].pushBack(index)
                place[index] = stageCount + stage
                completed[index] = false
                return (slots[index], carriedDrops[index])
            }
            if finished && drained(before: stage) { return nil }
            pthread_cond_wait(conditions + stage, mutex)
        }
    }

    /// Stage k: done with the slot (one `next(stage: k)` returned); it goes to stage k+1's queue (or
    /// free after the last stage). Order is preserved: if older slots of stage k are still being
    /// worked on, this one follows them when they complete. Never waits. Stage k's thread only.
    public func complete(_ slot: Slot, stage: Int) {
        precondition(stage >= 1 && stage <= stageCount, "StageRing.complete: stage \(stage) outside 1...\(stageCount)")
        let index = self.index(of: slot)
        lock()
        defer { unlock() }
        precondition(place[index] == stageCount + stage && !completed[index],
                     "StageRing.complete: slot \(index) is not being worked on by stage \(stage)")
        completed[index] = true
        let held = stageCount + stage
        var moved = false
        while !queues[held].isEmpty && completed[queues[held].front] {
            let done = queues[held].popFront()
            completed[done] = false
            if stage < stageCount {
                queues[stage + 1].pushBack(done)
                place[done] = stage + 1
            } else {
                queues[0].pushBack(done)
                place[done] = Self.freePlace
            }
            moved = true
        }
        if finished {
            broadcastAll()  // later stages may now be drained
        } else if moved {
            pthread_cond_signal(conditions + (stage < stageCount ? stage + 1 : 0))
        }
    }

    // MARK: Metrics and checks

    /// Total slots dropped since `init` (policy `latest`; always 0 under `block`). Any thread.
    public var droppedCount: Int {
        lock()
        defer { unlock() }
        return dropped
    }

    /// Drops not yet reported through `droppedBefore` (they will be, with the next slot stage 1
    /// returns). Nonzero after the run only if the producer released, rather than submitted, a slot
    /// `acquire` had to drop a frame for. Any thread.
    public var undeliveredDrops: Int {
        lock()
        defer { unlock() }
        return pendingDrops
    }

    /// Slots waiting per stage queue: element k-1 is the queue before stage k (for metrics). Allocates
    /// the returned array. Any thread.
    public var depths: [Int] {
        lock()
        defer { unlock() }
        return (1...stageCount).map { queues[$0].count }
    }

    /// Checks every internal invariant (each slot in exactly one place; queue sizes sum with
    /// in-flight to the slot count; FIFO order of sequence numbers per queue and along the pipeline;
    /// drop accounting). Tests call it after every operation. Returns a description of the first
    /// violation or nil. Allocates; any thread.
    public func invariantViolation() -> String? {
        lock()
        defer { unlock() }
        let n = slots.count
        var seen = [Int](repeating: 0, count: n)
        var queued = 0
        for q in 0..<queueCount {
            let queue = queues[q]
            if queue.count < 0 || queue.count > n { return "queue \(name(q)) has count \(queue.count) outside 0...\(n)" }
            if queue.head < 0 || queue.head >= n { return "queue \(name(q)) has head \(queue.head) outside 0..<\(n)" }
            queued += queue.count
            for offset in 0..<queue.count {
                let index = queue.element(offset)
                if index < 0 || index >= n { return "queue \(name(q)) holds \(index), not a slot index" }
                seen[index] += 1
                if place[index] != q { return "slot \(index) is in queue \(name(q)) but its place says \(placeName(place[index]))" }
            }
        }
        var producerCount = 0
        for index in 0..<n {
            let where_ = place[index]
            if where_ == Self.producerPlace {
                producerCount += 1
                if seen[index] != 0 { return "slot \(index) is held by the producer but also queued \(seen[index]) times" }
            } else if seen[index] != 1 {
                return "slot \(index) (place \(placeName(where_))) appears \(seen[index]) times in the queues"
            }
            if completed[index] && !(where_ > stageCount && where_ <= 2 * stageCount) {
                return "slot \(index) is marked completed but is \(placeName(where_))"
            }
        }
        if producerCount != producerHeld { return "producer holds \(producerCount) slots but the count says \(producerHeld)" }
        if queued + producerHeld != n { return "queued \(queued) + producer-held \(producerHeld) != \(n) slots" }
        for stage in 1...stageCount {
            let held = queues[stageCount + stage]
            if !held.isEmpty && completed[held.front] {
                return "stage \(stage)'s oldest slot \(held.front) is completed but was not passed on"
            }
        }
        // Along the pipeline, from the oldest (in the last stage) to the newest (waiting for stage 1),
        // sequence numbers strictly increase; every queued slot other than free ones has been submitted.
        var last = -1
        for stage in stride(from: stageCount, through: 1, by: -1) {
            for q in [stageCount + stage, stage] {
                let queue = queues[q]
                for offset in 0..<queue.count {
                    let s = sequence[queue.element(offset)]
                    if s < 0 || s >= nextSequence { return "slot \(queue.element(offset)) in \(name(q)) has sequence \(s), never submitted" }
                    if s <= last { return "sequence out of order in \(name(q)): \(s) after \(last)" }
                    last = s
                }
            }
        }
        if dropped != pendingDrops + deliveredDrops {
            return "dropped \(dropped) != pending \(pendingDrops) + delivered \(deliveredDrops)"
        }
        if policy == .block && dropped != 0 { return "policy block but \(dropped) drops" }
        return nil
    }

    // MARK: Private

    @inline(__always) private func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) private func unlock() { pthread_mutex_unlock(mutex) }

    private func broadcastAll() {
        for i in 0...stageCount { pthread_cond_broadcast(conditions + i) }
    }

    /// True when nothing is waiting for or inside any stage before `stage`, nor waiting for `stage`.
    private func drained(before stage: Int) -> Bool {
        if !queues[stage].isEmpty { return false }
        for j in 1..<stage where !queues[j].isEmpty || !queues[stageCount + j].isEmpty { return false }
        return true
    }

    @inline(__always)
    private func index(of slot: Slot) -> Int {
        guard let index = indexOf[ObjectIdentifier(slot)] else {
            preconditionFailure("StageRing: this slot object does not belong to the ring")
        }
        return index
    }

    private func name(_ queue: Int) -> String {
        queue == 0 ? "free" : queue <= stageCount ? "waiting(\(queue))" : "in-stage(\(queue - stageCount))"
    }

    private func placeName(_ code: Int) -> String {
        code == Self.producerPlace ? "producer" : name(code)
    }
}
