import Foundation
import Testing
import NetnetScene
@testable import NetnetPipeline

/// The `netnet.counts/1` document and the atomic file it is kept in.
@Suite struct CountsDocumentTests {
    static func sample() -> SceneCounts {
        var door = SceneCounts.LineCount(name: "door")
        door.inward = ["person": 3, "car": 1]
        door.outward = ["person": 2]
        var bay = SceneCounts.ZoneCount(name: "bay")
        bay.entered = ["person": 5]
        bay.objects = ["person": 1]
        return SceneCounts(lines: [door, SceneCounts.LineCount(name: "gate")], zones: [bay])
    }

    @Test func rendersTheDocumentedLayout() {
        let text = String(decoding: CountsDocument.render(stream: "cam", scene: "/etc/netnet/door.scene", counts: Self.sample(),
                                                          frames: 600, timeNanoseconds: 1_764_600_000_123_000_000), as: UTF8.self)
        #expect(text == """
            {"schema": "netnet.counts/1", "stream": "cam", "scene": "/etc/netnet/door.scene", "time": "2025-12-01T14:40:00.123Z", "frames": 600,
             "lines": {
              "door": {"in": {"car": 1, "person": 3}, "out": {"person": 2}},
              "gate": {"in": {}, "out": {}}
             },
             "zones": {
              "bay": {"entered": {"person": 5}, "objects": {"person": 1}}
             }}

            """)
        let empty = String(decoding: CountsDocument.render(stream: "c", scene: nil, counts: SceneCounts(lines: [], zones: []),
                                                           frames: nil, timeNanoseconds: 0), as: UTF8.self)
        let tail: String = "\"frames\": null,\n \"lines\": {},\n \"zones\": {}}\n"
        #expect(empty.hasSuffix(tail), "\(empty)")
        #expect((try? JSONSerialization.jsonObject(with: Data(empty.utf8))) != nil)
    }

    @Test func parsesWhatItRenders() throws {
        let bytes = CountsDocument.render(stream: "cam", scene: nil, counts: Self.sample(), frames: nil, timeNanoseconds: 0)
        let (stream, counts) = try CountsDocument.parse(bytes)
        #expect(stream == "cam")
        // JSON objects have no order: parsed rules come sorted by name.
        #expect(counts.lines.map(\.name) == ["door", "gate"] && counts.lines[0] == Self.sample().lines[0])
        #expect(counts.zones == Self.sample().zones)
    }

    @Test("a torn, foreign or broken document is one line saying what is wrong", arguments: [
        ("", "empty file"),
        (#"{"schema": "netnet.counts/1", "stream": "cam", "li"#, "not JSON (torn or overwritten?)"),
        (#"{"schema": "netnet.frame/1", "stream": "cam", "lines": {}, "zones": {}}"#, #"schema is not "netnet.counts/1""#),
        (#"{"schema": "netnet.counts/1", "lines": {}, "zones": {}}"#, #"no "stream""#),
        (#"{"schema": "netnet.counts/1", "stream": "c", "lines": {"door": {"in": {"person": true}, "out": {}}}, "zones": {}}"#,
         "lines.door.in.person is not of the right type"),
        (#"{"schema": "netnet.counts/1", "stream": "c", "lines": {"door": {"in": {"person": 1.5}, "out": {}}}, "zones": {}}"#,
         "lines.door.in.person is not a whole number"),
        (#"{"schema": "netnet.counts/1", "stream": "c", "lines": {"door": {"in": {"person": -1}, "out": {}}}, "zones": {}}"#,
         "lines.door.in.person is negative"),
        (#"{"schema": "netnet.counts/1", "stream": "c", "lines": {}, "zones": {"bay": {"entered": {}}}}"#, #"no "zones.bay.objects""#),
        ("[1, 2]", "not a JSON object"),
    ])
    func rejects(_ text: String, _ reason: String) {
        do {
            _ = try CountsDocument.parse(Array(text.utf8))
            Issue.record("parsed \(text)")
        } catch {
            #expect(error.reason == reason, "\(text)")
        }
    }
}

@Suite struct AtomicFileTests {
    @Test func replacesTheFileAndLeavesNoTemporary() throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("c.json").path
        try AtomicFile.write(Array("first\n".utf8), to: path)
        try AtomicFile.write(Array("second\n".utf8), to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["c.json"])
        try AtomicFile.checkWritable(path)
    }

    @Test func failuresNameThePathAndKeepTheOldFile() throws {
        let folder = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: OutputError(operation: "create", path: "/nonexistent-dir/c.json.tmp", code: ENOENT)) {
            try AtomicFile.write([1], to: "/nonexistent-dir/c.json")
        }
        #expect(throws: OutputError(operation: "write", path: "/nonexistent-dir/c.json", code: ENOENT)) {
            try AtomicFile.checkWritable("/nonexistent-dir/c.json")
        }
        #expect(throws: OutputError(operation: "write", path: folder.path, code: EISDIR)) { try AtomicFile.checkWritable(folder.path) }
        // A folder where the file should be: the rename fails, nothing is left behind.
        let blocked = folder.appendingPathComponent("blocked").path
        try FileManager.default.createDirectory(atPath: blocked + "/inner", withIntermediateDirectories: true)
        #expect(throws: OutputError(operation: "replace", path: blocked, code: EISDIR)) { try AtomicFile.write([1], to: blocked) }
        #expect(!FileManager.default.fileExists(atPath: blocked + ".tmp"))
    }
}
