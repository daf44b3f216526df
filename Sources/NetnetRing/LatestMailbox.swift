/// The freshest-frame hand-over between one producer (a live stream's reader) and a consumer that
/// serves many producers in turn (the daemon's one inference stage): the `latest` policy for a
/// stage that must not wait for any one stream. A triple buffer while attached: the producer fills
/// its own slot and posts it as `ready` (a frame still waiting there is dropped, counted, and its
/// slot given back to fill); the consumer takes `ready`, and its previous slot becomes the spare.
///
/// Slots exist only while the producer is attached: the producer makes one when `post` gives none
/// back (the first frames after connecting), and on `detach` the slots nobody holds are let go, so
/// a stream that is down keeps no frame memory. At most three slots exist per mailbox.
///
/// Not synchronised by itself: the consumer's driver guards every call with one lock shared by
/// all its mailboxes (so it can pick the next ready one under that lock). `StageRing` is the
/// self-locking ring for a pipeline with one producer; this is its counterpart for many.
public final class LatestMailbox<Slot: AnyObject> {
    /// The frame waiting for the consumer, if any.
    public private(set) var ready: Slot?
    /// The slot the consumer holds (its last take), kept to become the spare.
    private var held: Slot?
    /// A free slot for the producer.
    private var spare: Slot?
    /// Whether the producer is connected; detached, the consumer keeps no slot once done with it.
    public private(set) var isAttached = false
    /// Frames dropped since the consumer's last take.
    private var droppedSinceTake = 0
    /// Frames dropped in all.
    public private(set) var droppedTotal = 0

    /// An empty, detached mailbox. Any thread, before sharing.
    public init() {}

    /// Whether a frame is waiting. Under the driver's lock.
    public var hasReady: Bool { ready != nil }

    /// Producer: posts `filled` as the newest frame; returns a slot to fill next (the stale frame
    /// it replaced, counted as dropped, or the spare), or nil when there is none yet (the producer
    /// then makes one). Under the driver's lock.
    public func post(_ filled: Slot) -> (free: Slot?, droppedStale: Bool) {
        var free: Slot?
        var dropped = false
        if let stale = ready {
            droppedSinceTake += 1
            droppedTotal += 1
            dropped = true
            free = stale
        } else {
            free = spare
            spare = nil
        }
        ready = filled
        return (free, dropped)
    }

    /// Consumer: takes the waiting frame and the number of frames dropped since the previous take;
    /// nil when none waits. The consumer's previous slot becomes the producer's spare while
    /// attached. Under the driver's lock.
    public func take() -> (slot: Slot, dropped: Int)? {
        guard let slot = ready else { return nil }
        ready = nil
        if isAttached && spare == nil { spare = held }
        held = slot
        let dropped = droppedSinceTake
        droppedSinceTake = 0
        return (slot, dropped)
    }

    /// Consumer, done with `slot` (its last take): while detached, the mailbox lets go of it.
    /// Under the driver's lock.
    public func finished(_ slot: Slot) {
        if !isAttached && held === slot { held = nil }
    }

    /// Producer, once connected: the consumer's slots go back to it again. Under the driver's lock.
    public func attach() { isAttached = true }

    /// Producer, when the connection ends: the free slots go; a frame still waiting is still
    /// taken, and the consumer lets go of its slot after it. Under the driver's lock.
    public func detach() {
        isAttached = false
        spare = nil
        held = nil   // a consumer using it holds its own reference until `finished`
    }

    /// Slots the mailbox holds now (ready, spare and the consumer's), for the tests' memory checks.
    /// Under the driver's lock.
    public var slotsHeld: Int { [ready, held, spare].compactMap { $0 }.count }
}
