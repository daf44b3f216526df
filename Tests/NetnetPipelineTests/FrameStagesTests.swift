import Testing
import NetnetEngine
@testable import NetnetMedia
import NetnetTracker
@testable import NetnetPipeline

/// The stage pieces both drivers (annotate, serve) share.
@Suite struct FrameStagesTests {
    @Test func samplingPicksFrameZeroAndEveryNth() {
        #expect((0..<10).filter(FrameSampling(every: 3).isSampled(frame:)) == [0, 3, 6, 9])
        #expect((0..<4).allSatisfy(FrameSampling(every: 1).isSampled(frame:)))
        #expect(FrameSampling(every: 0).every == 1)
    }

    @Test func recorderNumbersCarriesAndStampsReadTime() {
        var recorder = FrameRecorder(stream: "cam", sequence: StreamSequence(stream: "cam", first: 7), tracking: nil)
        let person = Detection(classIndex: 0, label: "person", score: 0.9, box: [1, 2, 3, 4])
        let car = Detection(classIndex: 1, label: "car", score: 0.8, box: [5, 6, 7, 8])
        let plan: [(inferred: Bool, found: [Detection])] = [(true, [person]), (false, []), (false, []), (true, [car]), (false, [])]
        var records: [(Int, FrameRecord)] = []
        for (i, step) in plan.enumerated() {
            let slot = FrameSlot(inputCount: 1)
            slot.inferred = step.inferred
            slot.inferenceMilliseconds = step.inferred ? 2.5 : nil
            slot.detections = step.found
            slot.readNanoseconds = Int64(1_000 + i)
            slot.frame.index = i
            slot.dropped = i
            let output = recorder.record(slot); records.append((output.seq, output.record))
            #expect(slot.detections == records.last!.1.detections, "the slot keeps what is drawn")
        }
        #expect(records.map(\.0) == [7, 8, 9, 10, 11])
        #expect(recorder.nextSeq == 12)
        #expect(records.map(\.1.detections) == [[person], [person], [person], [car], [car]])
        #expect(records.map(\.1.inferred) == plan.map(\.inferred))
        #expect(records.map(\.1.timeNanoseconds) == [1_000, 1_001, 1_002, 1_003, 1_004])
        #expect(records.map(\.1.dropped) == [0, 1, 2, 3, 4])
        #expect(records.allSatisfy { $0.1.stream == "cam" })
    }

    @Test("with tracking: ids once confirmed, predicted boxes on frames not inferred, labels kept")
    func recorderTracks() {
        var recorder = FrameRecorder(stream: "cam")
        var tags: [[TrackTag]] = []
        var boxes: [[Detection]] = []
        for i in 0..<12 {
            let slot = FrameSlot(inputCount: 1)
            slot.frameRate = 10
            slot.frame.index = i
            slot.inferred = i % 2 == 0   // every 2nd frame inferred
            let x = Float(100 + 5 * i)
            slot.detections = slot.inferred ? [Detection(classIndex: 0, label: "person", score: 0.9, box: [x, 50, x + 40, 150])] : []
            let record = recorder.record(slot).record
            tags.append(record.tracks)
            boxes.append(record.detections)
            #expect(record.tracks.count == record.detections.count)
        }
        // Confirmed at its 2nd detection (frame 2: two detections spanning 3 frames, the evidence
        // of 3 in a row); before, no id and no prediction.
        // A confirmed detection carries the tracker's box (its filter's state, near the detection);
        // a prediction carries its own box as the tracker's.
        #expect(tags[0] == [TrackTag()] && tags[1].isEmpty)
        for i in [2, 4] {
            #expect(tags[i].count == 1 && tags[i][0].trackID == 1 && tags[i][0].origin == .detector && !tags[i][0].stationary)
            let estimate = tags[i].first?.estimate
            #expect(estimate.map { abs($0.x1 - boxes[i][0].box[0]) < 5 && abs($0.y2 - boxes[i][0].box[3]) < 5 } == true,
                    "frame \(i): \(String(describing: estimate)) vs \(boxes[i])")
        }
        for i in stride(from: 3, to: 12, by: 2) {
            let box = boxes[i].first.map { TrackBox(x1: $0.box[0], y1: $0.box[1], x2: $0.box[2], y2: $0.box[3]) }
            #expect(tags[i] == [TrackTag(trackID: 1, origin: .tracker, estimate: box)], "frame \(i): \(tags[i])")
            #expect(boxes[i].first?.label == "person")
            // The prediction lies between the detections around it (5 px a frame).
            let predicted = boxes[i].first?.box[0] ?? 0
            #expect(abs(predicted - Float(100 + 5 * i)) < 5, "frame \(i): \(predicted)")
        }
    }

    @Test("a reconnect (the frame index going back) starts a new tracker; its ids go on, never reused")
    func trackIDsSurviveReconnects() {
        var recorder = FrameRecorder(stream: "cam", firstTrackID: 5)
        var ids: [Int] = []
        for connection in 0..<2 {
            for i in 0..<4 {
                let slot = FrameSlot(inputCount: 1)
                slot.frame.index = i
                slot.inferred = true
                slot.detections = [Detection(classIndex: 0, label: "person", score: 0.9, box: [10, 10, 50, 110])]
                ids += recorder.record(slot).record.tracks.compactMap(\.trackID)
            }
            #expect(recorder.nextTrackID == 6 + connection)
        }
        #expect(ids == [5, 5, 6, 6], "confirmed at the 3rd frame of each connection: \(ids)")
    }

    /// A slot of frame `index` at 10 fps read at `index` ms after the epoch, inferred with `found`.
    static func slot(_ index: Int, _ found: [Detection]) -> FrameSlot {
        let slot = FrameSlot(inputCount: 1)
        slot.frameRate = 10
        slot.frame.index = index
        slot.readNanoseconds = Int64(index) * 1_000_000
        slot.inferred = true
        slot.detections = found
        return slot
    }

    @Test("object events: one start at confirmation and one end per object (lost, or at the stream's end), numbered from the frames' counter")
    func recorderEvents() {
        var recorder = FrameRecorder(stream: "cam", sequence: StreamSequence(stream: "cam", first: 3))
        var events: [FrameRecorder.NumberedEvent] = []
        var lineSeqs: [Int] = []   // frames and events in the order they are written
        for i in 0..<40 {
            var found: [Detection] = []
            // A walks right for the whole stream; B stands at the left for frames 5–9, then leaves.
            let x = Float(300 + 4 * i)
            if i < 40 { found.append(Detection(classIndex: 0, label: "person", score: i == 12 ? 0.97 : 0.9, box: [x, 50, x + 40, 150])) }
            if (5...9).contains(i) { found.append(Detection(classIndex: 0, label: "person", score: 0.8, box: [10, 60, 50, 160])) }
            let output = recorder.record(Self.slot(i, found))
            lineSeqs.append(output.seq)
            lineSeqs += output.events.map(\.seq)
            events += output.events
        }
        events += recorder.finish()
        lineSeqs += events.suffix(1).map(\.seq)
        // One counter for frame and event lines: 3, 4, 5, … in the order written, no gaps.
        #expect(lineSeqs == Array(3..<(3 + 40 + 4)))
        let summary = events.map { "\($0.seq) \($0.event.kind.rawValue) #\($0.event.trackID) @\($0.event.frame.index) \($0.event.life?.reason.rawValue ?? "")" }
        // B: confirmed at its 3rd frame (7), last seen at 9, lost after 2 s (20 frames) → ends at 30.
        #expect(summary == ["6 object_start #1 @2 ", "12 object_start #2 @7 ", "36 object_end #2 @30 lost", "46 object_end #1 @39 stream_end"],
                "\(summary)")
        #expect(recorder.nextSeq == 47)
        guard events.count == 4, let a = events[3].event.life, let b = events[2].event.life else { return }
        #expect(a.firstFrame == 0 && a.lastFrame == 39 && a.bestFrame == 12 && a.bestScore == 0.97)
        #expect(a.firstNanoseconds == 0 && a.lastNanoseconds == 39_000_000)
        #expect(abs(a.duration - 3.9) < 1e-9)
        #expect(a.bestBox == [348, 50, 388, 150])
        #expect(events[3].event.box == [456, 50, 496, 150], "the end carries the last detection")
        #expect(b.firstFrame == 5 && b.lastFrame == 9 && abs(b.duration - 0.4) < 1e-9)
        #expect(events.allSatisfy { $0.event.label == "person" && $0.event.stream == "cam" })
        #expect(recorder.finish().isEmpty, "finish twice ends nothing twice")
    }

    @Test("a frame index going back ends the open objects (stream_end) before the new connection's frame")
    func reconnectEndsObjects() {
        var recorder = FrameRecorder(stream: "cam")
        let person = [Detection(classIndex: 0, label: "person", score: 0.9, box: [10, 10, 50, 110])]
        var kinds: [String] = []
        for connection in 0..<2 {
            for i in 0..<4 {
                kinds += recorder.record(Self.slot(i, person)).events.map { "\(connection):\(i) \($0.event.kind.rawValue) #\($0.event.trackID)" }
            }
        }
        #expect(kinds == ["0:2 object_start #1", "1:0 object_end #1", "1:2 object_start #2"], "\(kinds)")
    }

    @Test func drawnBoxShowsTheScoreOnlyWhenAsked() {
        let detection = Detection(classIndex: 2, label: "dog", score: 0.876, box: [1, 2, 3, 4])
        #expect(DrawnBox(detection, withScore: true).label == "dog 0.88")
        #expect(DrawnBox(detection, withScore: false) == DrawnBox(x1: 1, y1: 2, x2: 3, y2: 4, label: "dog", classIndex: 2))
        #expect(DrawnBox(detection, track: TrackTag(trackID: 12), withScore: true).label == "dog #12 0.88")
        #expect(!DrawnBox(detection, track: TrackTag(trackID: 12), withScore: true).dashed)
        #expect(DrawnBox(detection, track: TrackTag(trackID: 12, origin: .tracker), withScore: true).dashed, "predicted boxes are dashed")
    }
}
