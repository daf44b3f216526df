#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import NetnetSpool

@Suite struct CRCTests {
    @Test func tableMatchesThePlainTwinOnRandomData() {
        var random = SplitMix(state: 20)
        for _ in 0..<300 {
            let bytes = (0..<Int.random(in: 0...3000, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            #expect(CRC32C.checksum(bytes) == plainCRC32C(bytes), "length \(bytes.count)")
        }
    }

    @Test func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(plainCRC32C(Array("123456789".utf8)) == 0xE306_9283)
    }
}

@Suite struct SpoolTests {
    @Test func appendReadAcknowledgeAcrossSegmentRolls() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: small)
        #expect(spool.warnings.isEmpty)
        #expect(try fill(spool, 35) == Array(0..<35))
        #expect(segmentFiles(dir) == [0, 10, 20, 30].map { SpoolFormat.segmentName($0) })
        let all = try spool.read(sink: "a", max: 100)
        #expect(all.map(\.index) == Array(0..<35))
        #expect(all.allSatisfy { $0.payload == payload($0.index) })
        #expect(try spool.read(sink: "a", max: 7).map(\.index) == Array(0..<7))
        #expect(try spool.read(sink: "a", from: 8, max: 4).map(\.index) == Array(8..<12))
        #expect(try spool.read(sink: "a", max: 0).isEmpty && spool.read(sink: "a", max: -1).isEmpty)
        #expect(try spool.read(sink: "a", from: 35, max: 10).isEmpty)
        try spool.acknowledge(sink: "a", through: 6)
        #expect(try spool.cursor(sink: "a") == 7)
        #expect(try spool.read(sink: "a", max: 2).map(\.index) == [7, 8])
        try spool.acknowledge(sink: "a", through: 3)   // behind the cursor: nothing changes
        #expect(try spool.cursor(sink: "a") == 7)
        #expect(throws: SpoolError.acknowledgeBeyondEnd(sink: "a", index: 35, end: 35)) { try spool.acknowledge(sink: "a", through: 35) }
        #expect(throws: SpoolError.unknownSink("c")) { try spool.read(sink: "c", max: 1) }
        let figures = spool.figures()
        #expect(figures.records == 35 && figures.totalBytes == 3500)
        #expect(figures.pending == ["a": 28, "b": 35])
        #expect(figures.oldestAppendTime == all[0].appendTime)
        try spool.close()
        #expect(throws: SpoolError.closed) { try spool.append([1]) }
    }

    @Test func reopenReplaysFromEachCursor() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        do {
            let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: small)
            try fill(spool, 25)
            try spool.acknowledge(sink: "a", through: 9)
            try spool.acknowledge(sink: "b", through: 17)
            try spool.close()
        }
        let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: small)
        #expect(spool.warnings.isEmpty && spool.takeGaps().isEmpty)
        #expect(try spool.cursor(sink: "a") == 10 && spool.cursor(sink: "b") == 18)
        let a = try spool.read(sink: "a", max: 100), b = try spool.read(sink: "b", max: 100)
        #expect(a.map(\.index) == Array(10..<25) && b.map(\.index) == Array(18..<25))
        #expect((a + b).allSatisfy { $0.payload == payload($0.index) })
        #expect(!exists(segmentPath(dir, 0)), "both sinks had passed the first segment")
        #expect(try spool.append(payload(25)) == 25)
        #expect(segmentFiles(dir).last == SpoolFormat.segmentName(20), "appending goes on in the clean last segment")
    }

    @Test func spoolDroppedWithoutCloseKeepsWhatWasWritten() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        do {
            let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
            try fill(spool, 12)
            try spool.flush()
        }
        let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
        #expect(spool.warnings.isEmpty)
        #expect(try spool.read(sink: "a", max: 100).map(\.index) == Array(0..<12))
    }

    @Test(arguments: [30, 95, 99])   // mid-payload, inside the header, one byte left
    func tornTailIsCutAndTheRestReadable(cut: Int) throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        do {
            let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
            try fill(spool, 25)
            try spool.close()
        }
        let last = segmentPath(dir, 20)
        #expect(truncate(last, off_t(500 - cut)) == 0)
        let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
        #expect(spool.warnings == [.tornTail(segment: SpoolFormat.segmentName(20), offset: 400, bytesCut: UInt64(100 - cut))])
        #expect(fileSize(last) == 400)
        #expect(spool.takeGaps().isEmpty)
        let entries = try spool.read(sink: "a", max: 100)
        #expect(entries.map(\.index) == Array(0..<24) && entries.allSatisfy { $0.payload == payload($0.index) })
        #expect(try spool.append(payload(24)) == 24)
        try spool.close()
        let again = try Spool(directory: dir, sinks: ["a"], configuration: small)
        #expect(again.warnings.isEmpty)
        #expect(try again.read(sink: "a", max: 100).map(\.index) == Array(0..<25))
    }

    @Test func lastRecordFailingItsCRCIsATornTail() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        do {
            let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
            try fill(spool, 5)
            try spool.close()
        }
        patch(segmentPath(dir, 0), at: 499, [0xFF ^ payload(4)[79]])   // the last byte of the file
        let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
        #expect(spool.warnings == [.tornTail(segment: SpoolFormat.segmentName(0), offset: 400, bytesCut: 100)])
        #expect(try spool.read(sink: "a", max: 100).map(\.index) == [0, 1, 2, 3])
        #expect(try spool.append(payload(4)) == 4)
    }

    @Test func zeroFilledTailIsTorn() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        do {
            let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
            try fill(spool, 3)
            try spool.close()
        }
        patch(segmentPath(dir, 0), at: 300, [UInt8](repeating: 0, count: 150))   // blocks never written
        let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
        #expect(spool.warnings == [.tornTail(segment: SpoolFormat.segmentName(0), offset: 300, bytesCut: 150)])
        #expect(try spool.read(sink: "a", max: 100).map(\.index) == [0, 1, 2])
    }

    @Test func bitFlipInTheMiddleIsReportedAndTheRestDelivered() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        do {
            let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: small)
            try fill(spool, 35)
            try spool.acknowledge(sink: "b", through: 5)
            try spool.close()
        }
        let first = segmentPath(dir, 0)
        let flipped = 3 * 100 + 20 + 5   // record 3's payload
        let bytes = try SpoolFiles.readFile(first)
        patch(first, at: flipped, [bytes[flipped] ^ 0x10])
        let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: small)
        #expect(spool.warnings == [
            .corruptRecord(segment: SpoolFormat.segmentName(0), offset: 300, index: 3, reason: .checksumMismatch),
            .lostRecords(first: 3, last: 9),
        ])
        #expect(spool.takeGaps() == [SpoolGap(sink: "a", first: 3, last: 9, cause: .damaged),
                                     SpoolGap(sink: "b", first: 6, last: 9, cause: .damaged)])
        #expect(try spool.read(sink: "a", max: 100).map(\.index) == [0, 1, 2] + Array(10..<35))
        #expect(try spool.read(sink: "b", max: 100).map(\.index) == Array(10..<35))
        #expect(try spool.append(payload(35)) == 35)
        // Acknowledging past the damaged segment deletes it.
        try spool.acknowledge(sink: "a", through: 12)
        try spool.acknowledge(sink: "b", through: 12)
        #expect(!exists(first))
    }

    @Test func badMagicInTheNewestSegmentStartsAFreshSegment() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        do {
            let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
            try fill(spool, 25)
            try spool.close()
        }
        patch(segmentPath(dir, 20), at: 100, [0x00])   // record 21's magic
        let spool = try Spool(directory: dir, sinks: ["a"], configuration: small)
        #expect(spool.warnings == [.corruptRecord(segment: SpoolFormat.segmentName(20), offset: 100, index: 21, reason: .badMagic)])
        #expect(try spool.read(sink: "a", max: 100).map(\.index) == Array(0..<21))
        #expect(try spool.append(payload(21)) == 21)
        #expect(exists(segmentPath(dir, 21)))
        try spool.close()
        let again = try Spool(directory: dir, sinks: ["a"], configuration: small)
        #expect(again.warnings.count == 1, "the damaged segment is reported until it is deleted")
        #expect(try again.read(sink: "a", max: 100).map(\.index) == Array(0..<22))
    }

    @Test func capDropsTheOldestSegmentsAndReportsExactGaps() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        let capped = SpoolConfiguration(segmentBytes: 1000, maxBytes: 3000, fsyncInterval: 0.5)
        do {
            let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: capped)
            try fill(spool, 15)
            try spool.acknowledge(sink: "a", through: 14)
            try fill(spool, 30)   // records 15 … 44
            #expect(spool.takeGaps() == [
                SpoolGap(sink: "b", first: 0, last: 9, cause: .cap),    // at record 30
                SpoolGap(sink: "a", first: 15, last: 19, cause: .cap),  // at record 40
                SpoolGap(sink: "b", first: 10, last: 19, cause: .cap),
            ])
            #expect(spool.takeGaps().isEmpty)
            let figures = spool.figures()
            #expect(figures.dropped == ["a": 5, "b": 20])
            #expect(figures.totalBytes == 2500 && figures.records == 25 && figures.pending == ["a": 25, "b": 25])
            #expect(segmentFiles(dir) == [20, 30, 40].map { SpoolFormat.segmentName($0) })
            #expect(try spool.read(sink: "b", max: 1).first?.index == 20)
            try spool.close()
        }
        let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: capped)
        #expect(spool.warnings.isEmpty && spool.takeGaps().isEmpty, "the moved cursors were persisted")
        #expect(try spool.cursor(sink: "a") == 20 && spool.cursor(sink: "b") == 20)
    }

    @Test func capWithOneSegmentDeletesTheSegmentBeingWritten() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        let spool = try Spool(directory: dir, sinks: ["a"], configuration: SpoolConfiguration(segmentBytes: 1000, maxBytes: 1000))
        try fill(spool, 12)
        #expect(spool.takeGaps() == [SpoolGap(sink: "a", first: 0, last: 9, cause: .cap)])
        #expect(try spool.read(sink: "a", max: 100).map(\.index) == [10, 11])
    }

    @Test func aSegmentStaysUntilEverySinkHasPassedIt() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: small)
        try fill(spool, 35)
        try spool.acknowledge(sink: "a", through: 34)
        #expect(exists(segmentPath(dir, 0)))
        try spool.acknowledge(sink: "b", through: 8)
        #expect(exists(segmentPath(dir, 0)))
        try spool.acknowledge(sink: "b", through: 9)
        #expect(!exists(segmentPath(dir, 0)) && exists(segmentPath(dir, 10)))
        try spool.acknowledge(sink: "b", through: 34)
        #expect(segmentFiles(dir) == [SpoolFormat.segmentName(30)], "the segment being written stays")
        #expect(spool.figures().pending == ["a": 0, "b": 0])
    }

    @Test(arguments: ["garbage\n", "netnet-spool-cursor 1 13 00000000\n", "flip"])
    func corruptCursorStartsTheSinkAtTheOldestRecord(text: String) throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        do {
            let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: small)
            try fill(spool, 15)
            try spool.acknowledge(sink: "a", through: 11)
            try spool.acknowledge(sink: "b", through: 4)
            try spool.close()
        }
        let path = dir + "/cursors/a"
        if text == "flip" {
            #expect(try SpoolFiles.readFile(path) == Array("netnet-spool-cursor 1 12 ".utf8) + Array(try SpoolFiles.readFile(path).suffix(9)))
            patch(path, at: 23, Array("3".utf8))   // 12 → 13, the CRC no longer matches
        } else {
            #expect(SpoolFormat.parseCursor(Array(text.utf8)) == nil)
            patch(path, at: 0, Array(text.utf8))
            #expect(truncate(path, off_t(text.utf8.count)) == 0)
        }
        let spool = try Spool(directory: dir, sinks: ["a", "b"], configuration: small)
        #expect(spool.warnings == [.corruptCursor(sink: "a", path: path)])
        #expect(try spool.cursor(sink: "a") == 0 && spool.cursor(sink: "b") == 5)
        #expect(try spool.read(sink: "a", max: 100).map(\.index) == Array(0..<15))
    }

    @Test func fsyncIntervalZeroWritesEveryRecordAndLongOnesBatch() throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        let every = try Spool(directory: dir + "-0", sinks: ["a"], configuration: SpoolConfiguration(segmentBytes: 1000, fsyncInterval: 0))
        defer { removeTree(dir + "-0") }
        _ = try every.append(payload(0))
        #expect(fileSize(segmentPath(dir + "-0", 0)) == 100)
        let batched = try Spool(directory: dir, sinks: ["a"], configuration: SpoolConfiguration(segmentBytes: 1000, fsyncInterval: 3600, batchBytes: 250))
        try fill(batched, 2)
        #expect(fileSize(segmentPath(dir, 0)) == 0, "buffered")
        try fill(batched, 1)
        #expect(fileSize(segmentPath(dir, 0)) == 300, "one write once batchBytes are buffered")
        _ = try batched.append(payload(3))
        try batched.flush()
        #expect(fileSize(segmentPath(dir, 0)) == 400)
    }

    /// A producer and a sink on two threads: every record arrives once, in order.
    @Test func aProducerAndASinkOnTwoThreads() async throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        let spool = try Spool(directory: dir, sinks: ["a"], configuration: SpoolConfiguration(segmentBytes: 4096, fsyncInterval: 0.01))
        let count: UInt64 = 3000
        try await withThrowingTaskGroup(of: [UInt64].self) { group in
            group.addTask {
                for i in 0..<count { let index = try spool.append(payload(i)); #expect(index == i) }
                return []
            }
            group.addTask {
                var seen: [UInt64] = []
                while seen.count < Int(count) {
                    let entries = try spool.read(sink: "a", max: 100)
                    for entry in entries { #expect(entry.payload == payload(entry.index)) }
                    seen += entries.map(\.index)
                    if let last = entries.last { try spool.acknowledge(sink: "a", through: last.index) } else { await Task.yield() }
                }
                return seen
            }
            var all: [UInt64] = []
            for try await part in group { all += part }
            #expect(all == Array(0..<count))
        }
        #expect(segmentFiles(dir).count == 1, "every segment but the one being written was deleted")
    }

    @Test func badArgumentsAreRefused() {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        #expect(throws: SpoolError.invalidSinkName("../x")) { try Spool(directory: dir, sinks: ["../x"]) }
        #expect(throws: SpoolError.invalidSinkName(".a")) { try Spool(directory: dir, sinks: [".a"]) }
        #expect(throws: SpoolError.invalidConfiguration("maxBytes 10 is below segmentBytes 1000")) {
            try Spool(directory: dir, sinks: [], configuration: SpoolConfiguration(segmentBytes: 1000, maxBytes: 10))
        }
        #expect(throws: SpoolError.recordTooLarge(bytes: 1001, limit: 1000)) {
            try Spool(directory: dir, sinks: ["a"], configuration: small).append([UInt8](repeating: 1, count: 981))
        }
    }
}

/// Records per second through the spool (printed, not asserted): `SPOOL_BENCHMARK=1 swift test
/// --filter SpoolBenchmark`.
@Suite(.serialized) struct SpoolBenchmark {
    @Test(.enabled(if: getenv("SPOOL_BENCHMARK") != nil), arguments: [(0.5, 200_000), (0.0, 2_000)])
    func recordsPerSecond(interval: Double, count: Int) throws {
        let dir = temporaryDirectory(); defer { removeTree(dir) }
        let spool = try Spool(directory: dir, sinks: ["a"], configuration: SpoolConfiguration(fsyncInterval: interval))
        let record = [UInt8](repeating: 0x61, count: 200)
        let start = SpoolFiles.now(CLOCK_MONOTONIC)
        for _ in 0..<count { _ = try spool.append(record) }
        try spool.flush()
        let seconds = Double(SpoolFiles.now(CLOCK_MONOTONIC) - start) / 1e9
        print("spool: \(count) records of 200 B, fsyncInterval \(interval) s: \(Int(Double(count) / seconds)) records/s")
    }
}
