import Foundation
import Testing

/// The repository root (for samples/vtest.avi and docs/schemas).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let vtestPath = "\(repositoryRoot)/samples/vtest.avi"
let hasVtest = FileManager.default.fileExists(atPath: vtestPath)

/// The first `frames` frames of samples/vtest.avi (768×576) as an H.264 MP4 without audio in
/// `scratch`, made once per scratch folder.
func vtestClip(frames: Int, in scratch: Scratch) throws -> String {
    let clip = scratch.file("vtest-\(frames).mp4")
    if !FileManager.default.fileExists(atPath: clip) {
        try shell("ffmpeg -loglevel error -i \(vtestPath) -frames:v \(frames) -an -c:v libx264 -crf 18 -pix_fmt yuv420p \(clip)")
    }
    return clip
}

/// A scene for vtest.avi: a line people cross and a zone they walk into (x ≥ 500).
let vtestDoorScene = """
    [line door]
    points = 450,150 450,576
    [zone right]
    points = 500,150 768,150 768,576 500,576
    """
let hasJSONSchema: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import jsonschema"]
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

/// Output of a shell command.
func capture(_ command: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CLIError("command failed: \(command)") }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// ffprobe's counted video frames and the container duration.
func probeVideo(_ path: String) throws -> (frames: Int, duration: Double) {
    let frames = try capture("ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 '\(path)'")
    let duration = try capture("ffprobe -v error -show_entries format=duration -of csv=p=0 '\(path)'")
    return (Int(frames) ?? -1, Double(duration) ?? -1)
}

/// Validates every line of a JSON lines file against its schema in docs/schemas (chosen by the
/// line's `schema`: netnet.frame/1, netnet.event/1 or netnet.status/1; any other fails).
func validateAgainstSchema(_ path: String) throws {
    let script = """
        import json, sys
        from jsonschema import Draft202012Validator
        files = {"netnet.frame/1": "netnet.frame.schema.json", "netnet.event/1": "netnet.event.schema.json",
                 "netnet.status/1": "netnet.status.schema.json"}
        validators = {k: Draft202012Validator(json.load(open(sys.argv[1] + "/docs/schemas/" + f))) for k, f in files.items()}
        bad = 0
        for number, line in enumerate(open(sys.argv[2]), 1):
            record = json.loads(line)
            validator = validators.get(record.get("schema"))
            errors = ["unknown schema"] if validator is None else [e.message for e in validator.iter_errors(record)]
            if errors:
                bad += 1
                print(f"line {number}: {errors[0]}")
        sys.exit(1 if bad else 0)
        """
    let output = try? capture("python3 -c '\(script)' '\(repositoryRoot)' '\(path)' 2>&1")
    #expect(output != nil, "schema validation failed for \(path)")
}

/// Checks a stream's `netnet.event/1` lines against its frame lines: event `seq`s increase (they
/// share the stream's one counter with its frames, so they are not consecutive);
/// every track id in the frames has exactly one `object_start` (on the frame where the id first
/// appears) and, the stream having ended, exactly one later `object_end` whose first and last
/// frames bracket the frames that show the id; schema-valid.
func checkObjectEvents(_ path: String, frames: [[String: Any]], stream: String) throws {
    try checkObjectEvents(try jsonLines(path), frames: frames, stream: stream)
    if hasJSONSchema { try validateAgainstSchema(path) }
}

/// The same check on lines already read (a part of a file: one play of a looping stream).
func checkObjectEvents(_ lines: [[String: Any]], frames: [[String: Any]], stream: String) throws {
    let events = lines.filter { $0["stream"] as? String == stream && $0["schema"] as? String == "netnet.event/1" }
    let eventSeqs = events.compactMap { $0["seq"] as? Int }
    #expect(eventSeqs.count == events.count && zip(eventSeqs, eventSeqs.dropFirst()).allSatisfy { $0 < $1 }, "event seq")
    var seen: [Int: [Int]] = [:]   // track id → frame indices that show it
    for line in frames {
        for detection in (line["detections"] as? [[String: Any]]) ?? [] {
            if let id = detection["track_id"] as? Int { seen[id, default: []].append(line["frame"] as? Int ?? -1) }
        }
    }
    #expect(!seen.isEmpty, "no track in the frame lines")
    for (id, shown) in seen {
        let starts = events.filter { $0["kind"] as? String == "object_start" && $0["track_id"] as? Int == id }
        let ends = events.filter { $0["kind"] as? String == "object_end" && $0["track_id"] as? Int == id }
        #expect(starts.count == 1 && ends.count == 1, "track \(id): \(starts.count) starts, \(ends.count) ends")
        guard let start = starts.first, let end = ends.first else { continue }
        #expect(start["frame"] as? Int == shown.min(), "track \(id) starts at \(start["frame"] ?? "?"), first shown at \(shown.min()!)")
        let first = end["first_frame"] as? Int ?? -1, last = end["last_frame"] as? Int ?? -1
        #expect(first <= shown.min()! && last <= shown.max()! && (end["frame"] as? Int ?? -1) >= last, "track \(id): \(end)")
        #expect((start["seq"] as? Int ?? 0) < (end["seq"] as? Int ?? 0))
    }
    #expect(events.count == 2 * seen.count, "\(events.count) events for \(seen.count) tracks")
}

func jsonLines(_ path: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    #expect(text.isEmpty || text.hasSuffix("\n"), "\(path) does not end on a complete line")
    return try text.split(separator: "\n").map { try jsonObject($0) }
}

@Suite("netnet annotate", .serialized, .enabled(if: hasFFmpeg, "needs the ffmpeg CLI"))
struct AnnotateTests {
    let scratch = Scratch()

    func model(_ network: String = "netnet-vgg16-300", width: String = "0.125") throws -> String {
        let path = scratch.file("\(network)-\(width).safetensors")
        let result = try NetnetBinary.run(["model", "init", "--network", network, "--width", width, "--classes", "person,car",
                                           "--head-init", "he", "--output", path])
        #expect(result.status == 0, "\(result.stderr)")
        return path
    }

    @Test("vtest.avi: a playable MP4 with the input's frames and duration, one schema-valid JSON line per frame, and one start and one end event per track",
          .enabled(if: hasVtest, "samples/vtest.avi is missing: bash scripts/fetch-vtest.sh"))
    func vtest() throws {
        let out = scratch.file("out.mp4"), json = scratch.file("out.jsonl"), events = scratch.file("events.jsonl")
        let result = try NetnetBinary.run(["annotate", vtestPath, "--output", out, "--json", json, "--events", events])
        #expect(result.status == 0, "\(result.stderr)")
        let input = try probeVideo(vtestPath), output = try probeVideo(out)
        #expect(abs(output.frames - input.frames) <= 1, "frames: input \(input.frames), output \(output.frames)")
        #expect(abs(output.duration - input.duration) < 0.2, "duration: input \(input.duration), output \(output.duration)")
        let lines = try jsonLines(json)
        #expect(lines.count == input.frames)
        #expect(lines.enumerated().allSatisfy { ($1["frame"] as? Int) == $0 })
        // One counter per stream: frames and events together take every seq from 0, once.
        let allSeqs = (lines + (try jsonLines(events))).compactMap { $0["seq"] as? Int }
        #expect(allSeqs.sorted() == Array(0..<allSeqs.count), "seq: one counter for the stream's frames and events")
        let frameSeqs = lines.compactMap { $0["seq"] as? Int }
        #expect(zip(frameSeqs, frameSeqs.dropFirst()).allSatisfy { $0 < $1 }, "frame seqs increase")
        if hasJSONSchema { try validateAgainstSchema(json) }
        #expect(result.stderr.contains("795 frames"), "summary: \(result.stderr)")
        try checkObjectEvents(events, frames: lines, stream: "0")
    }

    @Test("a clip with audio keeps its audio; boxes are drawn; block loses no frame")
    func audioAndBlock() throws {
        let clip = scratch.file("tone.mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -f lavfi -i sine=frequency=440:sample_rate=48000:duration=2 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest \(clip)")
        let out = scratch.file("tone-out.mkv"), json = scratch.file("tone.jsonl")
        let result = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--threshold", "0.0001",
                                           "--output", out, "--json", json, "--policy", "block"])
        #expect(result.status == 0, "\(result.stderr)")
        let audio = try capture("ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate -of csv=p=0 '\(out)'")
        #expect(audio == "aac,48000", "audio stream: '\(audio)'")
        let packets = { (path: String) in
            try capture("ffprobe -v error -select_streams a:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 '\(path)'")
        }
        #expect(try packets(out) == (try packets(clip)), "every audio packet is copied")
        let input = try probeVideo(clip), output = try probeVideo(out)
        let lines = try jsonLines(json)
        #expect(input.frames == 50 && output.frames == 50 && lines.count == 50, "in \(input.frames), video \(output.frames), lines \(lines.count)")
        #expect(lines.allSatisfy { ($0["dropped"] as? Int) == 0 })
        #expect(lines.contains { (($0["detections"] as? [Any])?.count ?? 0) > 0 }, "the random-head model should report boxes at this threshold")
        if hasJSONSchema { try validateAgainstSchema(json) }
    }

    @Test("latest: a slow model drops frames, counts them in 'dropped', and keeps order")
    func latestDrops() throws {
        let clip = scratch.file("fast.ts")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=4 -c:v libx264 -pix_fmt yuv420p \(clip)")
        let json = scratch.file("latest.jsonl")
        let result = try NetnetBinary.run(["annotate", clip, "--model", try model("netnet-vgg16-512", width: "0.25"),
                                           "--json", json, "--policy", "latest", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try jsonLines(json)
        let frames = lines.compactMap { $0["frame"] as? Int }
        let dropped = lines.compactMap { $0["dropped"] as? Int }
        #expect(frames.count == lines.count && dropped.count == lines.count)
        #expect(zip(frames, frames.dropFirst()).allSatisfy { $0 < $1 }, "frames out of order")
        let total = dropped.reduce(0, +)
        #expect(total > 0, "no frame was dropped")
        // Every decoded frame is either a line or counted as dropped before one (the last frames
        // are always inferred: the ring drains at the end).
        #expect(lines.count + total == 100, "lines \(lines.count) + dropped \(total) != 100")
        for (index, frame) in frames.enumerated() {
            let expectedGap = index == 0 ? frame : frame - frames[index - 1] - 1
            #expect(dropped[index] == expectedGap, "line \(index): frame \(frame), dropped \(dropped[index])")
        }
    }

    @Test("--every N: frames between get the tracker's predictions (origin tracker); with --no-track they carry the last detections")
    func every() throws {
        let clip = scratch.file("every.mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=160x120:rate=25:duration=1 -c:v libx264 -pix_fmt yuv420p \(clip)")
        for tracking in [true, false] {
            let json = scratch.file("every-\(tracking).jsonl")
            let result = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--json", json, "--every", "5",
                                               "--threshold", "0.0001", "--quiet"] + (tracking ? [] : ["--no-track"]))
            #expect(result.status == 0, "\(result.stderr)")
            let lines = try jsonLines(json)
            #expect(lines.count == 25)
            var predicted = 0
            for (index, line) in lines.enumerated() {
                let inferred = line["inferred"] as? Bool
                #expect(inferred == (index % 5 == 0), "line \(index)")
                let detections = (line["detections"] as? [[String: Any]]) ?? []
                let previous = (lines[index - index % 5]["detections"] as? [[String: Any]]) ?? []
                if index % 5 == 0 {
                    #expect(detections.allSatisfy { $0["origin"] as? String == "detector" }, "line \(index)")
                    continue
                }
                #expect(line["inference_ms"] is NSNull)
                if tracking {
                    // Predictions of the confirmed tracks seen at the last inference, nothing else.
                    let seen = Set(previous.compactMap { $0["track_id"] as? Int })
                    #expect(detections.allSatisfy { $0["origin"] as? String == "tracker" }, "line \(index)")
                    #expect(detections.allSatisfy { ($0["track_id"] as? Int).map(seen.contains) ?? false }, "line \(index)")
                    predicted += detections.count
                } else {
                    #expect(detections.count == previous.count)
                    #expect(detections.allSatisfy { $0["track_id"] is NSNull && $0["origin"] as? String == "detector" })
                }
            }
            if tracking { #expect(predicted > 0, "the tracks confirmed by frame 10 are predicted on the frames after it") }
        }
    }

    @Test("--events given the --json path: both kinds of line in one file, a frame's events right after its line; --events needs tracking")
    func eventsInTheFrameFile() throws {
        let clip = scratch.file("events.mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=160x120:rate=25:duration=1 -c:v libx264 -pix_fmt yuv420p \(clip)")
        let json = scratch.file("both.jsonl")
        let result = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--json", json, "--events", json,
                                           "--threshold", "0.0001", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try jsonLines(json)
        let frames = lines.filter { $0["schema"] as? String == "netnet.frame/1" }
        #expect(frames.count == 25)
        var lastFrame = -1
        for line in lines {
            if line["schema"] as? String == "netnet.frame/1" { lastFrame = line["frame"] as? Int ?? -2; continue }
            #expect(line["frame"] as? Int == lastFrame, "an event out of place: \(line)")
        }
        try checkObjectEvents(json, frames: frames, stream: "0")
        let refused = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--events", json, "--no-track"])
        #expect(refused.status != 0 && refused.stderr.contains("--events needs tracking"), "\(refused.stderr)")
        let badOption = try NetnetBinary.run(["annotate", clip, "--json", json, "--track-option", "max_lost=soon"])
        #expect(badOption.status != 0 && badOption.stderr.contains("--track-option: max_lost must be a number (got 'soon')"), "\(badOption.stderr)")
        let scene = scratch.file("bad-scene.ini")
        try "[line door]\npoints = 10,10 300,10\n".write(toFile: scene, atomically: false, encoding: .utf8)
        let outside = try NetnetBinary.run(["annotate", clip, "--json", json, "--scene", scene])
        #expect(outside.status == 1 && outside.stderr.contains("\(scene):1: [line door]: point 300,10 is outside the 160×120 frame"), "\(outside.stderr)")
        try "[line door]\npoints = 10,10\n".write(toFile: scene, atomically: false, encoding: .utf8)
        let broken = try NetnetBinary.run(["annotate", clip, "--json", json, "--scene", scene])
        #expect(broken.status == 1 && broken.stderr.contains("\(scene):2: a line has 2 points, got 1"), "\(broken.stderr)")
        let missing = try NetnetBinary.run(["annotate", clip, "--json", json, "--scene", scratch.file("none.ini")])
        #expect(missing.status == 1 && missing.stderr.contains("none.ini: no such scene file"), "\(missing.stderr)")
        let unknown = try NetnetBinary.run(["annotate", clip, "--json", json, "--track-option", "speed=2"])
        #expect(unknown.status != 0 && unknown.stderr.contains("'speed=2' is not NAME=VALUE with NAME one of high_score,"), "\(unknown.stderr)")
    }

    @Test("--inference-workers 2 writes the same frames, in order, as one worker; bad counts are refused")
    func workers() throws {
        let clip = scratch.file("workers.mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -c:v libx264 -pix_fmt yuv420p \(clip)")
        var runs: [[[String: Any]]] = []
        for workers in ["1", "2"] {
            let json = scratch.file("workers-\(workers).jsonl"), out = scratch.file("workers-\(workers).mp4")
            let result = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--json", json, "--output", out,
                                               "--threshold", "0.0001", "--inference-workers", workers, "--quiet"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try probeVideo(out).frames == 50)
            runs.append(try jsonLines(json))
        }
        #expect(runs[0].count == 50 && runs[1].count == 50)
        // Frames in order, each once. (This random-head model puts most boxes at the threshold and
        // at NMS ties, so its detections are compared in `sameDetections`, on a trained model.)
        let keys = ["frame", "seq", "pts", "inferred"]
        for (one, two) in zip(runs[0], runs[1]) {
            for key in keys { #expect("\(one[key] ?? "nil")" == "\(two[key] ?? "nil")", "\(key) differs") }
        }
        #expect(runs[1].contains { (($0["detections"] as? [Any])?.count ?? 0) > 0 }, "the random-head model should report boxes")
        for bad in ["-1", "1000"] {
            let refused = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--json", "-", "--inference-workers", bad])
            #expect(refused.status != 0 && refused.stderr.contains("--inference-workers"), "\(bad): \(refused.stderr)")
        }
    }

    @Test("1 and 2 inference workers and --gemm openblas find the same detections on real footage, within the stated tolerance",
          .enabled(if: hasVtest, "needs samples/vtest.avi (scripts/fetch-vtest.sh)"))
    func sameDetections() throws {
        let clip = try vtestClip(frames: 40, in: scratch)
        let threshold = 0.3
        let settings: [[String]] = [["--inference-workers", "1"], ["--inference-workers", "2"],
                                    ["--inference-workers", "1", "--gemm", "openblas"]]
        var runs: [[[String: Any]]] = []
        for (index, arguments) in settings.enumerated() {
            let json = scratch.file("same-\(index).jsonl")
            let result = try NetnetBinary.run(["annotate", clip, "--json", json, "--threshold", "\(threshold)", "--quiet"] + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            runs.append(try jsonLines(json))
        }
        let tolerance = DetectionTolerance(threshold: threshold)
        var boxes = 0
        for (index, run) in runs.enumerated().dropFirst() {
            #expect(run.count == 40 && runs[0].count == 40, "\(settings[index]): \(run.count) lines")
            for (one, other) in zip(runs[0], run) {
                for key in ["frame", "seq", "pts", "inferred"] {
                    #expect("\(one[key] ?? "nil")" == "\(other[key] ?? "nil")", "\(settings[index]): \(key) differs")
                }
                let first = ((one["detections"] as? [Any]) ?? []).compactMap(LineDetection.init(json:))
                let second = ((other["detections"] as? [Any]) ?? []).compactMap(LineDetection.init(json:))
                boxes += first.count
                let problems = detectionDifferences(first, second, width: one["width"] as? Int ?? 0, height: one["height"] as? Int ?? 0,
                                                    tolerance: tolerance)
                #expect(problems.isEmpty, "frame \(one["frame"] ?? "?"), \(settings[0]) vs \(settings[index]): \(problems)")
            }
        }
        #expect(boxes > 40, "the default model should find the walking people: \(boxes) boxes")
        // The tolerance's premise: the heads on this footage stay within `headLimit`.
        let still = scratch.file("vtest-frame.png"), heads = scratch.file("vtest-heads")
        try shell("ffmpeg -loglevel error -y -i \(clip) -frames:v 1 \(still)")
        let dumped = try NetnetBinary.run(["detect", "--dump-heads", heads, still])
        #expect(dumped.status == 0, "\(dumped.stderr)")
        for name in ["loc", "conf"] {
            let largest = try capture("python3 -c 'import numpy; print(abs(numpy.load(\"\(heads)/\(name).npy\")).max())'")
            #expect((Float(largest) ?? .infinity) <= DetectionTolerance.headLimit, "\(name) reaches \(largest)")
        }
    }

    @Test("bad input: missing, not a video, truncated, corrupt in the middle, unreachable URL")
    func badInput() throws {
        let modelPath = try model()
        func annotate(_ input: String) throws -> NetnetBinary.Result {
            try NetnetBinary.run(["annotate", input, "--model", modelPath, "--json", scratch.file("bad.jsonl"), "--quiet"])
        }
        let missing = try annotate(scratch.file("missing.mp4"))
        #expect(missing.status == 1 && missing.stderr.contains("missing.mp4") && missing.stderr.contains("No such file"), "\(missing.stderr)")

        let text = scratch.file("notes.mp4")
        try "not a video".write(toFile: text, atomically: true, encoding: .utf8)
        let notVideo = try annotate(text)
        #expect(notVideo.status == 1 && notVideo.stderr.contains("notes.mp4"), "\(notVideo.stderr)")

        let unreachable = try annotate("rtsp://127.0.0.1:9/camera")
        #expect(unreachable.status == 1 && unreachable.stderr.contains("rtsp://127.0.0.1:9/camera"), "\(unreachable.stderr)")

        // 100 frames of MPEG-TS; half of it, then garbage over the middle.
        let ts = scratch.file("long.ts")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=4 -c:v libx264 -pix_fmt yuv420p -g 25 \(ts)")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ts)))
        let truncated = scratch.file("truncated.ts")
        _ = FileManager.default.createFile(atPath: truncated, contents: Data(bytes.prefix(bytes.count / 2)))
        let cut = try annotate(truncated)
        #expect(cut.status == 0, "\(cut.stderr)")
        let cutLines = try jsonLines(scratch.file("bad.jsonl"))
        #expect(cutLines.count > 20 && cutLines.count < 100, "truncated: \(cutLines.count) lines")

        var corrupt = bytes
        var state: UInt64 = 12345
        let packets = corrupt.count / 188, first = packets / 2, count = max(4, packets / 30)
        for p in first..<(first + count) {
            let start = p * 188
            // Keep sync bytes, headers and PES starts so the damage reaches the decoder.
            guard corrupt[start] == 0x47, corrupt[start + 1] & 0x40 == 0, corrupt[start + 3] & 0x20 == 0 else { continue }
            for i in (start + 4)..<(start + 188) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                corrupt[i] = UInt8(truncatingIfNeeded: state >> 33)
            }
        }
        let damaged = scratch.file("corrupt.ts")
        _ = FileManager.default.createFile(atPath: damaged, contents: Data(corrupt))
        let result = try NetnetBinary.run(["annotate", damaged, "--model", modelPath, "--json", scratch.file("corrupt.jsonl")])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try jsonLines(scratch.file("corrupt.jsonl"))
        #expect(lines.count >= 80, "only \(lines.count) of 100 frames processed")
        #expect(result.stderr.contains("warning"), "no warning for the damaged packets: \(result.stderr)")
        #expect(!result.stderr.contains(" 0 decode errors"), "decode errors not counted: \(result.stderr)")
    }

    @Test("SIGINT: stops reading, finishes the frames in flight, the partial video plays, the JSON ends on a complete line")
    func interrupt() throws {
        let clip = scratch.file("long.mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=20 -c:v libx264 -pix_fmt yuv420p \(clip)")
        let out = scratch.file("partial.mp4"), json = scratch.file("partial.jsonl")
        let process = Process()
        process.executableURL = NetnetBinary.url
        process.arguments = ["annotate", clip, "--model", try model(), "--output", out, "--json", json, "--quiet"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: json, encoding: .utf8)) ?? ""
            if text.split(separator: "\n").count >= 10 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.interrupt()
        let stopped = Date()
        process.waitUntilExit()
        #expect(Date().timeIntervalSince(stopped) < 10, "took too long to stop")
        #expect(process.terminationStatus == 130, "exit status \(process.terminationStatus)")
        let lines = try jsonLines(json)
        #expect(lines.count >= 10 && lines.count < 500)
        let video = try probeVideo(out)
        #expect(abs(video.frames - lines.count) <= 1, "video \(video.frames) frames, \(lines.count) lines")
    }
}
