import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `serve` and `annotate` run the same stages (NetnetPipeline's FrameReader, InferenceStep,
/// FrameRecorder): on the same file they must report the same detections for every frame both
/// infer. `serve` plays a file at its frame rate under `latest`, so it may drop frames; the ones
/// it infers are compared with annotate's line for the same frame index.
@Suite("serve and annotate share one pipeline", .serialized)
struct ServeAnnotateParityTests {
    let scratch = Scratch()

    @Test("serve on a file URL and annotate on the same file find the same detections frame by frame",
          .enabled(if: hasVtest, "needs samples/vtest.avi (scripts/fetch-vtest.sh)"))
    func sameDetectionsAsAnnotate() throws {
        let clip = scratch.file("vtest-30.mp4")
        try shell("ffmpeg -loglevel error -i \(vtestPath) -frames:v 30 -an -c:v libx264 -crf 18 -pix_fmt yuv420p \(clip)")
        let threshold = 0.3
        let annotated = scratch.file("annotate.jsonl")
        let result = try NetnetBinary.run(["annotate", clip, "--json", annotated, "--threshold", "\(threshold)", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let byFrame = Dictionary(uniqueKeysWithValues: try jsonLines(annotated).map { ($0["frame"] as! Int, $0) })
        #expect(byFrame.count == 30)

        let events = scratch.file("events.jsonl")
        let config = scratch.file("netnet.conf")
        try """
            [global]
            listen = 127.0.0.1:0
            json_lines = \(events)
            [stream clip]
            url = \(clip)
            threshold = \(threshold)
            """.write(toFile: config, atomically: false, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch)
        // The file plays once (3 s at 10 fps), ends, and the stream backs off: then stop.
        let ended = waitFor(120) {
            ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains(#""reason": "ended""#)
        }
        #expect(ended, "the clip never ended: \(serve.stderr)")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0, "\(serve.stderr)")

        // The first play: frame lines up to the first `ended`.
        var served: [[String: Any]] = []
        for line in try jsonLines(events) {
            if line["schema"] as? String == "netnet.status/1" {
                if line["reason"] as? String == "ended" { break }
                continue
            }
            served.append(line)
        }
        #expect(served.count >= 5, "serve inferred only \(served.count) frames of 30")
        #expect(served.map { $0["seq"] as? Int } == served.indices.map { $0 }, "seq counts the stream's lines from 0")
        let tolerance = DetectionTolerance(threshold: threshold)
        var boxes = 0
        for line in served {
            let frame = line["frame"] as! Int
            guard let other = byFrame[frame] else {
                Issue.record("serve reported frame \(frame), which annotate did not")
                continue
            }
            #expect(line["inferred"] as? Bool == true && other["inferred"] as? Bool == true)
            for key in ["pts", "width", "height"] {
                #expect("\(line[key] ?? "nil")" == "\(other[key] ?? "nil")", "frame \(frame): \(key) differs")
            }
            let mine = ((line["detections"] as? [Any]) ?? []).compactMap(LineDetection.init(json:))
            let theirs = ((other["detections"] as? [Any]) ?? []).compactMap(LineDetection.init(json:))
            boxes += mine.count
            let problems = detectionDifferences(mine, theirs, width: line["width"] as? Int ?? 0,
                                                height: line["height"] as? Int ?? 0, tolerance: tolerance)
            #expect(problems.isEmpty, "frame \(frame), serve vs annotate: \(problems)")
        }
        #expect(boxes > served.count, "the default model should find the walking people: \(boxes) boxes")
    }
}
