import Foundation
import Testing
@testable import NetnetDaemon

/// Counts what a `LiveChannel` asks of its encode step and gives its viewers. Thread-safe.
final class LiveProbe: @unchecked Sendable {
    private let lock = NSLock()
    private var encodes = 0
    private var offers: [Int: Int] = [:]
    var encodeCount: Int { lock.withLock { encodes } }
    func offered(_ viewer: Int) -> Int { lock.withLock { offers[viewer] ?? 0 } }
    /// A new picture every call: `[n]` for the n-th.
    func encode() -> [UInt8]? { lock.withLock { encodes += 1; return [UInt8(truncatingIfNeeded: encodes)] } }
    func offer(_ viewer: Int, accept: Bool) -> @Sendable ([UInt8]) -> Bool {
        { _ in self.lock.withLock { self.offers[viewer, default: 0] += 1 }; return accept }
    }
}

@Suite("live picture fan-out")
struct LiveChannelTests {
    @Test("no viewer: nothing is encoded and no thread runs")
    func idleWithoutViewers() {
        let probe = LiveProbe()
        let channel = LiveChannel(stream: "cam", fps: 50, encode: { probe.encode() })
        Thread.sleep(forTimeInterval: 0.3)
        #expect(probe.encodeCount == 0)
        #expect(channel.figure() == LiveFigure(stream: "cam", viewers: 0, encoded: 0, skipped: 0))
    }

    @Test("one encode per tick shared by every viewer; none after the last one leaves")
    func sharedEncode() {
        let probe = LiveProbe()
        let channel = LiveChannel(stream: "cam", fps: 20, encode: { probe.encode() })
        let started = Date()
        let keys = (0..<5).map { channel.watch(offer: probe.offer($0, accept: true)) }
        // Until 10 encodes (0.5 s at 20 fps; longer where a loaded machine holds the thread).
        #expect(waitFor(20) { probe.encodeCount >= 10 }, "\(probe.encodeCount) encodes in 20 s")
        for key in keys { channel.stopWatching(key) }
        let watched = Date().timeIntervalSince(started)
        Thread.sleep(forTimeInterval: 0.2)   // the thread sees no viewer at its next tick and ends
        let encoded = probe.encodeCount
        // 20 a second at most: a tick never runs early, and a late one does not pile up.
        #expect(encoded >= 10 && Double(encoded) <= (watched + 0.2) * 20 + 2, "\(encoded) encodes in \(watched) s at 20 fps")
        for viewer in 0..<5 { #expect(abs(probe.offered(viewer) - encoded) <= 1, "viewer \(viewer): \(probe.offered(viewer)) of \(encoded)") }
        let figure = channel.figure()
        #expect(figure.viewers == 0 && figure.skipped == 0 && Int(figure.encoded) == encoded)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(probe.encodeCount == encoded, "encoding went on without viewers")
    }

    @Test("a viewer that has not taken its picture: every further picture is a counted skip, the others get them all")
    func slowViewerSkips() {
        let probe = LiveProbe()
        let channel = LiveChannel(stream: "cam", fps: 50, encode: { probe.encode() })
        let fast = channel.watch(offer: probe.offer(0, accept: true))
        let slow = channel.watch(offer: probe.offer(1, accept: false))
        #expect(waitFor(20) { channel.figure().skipped > 5 }, "\(channel.figure())")
        channel.stopWatching(slow)
        let figure = channel.figure()
        #expect(figure.viewers == 1)
        #expect(figure.skipped > 5 && Int(figure.skipped) == probe.offered(1), "skipped \(figure.skipped), slow offers \(probe.offered(1))")
        #expect(probe.offered(0) >= probe.offered(1), "the fast viewer lost pictures")
        channel.stopWatching(fast)
    }

    @Test("a viewer coming later gets the last picture at once, without a new encode")
    func lateViewerGetsTheLastPicture() {
        let probe = LiveProbe()
        let state = NSLock()
        nonisolated(unsafe) var once = false
        // Only one new frame ever: the encode step answers nil after the first.
        let channel = LiveChannel(stream: "cam", fps: 50, encode: {
            state.withLock { if once { return nil }; once = true; return [7] }
        })
        let first = channel.watch(offer: probe.offer(0, accept: true))
        #expect(waitFor(2) { probe.offered(0) == 1 })
        let late = channel.watch(offer: probe.offer(1, accept: true))
        #expect(probe.offered(1) == 1)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(channel.figure().encoded == 1 && probe.offered(0) == 1, "a frame that did not change was sent again")
        channel.stopWatching(first); channel.stopWatching(late)
    }
}

/// Polls `condition` every 10 ms for up to `seconds`.
private func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline { if condition() { return true }; Thread.sleep(forTimeInterval: 0.01) }
    return condition()
}
