import Foundation
import Testing
@testable import NetnetDaemon
import NetnetScene

/// The live view: a stream's snapshot shows its scene.
@Suite("snapshot scene", .serialized)
struct SnapshotSceneTests {
    /// The yellow pixels on row `y` of the snapshot of a stream of a grey clip with `scene`.
    static func yellowOnRow(_ y: Int, scene: Scene?) throws -> Int {
        let dir = NSTemporaryDirectory() + "netnet-snapshot-scene-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clip = dir + "/grey.mp4"
        #expect(Fixtures.run("/usr/bin/ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:size=320x240:rate=10",
                                                  "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", clip]) == 0)
        var stream = StreamConfig(id: "a", url: clip)
        stream.scene = scene
        let supervisor = try Supervisor(config: config([stream]), model: Fixtures.model, hub: EventHub(), log: quietLog(), random: { 0.5 })
        supervisor.start()
        defer { supervisor.stop() }
        let deadline = Date(timeIntervalSinceNow: 60)
        var jpeg: [UInt8]?
        while jpeg == nil, Date() < deadline {
            jpeg = supervisor.snapshotJPEG(stream: "a")
            if jpeg == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        let bytes = try #require(jpeg)
        let path = dir + "/snapshot.jpg", raw = dir + "/snapshot.rgb"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(Fixtures.run("/usr/bin/ffmpeg", ["-loglevel", "error", "-y", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", raw]) == 0)
        let pixels = [UInt8](try Data(contentsOf: URL(fileURLWithPath: raw)))
        #expect(pixels.count == 320 * 240 * 3)
        return (0..<320).filter { x in
            let i = (y * 320 + x) * 3
            return pixels[i] > 200 && pixels[i + 1] > 200 && pixels[i + 2] < 90
        }.count
    }

    @Test("the snapshot draws the stream's line; without a scene the row stays grey",
          .enabled(if: Fixtures.hasFFmpeg, "needs /usr/bin/ffmpeg"))
    func snapshotDrawsTheScene() throws {
        var scene = Scene(file: "/test.scene")
        scene.lines = [SceneLine(name: "door", a: ScenePoint(10, 120), b: ScenePoint(310, 120))]
        let drawn = try Self.yellowOnRow(120, scene: scene)
        #expect(drawn > 250, "\(drawn) yellow pixels on the line's row")
        #expect(try Self.yellowOnRow(120, scene: nil) == 0)
    }
}
