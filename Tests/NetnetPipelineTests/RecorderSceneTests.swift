import Testing
import NetnetEngine
@testable import NetnetMedia
import NetnetScene
@testable import NetnetPipeline

/// The record stage with a scene: masks before the tracker, rules on confirmed tracks only, on
/// predicted positions too, and the counts following the events.
@Suite struct RecorderSceneTests {
    /// A horizontal line at y = 300: walking down the picture is `in`.
    static let scene: Scene = {
        var scene = Scene(file: "s.ini")
        scene.lines = [SceneLine(name: "door", a: ScenePoint(0, 300), b: ScenePoint(768, 300))]
        scene.masks = [SceneMask(name: "tree", polygon: ScenePolygon([ScenePoint(600, 0), ScenePoint(768, 0), ScenePoint(768, 200), ScenePoint(600, 200)]))]
        return scene
    }()

    /// Runs frames 0..<count at 10 fps; `bottom(i)` is the person's feet on frame i (nil: not
    /// seen), inferred where `inferred(i)`. Returns the scene events' kinds and the last counts.
    func run(_ count: Int, every: Int = 1, x: Float = 100, bottom: (Int) -> Float?) -> (events: [String], counts: SceneCounts?, ids: [Int?]) {
        var recorder = FrameRecorder(stream: "cam", scene: Self.scene)
        var events: [String] = []
        var ids: [Int?] = []
        for i in 0..<count {
            let slot = FrameSlot(inputCount: 1)
            slot.frameRate = 10
            slot.frame.index = i
            slot.inferred = i % every == 0
            if slot.inferred, let y = bottom(i) {
                slot.detections = [Detection(classIndex: 0, label: "person", score: 0.9, box: [x, y - 100, x + 40, y])]
            }
            let output = recorder.record(slot)
            ids.append(output.record.tracks.first?.trackID)
            for (_, event) in output.events where event.kind != .objectStart && event.kind != .objectEnd {
                events.append("\(i) \(event.kind.rawValue) \(event.scene?.direction?.rawValue ?? "")")
            }
            #expect(slot.counts == recorder.counts, "the slot carries the counts for drawing")
        }
        for (_, event) in recorder.finish() where event.kind != .objectStart && event.kind != .objectEnd {
            events.append("end \(event.kind.rawValue)")
        }
        return (events, recorder.counts, ids)
    }

    @Test func aConfirmedTrackWalkingDownCountsOneIn() {
        let (events, counts, _) = run(20) { 200 + 15 * Float($0) }   // crosses y = 300 at frame 7
        #expect(events == ["8 cross in"], "\(events)")
        #expect(counts?.lines[0].inward == ["person": 1] && counts?.lines[0].outward.isEmpty == true)
    }

    @Test("a track crossing before it is confirmed is not counted: the rules first see it on the far side")
    func unconfirmedWhileCrossing() {
        // Feet at 290, then 310: it crosses between its first and second detection, and is
        // confirmed only at frame 2, already beyond the line.
        let (events, counts, ids) = run(12) { 290 + 20 * Float($0) }
        #expect(ids[0] == nil && ids[2] != nil, "\(ids)")
        #expect(events.isEmpty, "\(events)")
        #expect(counts?.lines[0].inward.isEmpty == true)
    }

    @Test("a crossing between inferred frames is decided on the tracker's predicted positions")
    func crossingOnPredictedFrames() {
        // Inference every 4th frame; the feet pass y = 300 between frames 8 and 12.
        let (events, counts, _) = run(24, every: 4) { 180 + 10 * Float($0) }
        #expect(events.count == 1 && events[0].hasSuffix("cross in"), "\(events)")
        let frame = Int(events[0].split(separator: " ")[0])!
        #expect((12...16).contains(frame), "settled on the new side 2 frames after crossing on predictions: \(events)")
        #expect(counts?.lines[0].inward == ["person": 1])
    }

    @Test func maskedDetectionsNeverBecomeTracks() {
        // Feet at (640, 150): inside the mask, so never tracked.
        let (events, _, ids) = run(10, x: 620) { _ in 150 }
        #expect(ids.allSatisfy { $0 == nil } && events.isEmpty, "\(ids)")
        var recorder = FrameRecorder(stream: "cam", scene: Self.scene)
        let slot = FrameSlot(inputCount: 1)
        slot.inferred = true
        slot.detections = [Detection(classIndex: 0, label: "person", score: 0.9, box: [620, 50, 660, 150]),
                           Detection(classIndex: 0, label: "person", score: 0.9, box: [100, 50, 140, 150])]
        #expect(recorder.record(slot).record.detections.map(\.box[0]) == [100], "the masked one is dropped from the record")
    }

    @Test func countsGoOnFromTheGivenOnes() {
        var start = SceneCounts(scene: Self.scene)
        start.lines[0].outward = ["person": 7]
        let recorder = FrameRecorder(stream: "cam", scene: Self.scene, counts: start)
        #expect(recorder.counts?.lines[0].outward == ["person": 7])
        #expect(FrameRecorder(stream: "cam").counts == nil, "no scene, no counts")
    }
}
