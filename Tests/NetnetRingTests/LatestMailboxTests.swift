import Testing
@testable import NetnetRing

/// `LatestMailbox` as the daemon drives it, one call at a time (the driver's lock serialises them).
@Suite struct LatestMailboxTests {
    final class Slot { var value = 0 }

    @Test func consumerGetsTheNewestFrameAndTheDropsBeforeIt() {
        let box = LatestMailbox<Slot>()
        box.attach()
        var reading = Slot()
        var made = 1
        for value in 0..<5 {
            reading.value = value
            let (free, dropped) = box.post(reading)
            #expect(dropped == (value > 0))   // nobody took the previous one
            if let free { reading = free } else { reading = Slot(); made += 1 }
        }
        let (slot, dropped) = box.take()!
        #expect(slot.value == 4 && dropped == 4)
        #expect(box.droppedTotal == 4 && !box.hasReady && box.take() == nil)
        #expect(made <= 3)
    }

    @Test func triplesBufferWithoutAllocatingOnceRunning() {
        let box = LatestMailbox<Slot>()
        box.attach()
        var reading = Slot()
        var made = 1
        var taken: [Int] = []
        for value in 0..<100 {
            reading.value = value
            if let free = box.post(reading).free { reading = free } else { reading = Slot(); made += 1 }
            if value % 3 != 2, let (slot, _) = box.take() {   // the consumer misses every third frame
                taken.append(slot.value)
                box.finished(slot)
            }
            #expect(box.slotsHeld <= 3)
        }
        #expect(made == 3, "a reader and a consumer working at once need exactly three slots")
        #expect(taken == (0..<100).filter { $0 % 3 != 2 })
        // A frame the consumer missed is replaced by the next one: dropped and counted.
        #expect(box.droppedTotal == (0..<99).filter { $0 % 3 == 2 }.count)
    }

    @Test func detachedMailboxLetsEverySlotGo() {
        let box = LatestMailbox<Slot>()
        box.attach()
        let a = Slot(), b = Slot()
        _ = box.post(a)
        let (taken, _) = box.take()!
        #expect(taken === a)
        _ = box.post(b)
        box.detach()
        #expect(box.slotsHeld == 1, "the frame still waiting is kept for the consumer")
        box.finished(a)
        let (last, _) = box.take()!
        #expect(last === b)
        box.finished(b)
        #expect(box.slotsHeld == 0 && !box.isAttached)
        // Reattached, the first post gets nothing back: the reader makes its slots again.
        box.attach()
        #expect(box.post(Slot()).free == nil)
    }
}
