import Testing
@testable import NetnetScene

/// The scene file's parser and its errors.
@Suite struct SceneParserTests {
    static let example = """
        # the issue's example
        [line door]
        points = 80,420 690,250       # two points in the source frame's pixels
        labels = person               ; optional; default all
        [zone bay]
        points = 0,300 768,300 768,576 0,576
        loiter = 30
        min_frames = 3
        [mask tree]
        points = 600,0 768,0 768,120
        """

    @Test func parsesTheExample() throws {
        let scene = try SceneParser.parse(Self.example, file: "s.ini")
        #expect(scene.lines == [{ var l = SceneLine(name: "door", a: ScenePoint(80, 420), b: ScenePoint(690, 250)); l.labels = ["person"]; l.line = 2; return l }()])
        #expect(scene.zones.count == 1 && scene.zones[0].name == "bay" && scene.zones[0].loiter == 30 && scene.zones[0].minFrames == 3)
        #expect(scene.zones[0].polygon.points.count == 4 && scene.zones[0].labels.isEmpty)
        #expect(scene.masks.count == 1 && scene.masks[0].name == "tree")
        #expect(scene.isMasked(ScenePoint(700, 50)) && !scene.isMasked(ScenePoint(100, 50)))
        try scene.check(width: 768, height: 576)
        #expect(throws: SceneError(file: "s.ini", line: 2, message: "[line door]: point 690,250 is outside the 640×480 frame")) {
            try scene.check(width: 640, height: 480)
        }
        #expect(throws: SceneError(file: "s.ini", line: 5, message: "[zone bay]: point 768,300 is outside the 700×500 frame")) {
            try scene.check(width: 700, height: 500)
        }
    }

    @Test("every problem is one line naming the file and line", arguments: [
        ("[line a]\npoints = 1,1 2,2\ncolour = red\n", 3, "unknown key 'colour' in [line a] (known: points, labels, min_frames)"),
        ("[line a]\npoints = 1,1\n", 2, "a line has 2 points, got 1"),
        ("[line a]\npoints = 1,1 1,1\n", 2, "a line's 2 points must differ"),
        ("[line a]\npoints = 1,1 x,2\n", 2, "bad point 'x,2': write x,y in pixels (non-negative numbers), points separated by blanks"),
        ("[line a]\npoints = 1,1 -2,2\n", 2, "bad point '-2,2': write x,y in pixels (non-negative numbers), points separated by blanks"),
        ("[line a]\npoints = 0x10,1 2,2\n", 2, "bad point '0x10,1': write x,y in pixels (non-negative numbers), points separated by blanks"),
        ("[zone z]\npoints = 1,1 2,2\n", 2, "a zone has 3 or more points, got 2"),
        ("[zone z]\npoints = 1,1 2,2 3,1\nloiter = soon\n", 3, "loiter = soon must be seconds in (0, 86400]"),
        ("[zone z]\npoints = 1,1 2,2 3,1\nmin_frames = 0\n", 3, "min_frames = 0 must be a whole number in 1-1000"),
        ("[mask m]\npoints = 1,1 2,2 3,1\nloiter = 3\n", 3, "unknown key 'loiter' in [mask m] (known: points)"),
        ("[line a]\npoints = 1,1 2,2\n[zone a]\npoints = 1,1 2,2 3,1\n", 3, "duplicate name 'a' (first defined on line 1)"),
        ("[lines a]\n", 1, "unknown section [lines a] (a scene has [line NAME], [zone NAME] and [mask NAME])"),
        ("[line]\n", 1, "[line] needs a name: [line NAME]"),
        ("[line a/b]\n", 1, "line name 'a/b' must be 1 to 64 of A-Z a-z 0-9 _ . -"),
        ("points = 1,1 2,2\n", 1, "'points' outside a section"),
        ("[line a]\npoints 1,1 2,2\n", 2, "expected 'key = value', got 'points 1,1 2,2'"),
        ("[line a]\npoints = 1,1 2,2\npoints = 1,1 2,3\n", 3, "'points' is set twice in [line a]"),
        ("[line a]\nlabels = person\n", 1, "[line a] has no points"),
        ("[line a\n", 1, "section header without ']': [line a"),
    ])
    func errors(text: String, line: Int, message: String) {
        #expect(throws: SceneError(file: "s.ini", line: line, message: message)) { try SceneParser.parse(text, file: "s.ini") }
    }

    @Test func nulByteIsRefused() {
        #expect(throws: SceneError(file: "s.ini", line: nil, message: "contains a NUL byte: not a scene file")) {
            try SceneParser.parse("[line a]\npoints = 1,1 2,2\u{0}\n", file: "s.ini")
        }
    }
}

/// The crossing and zone rules on synthetic tracks.
@Suite struct SceneRulesTests {
    /// A horizontal line y = 300 from x = 100 to 500: walking down the image is `in`.
    static func scene(minFrames: Int = 2, loiter: Double? = nil) -> Scene {
        var scene = Scene(file: "test")
        var line = SceneLine(name: "door", a: ScenePoint(100, 300), b: ScenePoint(500, 300))
        line.minFrames = minFrames
        scene.lines = [line]
        var zone = SceneZone(name: "bay", polygon: ScenePolygon([ScenePoint(600, 0), ScenePoint(800, 0), ScenePoint(800, 200), ScenePoint(600, 200)]))
        zone.minFrames = minFrames
        zone.loiter = loiter
        scene.zones = [zone]
        return scene
    }

    /// Runs one track along `path` (a position per frame, 10 fps) and returns its events.
    static func run(_ path: [ScenePoint], scene: Scene = scene(), label: String = "person", end: Bool = false) -> [SceneEvent] {
        var rules = SceneRules(scene: scene)
        var events: [SceneEvent] = []
        for (frame, point) in path.enumerated() {
            events += rules.update(frame: frame, time: Double(frame) / 10, objects: [SceneObject(trackID: 7, label: label, position: point)])
        }
        if end { events += rules.end(trackID: 7) }
        return events
    }

    static func walk(x: Double, from y0: Double, to y1: Double, steps: Int) -> [ScenePoint] {
        (0...steps).map { ScenePoint(x, y0 + (y1 - y0) * Double($0) / Double(steps)) }
    }

    @Test("crossing the segment counts once, in each direction; passing beyond its end does not")
    func directions() {
        let down = Self.run(Self.walk(x: 300, from: 250, to: 350, steps: 10))
        #expect(down.map(\.kind) == [.cross] && down.first?.direction == .in && down.first?.rule == "door")
        // The rule's inputs: the last position before the change (frame 5, on the line) and the first beyond it (frame 6).
        #expect(down.first?.fromFrame == 5 && down.first?.from == ScenePoint(300, 300) && down.first?.toFrame == 6 && down.first?.to == ScenePoint(300, 310))
        let up = Self.run(Self.walk(x: 300, from: 350, to: 250, steps: 10))
        #expect(up.map(\.direction) == [.out])
        #expect(Self.run(Self.walk(x: 600, from: 250, to: 350, steps: 10)).isEmpty, "beyond the segment's end: the infinite line only")
    }

    @Test("a track that jitters on the line counts once, when it settles")
    func jitter() {
        var path = Self.walk(x: 300, from: 280, to: 295, steps: 3)
        for k in 0..<10 { path.append(ScenePoint(300, k % 2 == 0 ? 303 : 297)) }   // one frame each side, 10 times
        #expect(Self.run(path).isEmpty, "never two frames on the new side")
        path += [ScenePoint(300, 305), ScenePoint(300, 310), ScenePoint(300, 297), ScenePoint(300, 312), ScenePoint(300, 320)]
        let events = Self.run(path)
        #expect(events.map(\.direction) == [.in], "\(events)")
    }

    @Test("a crossing between frames without inference (one step across) counts; a track first seen beyond the line does not")
    func jumpsAndLateTracks() {
        let jump = Self.run([ScenePoint(300, 200), ScenePoint(300, 210), ScenePoint(300, 400), ScenePoint(300, 410)])
        #expect(jump.map(\.direction) == [.in] && jump.first?.from == ScenePoint(300, 210) && jump.first?.to == ScenePoint(300, 400))
        // Confirmed only after it crossed: its first position is below the line.
        #expect(Self.run(Self.walk(x: 300, from: 320, to: 400, steps: 5)).isEmpty)
    }

    @Test func minFramesOneCountsAtOnce() {
        let events = Self.run([ScenePoint(300, 290), ScenePoint(300, 310)], scene: Self.scene(minFrames: 1))
        #expect(events.map(\.direction) == [.in])
    }

    @Test func labelsFilter() {
        var scene = Self.scene()
        scene.lines[0].labels = ["car"]
        #expect(Self.run(Self.walk(x: 300, from: 250, to: 350, steps: 10), scene: scene).isEmpty)
        #expect(Self.run(Self.walk(x: 300, from: 250, to: 350, steps: 10), scene: scene, label: "car").count == 1)
    }

    @Test("zone: enter and leave with hysteresis, the dwell from the first frame inside to the first outside; loiter once per visit")
    func zoneVisit() {
        // Outside (frames 0-1), inside 2-31 with a one-frame excursion at 10, outside from 32.
        var path: [ScenePoint] = [ScenePoint(550, 100), ScenePoint(560, 100)]
        for k in 2...31 { path.append(k == 10 ? ScenePoint(590, 100) : ScenePoint(700, 100)) }
        path += [ScenePoint(850, 100), ScenePoint(860, 100), ScenePoint(870, 100)]
        let events = Self.run(path, scene: Self.scene(loiter: 2))
        #expect(events.map(\.kind) == [.enter, .loiter, .leave], "\(events.map(\.kind))")
        guard events.count == 3 else { return }
        #expect(events[0].fromFrame == 1 && events[0].toFrame == 2)
        #expect(events[1].toFrame == 22 && abs((events[1].dwell ?? 0) - 2) < 1e-9, "loiter after 2 s inside: \(events[1])")
        #expect(events[2].toFrame == 32 && abs((events[2].dwell ?? 0) - 3.0) < 1e-9, "dwell: \(events[2])")
    }

    @Test("a track that ends inside a zone leaves it; one first seen inside enters")
    func endInside() {
        let events = Self.run([ScenePoint(700, 100), ScenePoint(700, 110), ScenePoint(700, 120)], end: true)
        #expect(events.map(\.kind) == [.enter, .leave])
        #expect(abs((events.last?.dwell ?? 0) - 0.2) < 1e-9)
    }
}
