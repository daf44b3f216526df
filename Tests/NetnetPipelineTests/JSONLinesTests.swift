import Foundation
import Testing
import NetnetTracker
import NetnetEngine
@testable import NetnetPipeline

@Suite struct FrameRecordTests {
    @Test func lineHasTheDocumentedKeysInOrder() {
        let line = sampleRecord(detections: 1).jsonLine(seq: 5)
        #expect(line == #"{"schema": "netnet.frame/1", "stream": "cam-1", "seq": 5, "frame": 42, "pts": 1.400000, "#
                + #""time": "2026-11-25T03:58:01.123Z", "width": 768, "height": 576, "dropped": 3, "inference_ms": 35.412, "#
                + #""inferred": true, "detections": [{"class": 0, "label": "person", "score": 0.91234, "#
                + #""box": [10.13, 20.50, 110.00, 220.99], "track_id": null, "origin": "detector", "stationary": false, "track_box": null}]}"#)
        var tracked = sampleRecord(detections: 2)
        tracked.tracks = [TrackTag(trackID: 12, origin: .tracker, stationary: true,
                                   estimate: TrackBox(x1: 10.125, y1: 20.5, x2: 110, y2: 221.004))]   // the second: untracked
        let text = tracked.jsonLine(seq: 0)
        #expect(text.contains(#""box": [10.13, 20.50, 110.00, 220.99], "track_id": 12, "origin": "tracker", "stationary": true, "#
                              + #""track_box": [10.13, 20.50, 110.00, 221.00]}"#), "\(text)")
        #expect(text.contains(#""box": [11.13, 20.50, 110.00, 220.99], "track_id": null, "origin": "detector", "stationary": false, "#
                              + #""track_box": null}"#), "\(text)")
    }

    @Test func notInferredAndUnknownValuesAreNull() throws {
        var record = sampleRecord(detections: 0, inferred: false)
        record.pts = nil
        record.inferenceMilliseconds = 12  // ignored: not inferred
        let line = record.jsonLine(seq: 0)
        #expect(line.contains(#""pts": null"#))
        #expect(line.contains(#""inference_ms": null, "inferred": false, "detections": []}"#))
        record.inferred = true
        record.inferenceMilliseconds = .nan
        record.pts = .infinity
        record.detections = [Detection(classIndex: 1, label: "x", score: .nan, box: [.nan, 1, 2, 3])]
        let bad = record.jsonLine(seq: 0)
        #expect(!bad.contains("NaN") && !bad.contains("nan") && !bad.contains("Infinity") && !bad.contains("inf,"))
        #expect(bad.contains(#""inference_ms": null"#) && bad.contains(#""score": null, "box": [null, 1.00, 2.00, 3.00]"#))
        // Still valid JSON.
        _ = try JSONSerialization.jsonObject(with: Data(bad.utf8))
    }

    @Test func inferredDefaultsToHavingATime() {
        let a = FrameRecord(stream: "s", frame: 0, pts: nil, timeNanoseconds: 0, width: 1, height: 1, dropped: 0,
                            inferenceMilliseconds: 1, detections: [])
        let b = FrameRecord(stream: "s", frame: 0, pts: nil, timeNanoseconds: 0, width: 1, height: 1, dropped: 0,
                            inferenceMilliseconds: nil, detections: [])
        #expect(a.inferred && !b.inferred)
    }
}

@Suite struct JSONLinesWriterTests {
    @Test func writesNumberedLinesPerStream() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.jsonl").path
        let writer = try JSONLinesWriter(path: path)
        var seqs: [Int] = []
        var next: [String: Int] = [:]
        for i in 0..<1000 {
            let record = sampleRecord(stream: i % 3 == 0 ? "a" : "b", frame: i)
            let seq = next[record.stream, default: 0]
            next[record.stream] = seq + 1
            try writer.write(record, seq: seq)
            seqs.append(seq)
        }
        try writer.close()
        try writer.close()  // idempotent
        #expect(writer.linesWritten == 1000)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == 1000)
        var expectedSeq: [String: Int] = [:]
        for (i, line) in lines.enumerated() {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let stream = object["stream"] as! String
            #expect(object["seq"] as? Int == expectedSeq[stream, default: 0])
            #expect(object["frame"] as? Int == i)
            #expect(seqs[i] == expectedSeq[stream, default: 0])
            expectedSeq[stream, default: 0] += 1
        }
        #expect(expectedSeq == ["a": 334, "b": 666])
    }

    @Test func appendKeepsEarlierLines() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.jsonl").path
        for _ in 0..<2 {
            let writer = try JSONLinesWriter(path: path, append: true)
            try writer.write(sampleRecord(), seq: 0)
            try writer.close()
        }
        let truncating = try JSONLinesWriter(path: path)
        try truncating.close()
        #expect(try String(contentsOfFile: path, encoding: .utf8).isEmpty)
        let writer = try JSONLinesWriter(path: path, append: true)
        try writer.write(sampleRecord(), seq: 0)
        try writer.write(sampleRecord(), seq: 0)
        try writer.close()
        #expect(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count == 2)
    }

    @Test func openFailureNamesThePath() {
        #expect {
            _ = try JSONLinesWriter(path: "/nonexistent-netnet-dir/out.jsonl")
        } throws: { error in
            (error as? OutputError)?.description == "cannot open /nonexistent-netnet-dir/out.jsonl: No such file or directory"
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full"), "needs /dev/full"))
    func diskFullThrowsAndStaysFailed() throws {
        let writer = try JSONLinesWriter(path: "/dev/full")
        #expect {
            try writer.write(sampleRecord(), seq: 0)
        } throws: { error in
            let e = error as? OutputError
            return e?.code == ENOSPC && e?.description == "cannot write /dev/full: No space left on device"
        }
        #expect(throws: OutputError.self) { try writer.write(sampleRecord(), seq: 0) }
        #expect(writer.linesWritten == 0)
    }

    #if os(Linux)
    /// A write cut short by the file size limit (RLIMIT_FSIZE, set in a child process so no other
    /// test is affected) must not leave half a line: the file is cut back to the last full line.
    @Test func partialLineIsCutBack() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("limited.jsonl").path
        let result = try runTestInChild("NetnetPipelineTests.JSONLinesWriterChild/childWriteUnderSizeLimit",
                                        environment: [JSONLinesWriterChild.switchVariable: path])
        #expect(result.status == 0, "\(result.output)")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lineLength = sampleRecord().jsonLine(seq: 0).utf8.count + 1
        #expect(!text.isEmpty && text.hasSuffix("\n"))
        #expect(text.utf8.count == (JSONLinesWriterChild.sizeLimit / lineLength) * lineLength,
                "\(text.utf8.count) bytes for a \(JSONLinesWriterChild.sizeLimit)-byte limit and \(lineLength)-byte lines")
        for line in text.split(separator: "\n") {
            _ = try JSONSerialization.jsonObject(with: Data(line.utf8))
        }
        let error = try String(contentsOfFile: path + ".error", encoding: .utf8)
        #expect(error == "cannot write \(path): File too large")
    }

    @Test func closedPipeThrowsEPIPE() throws {
        signal(SIGPIPE, SIG_IGN)  // as SignalTrap.install does; the default would kill the test process
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let path = "/proc/self/fd/\(fds[1])"
        let writer = try JSONLinesWriter(path: path)  // opens the pipe's write end while a reader exists
        close(fds[0])
        close(fds[1])
        #expect {
            try writer.write(sampleRecord(), seq: 0)
        } throws: { error in
            (error as? OutputError)?.description == "cannot write \(path): Broken pipe"
        }
        try writer.close()
    }
    #endif
}

/// The child side of `partialLineIsCutBack`: does nothing in a normal run.
@Suite struct JSONLinesWriterChild {
    static let switchVariable = "NETNET_WRITER_CHILD_PATH"
    static let sizeLimit = 1000

    @Test func childWriteUnderSizeLimit() throws {
        guard let path = ProcessInfo.processInfo.environment[Self.switchVariable] else { return }
        #if os(Linux)
        signal(SIGXFSZ, SIG_IGN)  // get EFBIG instead of being killed
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
        limit.rlim_cur = rlim_t(Self.sizeLimit)
        guard setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit) == 0 else { _exit(5) }
        let writer = try JSONLinesWriter(path: path)
        do {
            for _ in 0..<100 { try writer.write(sampleRecord(), seq: 0) }
            _exit(3)  // the limit should have stopped it
        } catch let error as OutputError {
            try error.description.write(toFile: path + ".error", atomically: false, encoding: .utf8)
            _exit(error.code == EFBIG ? 0 : 4)
        }
        #endif
    }
}
