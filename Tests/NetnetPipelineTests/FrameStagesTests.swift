import Testing
import NetnetEngine
import NetnetMedia
@testable import NetnetPipeline

/// The stage pieces both drivers (annotate, serve) share.
@Suite struct FrameStagesTests {
    @Test func samplingPicksFrameZeroAndEveryNth() {
        #expect((0..<10).filter(FrameSampling(every: 3).isSampled(frame:)) == [0, 3, 6, 9])
        #expect((0..<4).allSatisfy(FrameSampling(every: 1).isSampled(frame:)))
        #expect(FrameSampling(every: 0).every == 1)
    }

    @Test func recorderNumbersCarriesAndStampsReadTime() {
        var recorder = FrameRecorder(stream: "cam", firstSeq: 7)
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
            slot.dropped = i
            records.append(recorder.record(slot))
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

    @Test func drawnBoxShowsTheScoreOnlyWhenAsked() {
        let detection = Detection(classIndex: 2, label: "dog", score: 0.876, box: [1, 2, 3, 4])
        #expect(DrawnBox(detection, withScore: true).label == "dog 0.88")
        #expect(DrawnBox(detection, withScore: false) == DrawnBox(x1: 1, y1: 2, x2: 3, y2: 4, label: "dog", classIndex: 2))
    }
}
