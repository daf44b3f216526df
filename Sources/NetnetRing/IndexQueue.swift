/// A fixed-capacity FIFO of slot indices over storage it does not own (a window of the ring's one
/// allocation). Pushing, popping at either end and peeking never allocate. Not thread-safe: the
/// ring touches its queues only under its mutex.
struct IndexQueue {
    /// First element of this queue's storage; `capacity` elements are reserved there.
    let storage: UnsafeMutablePointer<Int>
    /// How many indices fit (the ring's slot count: a queue can hold every slot).
    let capacity: Int
    /// Position of the front element in `storage`.
    private(set) var head = 0
    /// Number of indices queued.
    private(set) var count = 0

    init(storage: UnsafeMutablePointer<Int>, capacity: Int) {
        precondition(capacity > 0)
        self.storage = storage
        self.capacity = capacity
    }

    var isEmpty: Bool { count == 0 }

    /// Position in `storage` of the element `offset` places behind the front.
    @inline(__always)
    private func position(_ offset: Int) -> Int {
        let p = head + offset
        return p >= capacity ? p - capacity : p
    }

    /// The element `offset` places behind the front (0 = front).
    @inline(__always)
    func element(_ offset: Int) -> Int {
        precondition(offset >= 0 && offset < count, "index queue: offset \(offset) outside 0..<\(count)")
        return storage[position(offset)]
    }

    /// The oldest element.
    var front: Int { element(0) }

    /// Appends at the back (newest end).
    @inline(__always)
    mutating func pushBack(_ value: Int) {
        precondition(count < capacity, "index queue overflow (capacity \(capacity))")
        storage[position(count)] = value
        count += 1
    }

    /// Removes and returns the oldest element.
    @inline(__always)
    mutating func popFront() -> Int {
        precondition(count > 0, "index queue underflow")
        let value = storage[head]
        head = head + 1 == capacity ? 0 : head + 1
        count -= 1
        return value
    }

    /// Removes and returns the newest element.
    @inline(__always)
    mutating func popBack() -> Int {
        precondition(count > 0, "index queue underflow")
        count -= 1
        return storage[position(count)]
    }
}
