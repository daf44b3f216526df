import Testing
@testable import NetnetScene

/// Counts add up the rules' events; a restart or a new scene keeps what is cumulative.
@Suite struct SceneCountsTests {
    static let scene: Scene = {
        var scene = Scene(file: "s.ini")
        scene.lines = [SceneLine(name: "door", a: ScenePoint(0, 300), b: ScenePoint(768, 300)),
                       SceneLine(name: "gate", a: ScenePoint(100, 0), b: ScenePoint(100, 576))]
        scene.zones = [SceneZone(name: "bay", polygon: ScenePolygon([ScenePoint(0, 0), ScenePoint(50, 0), ScenePoint(50, 50)]))]
        return scene
    }()

    func event(_ kind: SceneEventKind, _ rule: String, _ label: String = "person", _ direction: CrossingDirection? = nil) -> SceneEvent {
        SceneEvent(kind: kind, rule: rule, trackID: 1, label: label, direction: direction, dwell: nil,
                   fromFrame: 0, from: ScenePoint(0, 0), toFrame: 1, to: ScenePoint(0, 0))
    }

    @Test func eventsAddUp() {
        var counts = SceneCounts(scene: Self.scene)
        #expect(counts.lines.map(\.name) == ["door", "gate"] && counts.zones.map(\.name) == ["bay"])
        counts.apply(event(.cross, "door", "person", .in))
        counts.apply(event(.cross, "door", "person", .in))
        counts.apply(event(.cross, "door", "car", .out))
        counts.apply(event(.enter, "bay"))
        counts.apply(event(.enter, "bay"))
        counts.apply(event(.loiter, "bay"))
        counts.apply(event(.leave, "bay"))
        counts.apply(event(.cross, "nowhere", "person", .in))   // not in the scene: ignored
        #expect(counts.lines[0].inward == ["person": 2] && counts.lines[0].outward == ["car": 1])
        #expect(counts.lines[1].inward.isEmpty && counts.lines[1].outward.isEmpty)
        #expect(counts.zones[0].entered == ["person": 2] && counts.zones[0].objects == ["person": 1])
        counts.apply(event(.leave, "bay"))
        #expect(counts.zones[0].objects.isEmpty, "a label whose last object left goes")
        counts.apply(event(.leave, "bay"))   // a leave without an enter cannot go below zero
        #expect(counts.zones[0].objects.isEmpty)
    }

    @Test func carriedToASceneKeepsCumulativeFiguresByName() {
        var counts = SceneCounts(scene: Self.scene)
        counts.apply(event(.cross, "door", "person", .out))
        counts.apply(event(.cross, "gate", "person", .in))
        counts.apply(event(.enter, "bay"))
        // The same scene (a restart): crossings and entries stay, nobody is inside.
        let restarted = counts.carried(to: Self.scene)
        #expect(restarted.lines == counts.lines)
        #expect(restarted.zones[0].entered == ["person": 1] && restarted.zones[0].objects.isEmpty)
        // A new scene: kept names keep their counts, in the new scene's order; new ones start at 0.
        var changed = Scene(file: "s.ini")
        changed.lines = [SceneLine(name: "new", a: ScenePoint(0, 0), b: ScenePoint(1, 1)), Self.scene.lines[0]]
        let moved = counts.carried(to: changed)
        #expect(moved.lines.map(\.name) == ["new", "door"])
        #expect(moved.lines[0].outward.isEmpty && moved.lines[1].outward == ["person": 1])
        #expect(moved.zones.isEmpty)
    }
}
