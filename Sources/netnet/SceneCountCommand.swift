import ArgumentParser
import Foundation
import NetnetEngine
import NetnetPipeline
import NetnetScene

/// `netnet scene count`: the scene's counts on tracks read from a MOT file (ground truth), by the
/// same rule code as `annotate --scene` (`SceneRules`, `SceneCounts`, `Scene.anchor`).
struct SceneCountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "count",
        abstract: "Count a scene's line crossings and zone visits on MOT-format tracks (ground truth).",
        discussion: """
            TRACKS is a MOT file: one box a line, frame,id,x,y,w,h,conf[,…], pixels, frames counted from 1. \
            Rows with conf 0 (boxes not to be scored) are skipped; the columns after conf (MOT15's world \
            coordinates, MOT17's class and visibility) are not read, and every track is a confirmed person. \
            Each track's position on a frame is its box's bottom-centre, and the rules are annotate's \
            (docs/scenes.md); a track ends after its last row. Frames run in order; the events' frame is \
            the decoded frame, MOT frame - 1, as in annotate's. Prints the netnet.counts/1 document.
            """)

    @Argument(help: "MOT track file (frame,id,x,y,w,h,conf,…).")
    var tracks: String

    @Option(help: "Scene file: its lines and zones are counted (docs/scenes.md).")
    var scene: String

    @Option(help: "Frame rate, for the zones' dwell and loiter times.")
    var rate: Double = 25

    @Option(help: "First MOT frame to read (default: the file's first).")
    var first: Int?

    @Option(help: "Last MOT frame to read (default: the file's last).")
    var last: Int?

    @Option(help: "Scene events to write, netnet.event/1 lines (- for standard output: then before the counts).")
    var events: String?

    @Option(help: "Stream id written in the counts and events.")
    var streamId: String = "0"

    func validate() throws {
        guard rate.isFinite, rate > 0 else { throw ValidationError("--rate must be above 0, got \(rate)") }
        if let first, first < 1 { throw ValidationError("--first must be at least 1 (MOT frames count from 1), got \(first)") }
        if let first, let last, last < first { throw ValidationError("--last (\(last)) is before --first (\(first))") }
        if let events, events == tracks { throw ValidationError("--events would overwrite the track file \(tracks)") }
    }

    func run() throws {
        let rulesScene = reportingErrors { try AnnotateCommand.loadScene(scene) }
        let rows = reportingErrors { try MOTTracks.read(tracks) }.filter { row in
            (first.map { row.frame >= $0 } ?? true) && (last.map { row.frame <= $0 } ?? true)
        }
        var rules = SceneRules(scene: rulesScene)
        var counts = SceneCounts(scene: rulesScene)
        var lastFrame: [Int: Int] = [:]
        for row in rows { lastFrame[row.id] = max(lastFrame[row.id] ?? row.frame, row.frame) }
        let byFrame = Dictionary(grouping: rows, by: \.frame)
        let started = WallClock.nowNanoseconds()
        var lines: [UInt8] = []
        var seq = 0
        func record(_ found: [SceneEvent], _ row: (Int) -> MOTTracks.Row, frame: Int, time: Double) {
            for event in found {
                counts.apply(event)
                guard events != nil else { continue }
                let box = row(event.trackID)
                let facts = FrameFacts(index: frame - 1, pts: time, readNanoseconds: started + Int64(time * 1e9),
                                       width: 0, height: 0, frameRate: rate)
                ObjectEvent(stream: streamId, frame: facts, kind: ObjectEventKind(event.kind), trackID: event.trackID,
                            classIndex: 0, label: MOTTracks.label, score: box.conf,
                            box: [box.x, box.y, box.x + box.w, box.y + box.h], scene: event)
                    .appendJSONLine(seq: seq, to: &lines)
                seq += 1
            }
        }
        for frame in byFrame.keys.sorted() {
            let here = byFrame[frame]!.sorted { $0.id < $1.id }
            let time = Double(frame - 1) / rate
            let objects = here.map { row in
                SceneObject(trackID: row.id, label: MOTTracks.label,
                            position: Scene.anchor(x1: row.x, y1: row.y, x2: row.x + row.w, y2: row.y + row.h))
            }
            let byID = Dictionary(uniqueKeysWithValues: here.map { ($0.id, $0) })
            record(rules.update(frame: frame - 1, time: time, objects: objects), { byID[$0]! }, frame: frame, time: time)
            for row in here where lastFrame[row.id] == frame {
                record(rules.end(trackID: row.id), { _ in row }, frame: frame, time: time)
            }
        }
        if let events {
            if events == "-" {
                FileHandle.standardOutput.write(Data(lines))
            } else {
                reportingErrors { try AtomicFile.write(lines, to: events) }
            }
        }
        let span = byFrame.keys.max().map { $0 - byFrame.keys.min()! + 1 } ?? 0
        let document = CountsDocument.render(stream: streamId, scene: rulesScene.file, counts: counts, frames: span,
                                             timeNanoseconds: WallClock.nowNanoseconds())
        FileHandle.standardOutput.write(Data(document))
    }
}

/// Reads MOT-format track files (`frame,id,x,y,w,h,conf[,…]`, frames from 1): the rows that
/// count, as `netnet scene count` reads them. Pure.
enum MOTTracks {
    /// The label every MOT track gets (the sequences here label people only).
    static let label = "person"

    /// One box of one track on one frame, in pixels.
    struct Row: Equatable {
        var frame: Int, id: Int
        var x: Float, y: Float, w: Float, h: Float
        var conf: Float
    }

    /// The rows of the file at `path` that count (conf not 0), in file order. A missing or
    /// unreadable file, or a row that is not `frame,id,x,y,w,h,conf[,…]` with a frame of 1 or
    /// more, a finite box of non-negative size, or an id seen twice on one frame, throws one
    /// line naming the file and line.
    static func read(_ path: String) throws -> [Row] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CommandFailure("\(path): no such track file")
        }
        guard !isDirectory.boolValue, let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure("\(path): cannot read it as a track file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw CommandFailure("\(path): not UTF-8 text") }
        return try parse(text, file: path)
    }

    /// The rows of `text` that count; `file` names it in messages.
    static func parse(_ text: String, file: String) throws -> [Row] {
        var rows: [Row] = []
        var seen = Set<[Int]>()
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            func fail(_ message: String) -> CommandFailure { CommandFailure("\(file):\(number): \(message)") }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 7 else {
                throw fail("a MOT row is frame,id,x,y,w,h,conf[,…], got \(fields.count) field\(fields.count == 1 ? "" : "s")")
            }
            func integer(_ i: Int, _ name: String) throws -> Int {
                if let value = Int(fields[i]) { return value }
                if let value = Double(fields[i]), value.isFinite, value == value.rounded(), abs(value) < 1e9 { return Int(value) }
                throw fail("\(name) is not an integer: \(fields[i])")
            }
            func decimal(_ i: Int, _ name: String) throws -> Float {
                guard let value = Float(fields[i]), value.isFinite else { throw fail("\(name) is not a number: \(fields[i])") }
                return value
            }
            let frame = try integer(0, "frame"), id = try integer(1, "id")
            guard frame >= 1 else { throw fail("frame \(frame): MOT frames count from 1") }
            let row = Row(frame: frame, id: id, x: try decimal(2, "x"), y: try decimal(3, "y"), w: try decimal(4, "w"),
                          h: try decimal(5, "h"), conf: try decimal(6, "conf"))
            guard row.w >= 0, row.h >= 0 else { throw fail("a box of negative size: w \(fields[4]), h \(fields[5])") }
            if row.conf == 0 { continue }
            guard seen.insert([frame, id]).inserted else { throw fail("track \(id) has a second box on frame \(frame)") }
            rows.append(row)
        }
        return rows
    }
}
