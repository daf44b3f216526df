#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A durable queue of records for the sinks (docs/spool.md): an append-only log of segment files
/// in one directory, each record with its length, append time and CRC-32C; one cursor per sink,
/// advanced (and persisted) only when that sink acknowledges; a segment is deleted once every
/// registered sink has acknowledged all of it, or when the cap `maxBytes` needs its room.
///
/// Threads: any thread may call any method; one internal mutex serialises them, so the spool is
/// the single owner of its file descriptors (the segment being written, and those it opens
/// briefly to read). Nothing runs on a thread of its own: `append` writes a batch when
/// `batchBytes` are buffered and writes and `fdatasync`s when `fsyncInterval` has passed since the
/// last sync (every record for 0); the owner calls `flush()` at least every `fsyncInterval` (a
/// timer) so a pause in appends does not leave records unsynced, and `close()` at the end. A sync
/// holds the mutex, so a sink's `read` may wait for one `fdatasync`.
public final class Spool: @unchecked Sendable {
    /// The spool's directory.
    public let directory: String
    /// As given to `init`.
    public let configuration: SpoolConfiguration
    /// The registered sinks, as given to `init`.
    public let sinks: [String]
    /// What opening found and repaired (torn tail, corrupt records, lost ranges, corrupt cursors),
    /// in the order found.
    public let warnings: [SpoolWarning]

    private struct Segment {
        var first: UInt64
        var offsets: [UInt32]
        var bytes: UInt64
        var firstTime: UInt64
        var path: String
        var end: UInt64 { first + UInt64(offsets.count) }
    }

    private let lock = SpoolLock()
    private var segments: [Segment] = []
    /// Descriptor of `segments.last`, open for appending; -1 when the next append starts a segment.
    private var activeFD: Int32 = -1
    /// Bytes of the active segment already written to its file (the rest are in `buffer`).
    private var activeWritten: UInt64 = 0
    private var buffer: [UInt8] = []
    private var totalBytes: UInt64 = 0
    private var nextIndex: UInt64 = 0
    /// Per sink, the first index it has not acknowledged.
    private var cursors: [String: UInt64] = [:]
    private var dropped: [String: UInt64] = [:]
    private var gaps: [SpoolGap] = []
    private var lastSync: UInt64
    private var unsynced = false
    private var directoryDirty = false
    private var failure: SpoolError?
    private var cursorDirectory: String { directory + "/cursors" }

    /// Opens (creating if needed) the spool in `directory` for `sinks`: checks every segment,
    /// cuts a torn last record off, skips corrupt ones, reads each sink's cursor back (a sink
    /// without one, or with a corrupt one, starts at the oldest record), and records a `SpoolGap`
    /// (cause `.damaged`) for each sink that had not acknowledged records found lost. Cursor files
    /// of sinks not named here are left alone and hold nothing back. Throws `SpoolError` on a
    /// failed system call, a bad configuration or a bad sink name. Any thread.
    public init(directory: String, sinks: [String], configuration: SpoolConfiguration = .init()) throws(SpoolError) {
        if let problem = configuration.problem { throw .invalidConfiguration(problem) }
        for sink in sinks where !Spool.isValidSinkName(sink) { throw .invalidSinkName(sink) }
        self.directory = directory
        self.configuration = configuration
        self.sinks = Array(Set(sinks)).sorted()
        lastSync = SpoolFiles.now(CLOCK_MONOTONIC)
        try SpoolFiles.makeDirectory(directory)
        try SpoolFiles.makeDirectory(directory + "/cursors")

        var warnings: [SpoolWarning] = []
        let names = try SpoolFiles.list(directory).compactMap { name in SpoolFormat.segmentFirst(name).map { ($0, name) } }
            .sorted { $0.0 < $1.0 }
        var lastClean = false
        for (position, (first, name)) in names.enumerated() {
            let path = directory + "/" + name
            let bytes = try SpoolFiles.readFile(path)
            let scan = bytes.withUnsafeBytes { SpoolFormat.scan($0, segmentBytes: configuration.segmentBytes) }
            var size = UInt64(bytes.count)
            let isLast = position == names.count - 1
            lastClean = true
            if let problem = scan.problem {
                let index = first + UInt64(scan.offsets.count)
                if isLast && problem.torn {
                    let fd = try SpoolFiles.open(path, O_RDWR)
                    defer { _ = systemClose(fd) }
                    guard ftruncate(fd, off_t(problem.offset)) == 0 else { throw SpoolFiles.fail("truncate", path) }
                    try SpoolFiles.dataSync(fd, path: path)
                    warnings.append(.tornTail(segment: name, offset: UInt64(problem.offset), bytesCut: size - UInt64(problem.offset)))
                    size = UInt64(problem.offset)
                } else {
                    warnings.append(.corruptRecord(segment: name, offset: UInt64(problem.offset), index: index, reason: problem.reason))
                    lastClean = false
                }
            }
            if var previous = segments.last, previous.end > first {
                warnings.append(.overlappingSegments(segment: previous.path.split(separator: "/").last.map(String.init) ?? previous.path, index: first))
                previous.offsets.removeSubrange(Int(first - previous.first)...)
                segments[segments.count - 1] = previous
            }
            segments.append(Segment(first: first, offsets: scan.offsets, bytes: size, firstTime: scan.firstTime, path: path))
            totalBytes += size
        }
        nextIndex = segments.last?.end ?? 0

        // Cursors; a cursor past the log's end (its tail was lost) moves the end up to it.
        var known: Set<String> = []
        for sink in self.sinks {
            let path = directory + "/cursors/" + sink
            if access(path, F_OK) != 0 { continue }
            if let bytes = try? SpoolFiles.readFile(path), let next = SpoolFormat.parseCursor(bytes) {
                cursors[sink] = next
                known.insert(sink)
                nextIndex = max(nextIndex, next)
            } else {
                warnings.append(.corruptCursor(sink: sink, path: path))
            }
        }
        let oldest = segments.first?.first ?? nextIndex
        for sink in self.sinks where cursors[sink] == nil { cursors[sink] = oldest }

        // Indices in no segment, between the oldest and the next.
        var holes: [ClosedRange<UInt64>] = []
        var expected = oldest
        for segment in segments + [Segment(first: nextIndex, offsets: [], bytes: 0, firstTime: 0, path: "")] {
            if segment.first > expected { holes.append(expected...segment.first - 1) }
            expected = max(expected, segment.end)
        }
        for hole in holes {
            warnings.append(.lostRecords(first: hole.lowerBound, last: hole.upperBound))
            for sink in self.sinks where cursors[sink]! <= hole.upperBound {
                gaps.append(SpoolGap(sink: sink, first: max(cursors[sink]!, hole.lowerBound), last: hole.upperBound, cause: .damaged))
            }
        }
        // A cursor below the oldest record (segments lost at the front).
        for sink in self.sinks where known.contains(sink) && cursors[sink]! < oldest {
            gaps.append(SpoolGap(sink: sink, first: cursors[sink]!, last: oldest - 1, cause: .damaged))
            cursors[sink] = oldest
        }
        for sink in self.sinks { dropped[sink] = 0 }
        self.warnings = warnings

        // Go on appending to the last segment only when it is clean and ends at the next index.
        if lastClean, let last = segments.last, last.end == nextIndex, last.bytes < configuration.segmentBytes {
            activeFD = try SpoolFiles.open(last.path, O_WRONLY | O_APPEND)
            activeWritten = last.bytes
        }
        try deleteAcknowledged()
    }

    deinit {
        if activeFD >= 0 {
            try? writeBuffer()
            _ = systemClose(activeFD)
        }
    }

    /// Whether `name` may name a sink (it names its cursor file): 1–100 of `A-Z a-z 0-9 . _ -`,
    /// not starting with `.`. Pure; any thread.
    public static func isValidSinkName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...100).contains(bytes.count), bytes[0] != UInt8(ascii: ".") else { return false }
        return bytes.allSatisfy { b in
            (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 46 || b == 95 || b == 45
        }
    }

    /// Appends one record and returns its index (one more than the previous record's). When the
    /// spool would pass `maxBytes`, the oldest whole segments are deleted first (each sink's loss
    /// counted and queued as a `SpoolGap`, cause `.cap`; see `takeGaps`). The record is durable
    /// after the next sync (this call when `fsyncInterval` is 0 or has passed, else `flush()`).
    /// Throws `recordTooLarge`, or a `system` error after which the spool refuses every call
    /// (the records buffered but not written are then lost). Any thread.
    public func append(_ payload: [UInt8]) throws(SpoolError) -> UInt64 {
        try lock.withLock { () throws(SpoolError) -> UInt64 in
            if let failure { throw failure }
            let size = UInt64(SpoolFormat.headerBytes + payload.count)
            guard size <= configuration.segmentBytes else { throw .recordTooLarge(bytes: size, limit: configuration.segmentBytes) }
            try guarded { () throws(SpoolError) in
                try makeRoom(size)
                if activeFD < 0 || segments[segments.count - 1].bytes + size > configuration.segmentBytes { try roll() }
            }
            let time = SpoolFiles.now(CLOCK_REALTIME)
            var segment = segments.removeLast()
            if segment.offsets.isEmpty { segment.firstTime = time }
            segment.offsets.append(UInt32(segment.bytes))
            segment.bytes += size
            segments.append(segment)
            SpoolFormat.encode(payload, time: time, into: &buffer)
            totalBytes += size
            let index = nextIndex
            nextIndex += 1
            unsynced = true
            try guarded { () throws(SpoolError) in
                let interval = configuration.fsyncInterval
                if interval == 0 || Double(SpoolFiles.now(CLOCK_MONOTONIC) &- lastSync) >= interval * 1e9 {
                    try writeBuffer()
                    try sync()
                } else if buffer.count >= configuration.batchBytes {
                    try writeBuffer()
                }
            }
            return index
        }
    }

    /// Writes what is buffered and `fdatasync`s the segment being written (and the directory, if
    /// segments were created or deleted). Call it at least every `fsyncInterval` while the spool
    /// is open. Throws as `append`. Any thread.
    public func flush() throws(SpoolError) {
        try lock.withLock { () throws(SpoolError) in
            if let failure { throw failure }
            try guarded { () throws(SpoolError) in
                try writeBuffer()
                try sync()
            }
        }
    }

    /// The first index `sink` has not acknowledged (where its `read` starts). Throws
    /// `unknownSink`. Any thread.
    public func cursor(sink: String) throws(SpoolError) -> UInt64 {
        try lock.withLock { () throws(SpoolError) -> UInt64 in
            guard let cursor = cursors[sink] else { throw .unknownSink(sink) }
            return cursor
        }
    }

    /// Up to `max` records (none for `max` ≤ 0) for `sink`, in index order, from `from` (default: its cursor; an index
    /// below the cursor reads from the cursor). Reading does not advance the cursor: unacknowledged
    /// records are read again (redelivered) until `acknowledge`d; a sink with messages in flight
    /// passes the index after its last sent one as `from`. Indices lost to damage or the cap are
    /// skipped (they were reported as gaps). Records are checked by CRC when the spool is opened,
    /// not on every read. Throws `unknownSink` or a failed read. Any thread.
    public func read(sink: String, from: UInt64? = nil, max: Int) throws(SpoolError) -> [SpoolEntry] {
        try lock.withLock { () throws(SpoolError) -> [SpoolEntry] in
            if let failure { throw failure }
            guard let cursor = cursors[sink] else { throw .unknownSink(sink) }
            guard max > 0 else { return [] }
            try guarded { () throws(SpoolError) in try writeBuffer() }
            var start = Swift.max(cursor, from ?? cursor)
            var entries: [SpoolEntry] = []
            for segment in segments where segment.end > start && entries.count < max {
                let i = Int(start > segment.first ? start - segment.first : 0)
                let j = Swift.min(segment.offsets.count, i + (max - entries.count))
                let from = UInt64(segment.offsets[i])
                let to = j < segment.offsets.count ? UInt64(segment.offsets[j]) : segment.bytes
                let fd = try SpoolFiles.open(segment.path, O_RDONLY)
                defer { _ = systemClose(fd) }
                let bytes = try SpoolFiles.read(fd, count: Int(to - from), at: from, path: segment.path)
                guard bytes.count == Int(to - from) else { throw SpoolFiles.fail("read", segment.path, EIO) }
                bytes.withUnsafeBytes { raw in
                    for k in i..<j {
                        let offset = Int(UInt64(segment.offsets[k]) - from)
                        let length = Int(SpoolFormat.readLittleEndian(raw, at: offset + 4, as: UInt32.self))
                        let time = SpoolFormat.readLittleEndian(raw, at: offset + 8, as: UInt64.self)
                        let body = offset + SpoolFormat.headerBytes
                        entries.append(SpoolEntry(index: segment.first + UInt64(k), payload: Array(raw[body..<body + length]), appendTime: time))
                    }
                }
                start = segment.end
            }
            return entries
        }
    }

    /// Records that `sink` has received every record up to and including `index`: its cursor moves
    /// to `index + 1` and is persisted (atomic replace of `cursors/SINK`, fsynced) before this
    /// returns; segments every sink has now passed are deleted. An index below the cursor changes
    /// nothing. Each call costs a file replacement, so a sink acknowledges the highest of a batch.
    /// Throws `unknownSink`, `acknowledgeBeyondEnd` or a failed write. Any thread.
    public func acknowledge(sink: String, through index: UInt64) throws(SpoolError) {
        try lock.withLock { () throws(SpoolError) in
            if let failure { throw failure }
            guard let cursor = cursors[sink] else { throw .unknownSink(sink) }
            guard index < nextIndex else { throw .acknowledgeBeyondEnd(sink: sink, index: index, end: nextIndex) }
            guard index + 1 > cursor else { return }
            try persistCursor(sink, index + 1)
            cursors[sink] = index + 1
            try guarded { () throws(SpoolError) in try deleteAcknowledged() }
        }
    }

    /// The gaps recorded since the last call (cap drops, and the damage found at open), oldest
    /// first, and forgets them. Any thread.
    public func takeGaps() -> [SpoolGap] {
        lock.withLock {
            defer { gaps.removeAll() }
            return gaps
        }
    }

    /// The figures for metrics now. Any thread.
    public func figures() -> SpoolFigures {
        lock.withLock {
            var pending: [String: UInt64] = [:]
            for sink in sinks {
                let cursor = cursors[sink]!
                pending[sink] = segments.reduce(0) { sum, s in sum + (s.end > cursor ? s.end - Swift.max(cursor, s.first) : 0) }
            }
            return SpoolFigures(totalBytes: totalBytes, records: segments.reduce(0) { $0 + UInt64($1.offsets.count) },
                                oldestAppendTime: segments.first { !$0.offsets.isEmpty }?.firstTime,
                                pending: pending, dropped: dropped, nextIndex: nextIndex)
        }
    }

    /// Writes and syncs what is buffered and closes the segment; every later call throws `closed`.
    /// On a spool that had already failed it only closes the descriptor. Idempotent. Any thread.
    public func close() throws(SpoolError) {
        try lock.withLock { () throws(SpoolError) in
            if failure == .closed { return }
            let healthy = failure == nil
            defer {
                if activeFD >= 0 { _ = systemClose(activeFD); activeFD = -1 }
                failure = .closed
            }
            if healthy {
                try writeBuffer()
                try sync()
            }
        }
    }

    // MARK: under the lock

    /// Runs `body`; a failure there is kept, and every later call throws it.
    private func guarded(_ body: () throws(SpoolError) -> Void) throws(SpoolError) {
        do throws(SpoolError) { try body() } catch {
            failure = error
            throw error
        }
    }

    /// One `write(2)` of the buffered records; on failure the file is cut back to the last
    /// complete batch.
    private func writeBuffer() throws(SpoolError) {
        guard !buffer.isEmpty, activeFD >= 0 else { return }
        let path = segments[segments.count - 1].path
        do throws(SpoolError) {
            try SpoolFiles.writeAll(activeFD, buffer, path: path)
        } catch {
            _ = ftruncate(activeFD, off_t(activeWritten))
            throw error
        }
        activeWritten += UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    private func sync() throws(SpoolError) {
        if unsynced && activeFD >= 0 { try SpoolFiles.dataSync(activeFD, path: segments[segments.count - 1].path) }
        if directoryDirty { SpoolFiles.syncDirectory(directory) }
        unsynced = false
        directoryDirty = false
        lastSync = SpoolFiles.now(CLOCK_MONOTONIC)
    }

    /// Closes the segment being written (synced, so only the newest segment can ever be torn) and
    /// starts `NEXT.seg`.
    private func roll() throws(SpoolError) {
        if activeFD >= 0 {
            try writeBuffer()
            try sync()
            _ = systemClose(activeFD)
            activeFD = -1
        }
        let path = directory + "/" + SpoolFormat.segmentName(nextIndex)
        if let last = segments.last, last.path == path { // an empty segment kept from before
            totalBytes -= last.bytes
            segments.removeLast()
        }
        activeFD = try SpoolFiles.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND)
        activeWritten = 0
        directoryDirty = true
        segments.append(Segment(first: nextIndex, offsets: [], bytes: 0, firstTime: 0, path: path))
    }

    /// Deletes the oldest segments until `size` more bytes fit under `maxBytes`.
    private func makeRoom(_ size: UInt64) throws(SpoolError) {
        while totalBytes + size > configuration.maxBytes, let oldest = segments.first {
            if segments.count == 1 && activeFD >= 0 {
                buffer.removeAll(keepingCapacity: true)   // about to be deleted with its segment
                _ = systemClose(activeFD)
                activeFD = -1
            }
            for sink in sinks where cursors[sink]! < oldest.end {
                let first = Swift.max(cursors[sink]!, oldest.first)
                if first < oldest.end {
                    gaps.append(SpoolGap(sink: sink, first: first, last: oldest.end - 1, cause: .cap))
                    dropped[sink, default: 0] += oldest.end - first
                }
                try persistCursor(sink, oldest.end)
                cursors[sink] = oldest.end
            }
            try SpoolFiles.remove(oldest.path)
            directoryDirty = true
            totalBytes -= oldest.bytes
            segments.removeFirst()
        }
    }

    /// Deletes the segments, oldest first, that every sink has passed (never the one being written).
    private func deleteAcknowledged() throws(SpoolError) {
        let passed = sinks.map { cursors[$0]! }.min() ?? UInt64.max
        while let oldest = segments.first, oldest.end <= passed, !(segments.count == 1 && activeFD >= 0) {
            try SpoolFiles.remove(oldest.path)
            directoryDirty = true
            totalBytes -= oldest.bytes
            segments.removeFirst()
        }
    }

    private func persistCursor(_ sink: String, _ next: UInt64) throws(SpoolError) {
        try SpoolFiles.atomicWrite(SpoolFormat.cursorText(next: next), to: cursorDirectory + "/" + sink, directory: cursorDirectory)
    }
}

/// A pthread mutex on the heap (its address must not move). Any thread.
final class SpoolLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

@inline(__always) private func systemClose(_ fd: Int32) -> Int32 {
    #if canImport(Darwin)
    return Darwin.close(fd)
    #elseif canImport(Musl)
    return Musl.close(fd)
    #else
    return Glibc.close(fd)
    #endif
}
