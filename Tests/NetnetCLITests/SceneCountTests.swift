import Foundation
import Testing

/// `netnet scene count`: the scene rules on MOT-format tracks (the ground-truth side of
/// training/count_lines.py).
@Suite("netnet scene count")
struct SceneCountTests {
    let scratch = Scratch()

    /// A vertical line at x = 100, written bottom to top: `in` is walking right.
    static let sceneText = "[line gate]\npoints = 100,200 100,0\nlabels = person\n"

    /// MOT rows `frame,id,x,y,w,h,conf,wx,wy,wz` (MOT15's world columns) for boxes 20 wide and
    /// 50 high whose bottom-centre is at (`xs[k]`, 150) on frame k + 1.
    static func rows(id: Int, xs: [Double], conf: Int = 1, firstFrame: Int = 1) -> String {
        xs.enumerated().map { k, x in "\(firstFrame + k),\(id),\(x - 10),100,20,50,\(conf),-1,-1,-1\n" }.joined()
    }

    /// Track 1 walks right across the line, track 2 left, track 3 jitters across it and settles
    /// on the right, track 4 walks right on rows with conf 0 (not read).
    static let tracksText = rows(id: 1, xs: [40, 60, 80, 120, 140, 160])
        + rows(id: 2, xs: [180, 150, 120, 80, 60, 40])
        + rows(id: 3, xs: [95, 105, 95, 105, 105, 105])
        + rows(id: 4, xs: [40, 60, 80, 120, 140, 160], conf: 0)

    func files(tracks: String = tracksText, scene: String = sceneText) throws -> (tracks: String, scene: String) {
        let t = scratch.file("gt.txt"), s = scratch.file("gate.scene")
        try tracks.write(toFile: t, atomically: false, encoding: .utf8)
        try scene.write(toFile: s, atomically: false, encoding: .utf8)
        return (t, s)
    }

    func gate(_ stdout: String) throws -> (in: Int, out: Int) {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        #expect(object["schema"] as? String == "netnet.counts/1")
        let gate = try #require((object["lines"] as? [String: Any])?["gate"] as? [String: [String: Int]])
        return (gate["in"]?["person"] ?? 0, gate["out"]?["person"] ?? 0)
    }

    @Test("counts crossings both ways, a jitter once, and skips rows with conf 0")
    func countsBothWays() throws {
        let (tracks, scene) = try files()
        let events = scratch.file("events.jsonl")
        let result = try NetnetBinary.run(["scene", "count", tracks, "--scene", scene, "--events", events])
        #expect(result.status == 0, "\(result.stderr)")
        let counts = try gate(result.stdout)
        #expect(counts.in == 2 && counts.out == 1, "\(result.stdout)")
        let lines = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n").map(jsonObject)
        #expect(lines.map { $0["track_id"] as? Int } == [1, 2, 3])
        #expect(lines.map { $0["direction"] as? String } == ["in", "out", "in"])
        // Track 1 is on the right from MOT frame 4 (decoded frame 3); it counts on the 2nd frame there.
        #expect(lines[0]["from_frame"] as? Int == 2 && lines[0]["to_frame"] as? Int == 3 && lines[0]["frame"] as? Int == 4)
        #expect(lines.allSatisfy { $0["schema"] as? String == "netnet.event/1" && $0["kind"] as? String == "cross" })
    }

    @Test("--first and --last keep the MOT frames between them")
    func frameRange() throws {
        let (tracks, scene) = try files()
        let early = try NetnetBinary.run(["scene", "count", tracks, "--scene", scene, "--last", "4"])
        #expect(early.status == 0, "\(early.stderr)")
        // By MOT frame 4 no track has had its 2nd frame on the new side.
        let before = try gate(early.stdout)
        #expect(before.in == 0 && before.out == 0, "\(early.stdout)")
        let upTo5 = try gate(try NetnetBinary.run(["scene", "count", tracks, "--scene", scene, "--last", "5"]).stdout)
        #expect(upTo5.in == 2 && upTo5.out == 1)
        // From MOT frame 4 on, every track starts on the side it stays on.
        let late = try gate(try NetnetBinary.run(["scene", "count", tracks, "--scene", scene, "--first", "4"]).stdout)
        #expect(late.in == 0 && late.out == 0)
    }

    @Test("a missing or corrupt track file, or a broken scene: one line naming it, exit 1")
    func errors() throws {
        let (tracks, scene) = try files()
        let missing = try NetnetBinary.run(["scene", "count", scratch.file("none.txt"), "--scene", scene])
        #expect(missing.status == 1 && missing.stderrLines == ["netnet: \(scratch.file("none.txt")): no such track file"], "\(missing.stderr)")
        for (text, message) in [("1,1,0,0,10,10,1\n2,1,0,0\n", ":2: a MOT row is frame,id,x,y,w,h,conf[,…], got 4 fields"),
                                ("\n1,1,0,zero,10,10,1\n", ":2: y is not a number: zero"),
                                ("0,1,0,0,10,10,1\n", ":1: frame 0: MOT frames count from 1"),
                                ("1,1,0,0,10,10,1\n1,1,5,5,10,10,1\n", ":2: track 1 has a second box on frame 1")] {
            _ = try files(tracks: text)
            let corrupt = try NetnetBinary.run(["scene", "count", tracks, "--scene", scene])
            #expect(corrupt.status == 1 && corrupt.stderrLines == ["netnet: \(tracks)\(message)"], "\(corrupt.stderr)")
        }
        _ = try files(scene: "[line gate]\npoints = 10,10\n")
        let broken = try NetnetBinary.run(["scene", "count", tracks, "--scene", scene])
        #expect(broken.status == 1 && broken.stderrLines == ["netnet: \(scene):2: a line has 2 points, got 1"], "\(broken.stderr)")
    }
}
