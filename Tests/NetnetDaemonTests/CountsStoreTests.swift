import Foundation
import Testing
import NetnetScene
@testable import NetnetDaemon

/// `serve`'s counts files: written when they change, read back at start, a broken one set aside.
@Suite struct CountsStoreTests {
    final class Lines: @unchecked Sendable {
        let lock = NSLock()
        var all: [String] = []
        func append(_ line: String) { lock.withLock { all.append(line) } }
        var text: String { lock.withLock { all.joined() } }
    }

    static let scene: Scene = {
        var scene = Scene(file: "door.scene")
        scene.lines = [SceneLine(name: "door", a: ScenePoint(0, 300), b: ScenePoint(768, 300))]
        scene.zones = [SceneZone(name: "bay", polygon: ScenePolygon([ScenePoint(0, 0), ScenePoint(50, 0), ScenePoint(50, 50)]))]
        return scene
    }()

    func makeStore() throws -> (CountsStore, String, Lines) {
        let state = NSTemporaryDirectory() + "netnet-state-\(UUID().uuidString)"
        let lines = Lines()
        let store = try CountsStore(stateDirectory: state, log: DaemonLog(level: .info, journal: false) { lines.append($0) })
        return (store, state, lines)
    }

    func counted() -> SceneCounts {
        var counts = SceneCounts(scene: Self.scene)
        counts.lines[0].inward = ["person": 4]
        counts.lines[0].outward = ["person": 1]
        counts.zones[0].entered = ["person": 2]
        counts.zones[0].objects = ["person": 1]
        return counts
    }

    @Test func savedCountsComeBackWithNobodyInside() throws {
        let (store, state, _) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: state) }
        #expect(store.directory == state + "/counts")
        #expect(store.load(stream: "cam", scene: Self.scene) == nil, "no file yet")
        store.save(stream: "cam", scene: "door.scene", counts: counted())
        let back = try #require(store.load(stream: "cam", scene: Self.scene))
        #expect(back.lines == counted().lines)
        #expect(back.zones[0].entered == ["person": 2] && back.zones[0].objects.isEmpty)
        // Unchanged counts are not written again.
        unlink(store.path(stream: "cam"))
        store.save(stream: "cam", scene: "door.scene", counts: back)
        #expect(!FileManager.default.fileExists(atPath: store.path(stream: "cam")))
        var more = back
        more.lines[0].inward["person"] = 5
        store.save(stream: "cam", scene: "door.scene", counts: more)
        #expect(store.load(stream: "cam", scene: Self.scene)?.lines[0].inward == ["person": 5])
    }

    @Test("a torn or foreign counts file is renamed aside with a warning, and counting starts from zero",
          arguments: [#"{"schema": "netnet.counts/1", "stream": "cam", "lines": {"door": {"in"#,
                      #"{"schema": "netnet.counts/1", "stream": "other", "scene": null, "time": "x", "frames": null, "lines": {}, "zones": {}}"#,
                      String(repeating: " ", count: CountsStore.maxFileBytes + 1)])
    func brokenFileIsSetAside(_ content: String) throws {
        let (store, state, lines) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: state) }
        try content.write(toFile: store.path(stream: "cam"), atomically: false, encoding: .utf8)
        #expect(store.load(stream: "cam", scene: Self.scene) == nil)
        let files = try FileManager.default.contentsOfDirectory(atPath: store.directory)
        #expect(files.count == 1 && files[0].hasPrefix("cam.json.corrupt-"), "\(files)")
        #expect(lines.text.contains("stream cam: counts file \(store.path(stream: "cam")): ") && lines.text.contains("renamed to"), "\(lines.text)")
        #expect(try String(contentsOfFile: store.directory + "/" + files[0], encoding: .utf8) == content, "kept as it was")
        store.save(stream: "cam", scene: nil, counts: counted())
        #expect(store.load(stream: "cam", scene: Self.scene)?.lines[0].inward == ["person": 4])
    }

    @Test func aFailingWriteIsLoggedOnceAndRetried() throws {
        let (store, state, lines) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: state) }
        try FileManager.default.createDirectory(atPath: store.path(stream: "cam"), withIntermediateDirectories: false)
        store.save(stream: "cam", scene: nil, counts: counted())
        store.save(stream: "cam", scene: nil, counts: counted())
        #expect(lines.all.filter { $0.contains("stream cam: counts: cannot replace") }.count == 1, "\(lines.all)")
        try FileManager.default.removeItem(atPath: store.path(stream: "cam"))
        store.save(stream: "cam", scene: nil, counts: counted())
        #expect(FileManager.default.fileExists(atPath: store.path(stream: "cam")) && lines.text.contains("counts written again"))
    }

    @Test func aStateDirectoryThatCannotBeAFolderIsAnError() throws {
        let file = NSTemporaryDirectory() + "netnet-state-file-\(UUID().uuidString)"
        try "x".write(toFile: file, atomically: false, encoding: .utf8)
        defer { unlink(file) }
        #expect(throws: ConfigError.self) { try CountsStore(stateDirectory: file, log: DaemonLog(level: .error, journal: false) { _ in }) }
    }

    @Test func theStateDirectoryIsTheKeyElseSystemds() throws {
        var config = DaemonConfig()
        #expect(CountsStore.stateDirectory(config: config, environment: [:]) == nil)
        #expect(CountsStore.stateDirectory(config: config, environment: ["STATE_DIRECTORY": "/var/lib/netnet:/var/lib/other"]) == "/var/lib/netnet")
        config.stateDirectory = "/srv/netnet"
        #expect(CountsStore.stateDirectory(config: config, environment: ["STATE_DIRECTORY": "/var/lib/netnet"]) == "/srv/netnet")
        #expect(try ConfigParser.parse("[global]\nstate_directory = /srv/n\n[stream a]\nurl = /x\n", file: "t.conf").stateDirectory == "/srv/n")
        #expect(throws: ConfigError(file: "t.conf", line: 2, message: "state_directory must be an absolute path (got 'state')")) {
            try ConfigParser.parse("[global]\nstate_directory = state\n[stream a]\nurl = /x\n", file: "t.conf")
        }
    }

    @Test func metricsHaveTheSceneFamilies() {
        let stats = StreamStats(id: "cam", url: "/x")
        stats.update { $0.counts = counted() }
        let plain = StreamStats(id: "other", url: "/y")
        let text = MetricsText.render(streams: [("cam", stats.snapshot()), ("other", plain.snapshot())], sinkDrops: [],
                                      uptimeSeconds: 1, reloads: 0, reloadFailures: 0)
        for expected in ["# TYPE netnet_line_crossings_total counter",
                         #"netnet_line_crossings_total{stream="cam",line="door",direction="in",label="person"} 4"#,
                         #"netnet_line_crossings_total{stream="cam",line="door",direction="out",label="person"} 1"#,
                         "# TYPE netnet_zone_objects gauge", #"netnet_zone_objects{stream="cam",zone="bay",label="person"} 1"#,
                         #"netnet_zone_entries_total{stream="cam",zone="bay",label="person"} 2"#] {
            #expect(text.contains(expected + "\n"), "missing \(expected)")
        }
        #expect(!text.contains(#"netnet_line_crossings_total{stream="other""#))
        let none = MetricsText.render(streams: [("other", plain.snapshot())], sinkDrops: [], uptimeSeconds: 1, reloads: 0, reloadFailures: 0)
        #expect(!none.contains("netnet_line_crossings_total"), "no scene, no family")
    }
}
