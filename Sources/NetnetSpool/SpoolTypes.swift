#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a `Spool` writes and how much it keeps. Value type; any thread.
public struct SpoolConfiguration: Sendable, Equatable {
    /// A segment is closed and a new one begun when the next record would take it past this many
    /// bytes; a record (header included) may not be larger. Default 8 MiB; 64 B … 1 GiB.
    public var segmentBytes: UInt64
    /// The most bytes of segments the spool keeps: an append that would pass it first deletes the
    /// oldest whole segments, acknowledged or not, and reports the loss as `SpoolGap`s. Default
    /// 1 GiB; at least `segmentBytes`.
    public var maxBytes: UInt64
    /// Seconds between `fdatasync`s of the segment being written; `0` syncs after every record.
    /// Default 0.5. A power cut loses at most the records appended in the last interval, provided
    /// the owner calls `Spool.flush()` at least that often when appends pause (docs/spool.md).
    public var fsyncInterval: Double
    /// Buffered bytes that are written out (`write(2)`, without a sync) before the sync is due.
    /// Default 64 KiB.
    public var batchBytes: Int

    /// A configuration; every argument defaults as documented on its property.
    public init(segmentBytes: UInt64 = 8 << 20, maxBytes: UInt64 = 1 << 30, fsyncInterval: Double = 0.5,
                batchBytes: Int = 64 << 10) {
        self.segmentBytes = segmentBytes
        self.maxBytes = maxBytes
        self.fsyncInterval = fsyncInterval
        self.batchBytes = batchBytes
    }

    /// Why this configuration cannot be used, or nil. Pure.
    public var problem: String? {
        if segmentBytes < 64 || segmentBytes > 1 << 30 { return "segmentBytes \(segmentBytes) is outside 64 … 1 GiB" }
        if maxBytes < segmentBytes { return "maxBytes \(maxBytes) is below segmentBytes \(segmentBytes)" }
        if !(fsyncInterval >= 0 && fsyncInterval.isFinite) { return "fsyncInterval \(fsyncInterval) is not a finite number ≥ 0" }
        if batchBytes < 0 { return "batchBytes \(batchBytes) is negative" }
        return nil
    }
}

/// Records a sink will never receive because the spool deleted them before it acknowledged them:
/// indices `first...last` (both included), for `sink`. The owner emits a `gap` status line for
/// each. Value type; any thread.
public struct SpoolGap: Sendable, Equatable, CustomStringConvertible {
    /// The sink that lost them.
    public var sink: String
    /// The first lost record index.
    public var first: UInt64
    /// The last lost record index (included).
    public var last: UInt64
    /// Why: the cap (`maxBytes`) deleted a segment, or they were lost in a damaged segment (found
    /// when the spool was opened).
    public var cause: Cause

    /// Why records were lost.
    public enum Cause: Sendable, Equatable {
        /// `maxBytes` was reached and the oldest segment deleted.
        case cap
        /// A damaged or missing segment (see the open's `SpoolWarning`s).
        case damaged
    }

    /// A gap of `first...last` for `sink`.
    public init(sink: String, first: UInt64, last: UInt64, cause: Cause) {
        self.sink = sink
        self.first = first
        self.last = last
        self.cause = cause
    }

    /// How many records.
    public var count: UInt64 { last - first + 1 }

    /// `sink A lost records 10…19 (cap)`.
    public var description: String { "sink \(sink) lost records \(first)…\(last) (\(cause))" }
}

/// What opening a spool found wrong and repaired; none of these stops the spool. Value type; any
/// thread.
public enum SpoolWarning: Sendable, Equatable, CustomStringConvertible {
    /// The last segment ended in a partial or unchecksummable record (a crash or power cut during
    /// a write): `bytesCut` bytes from `offset` were cut off with `ftruncate`; the records before
    /// it are kept.
    case tornTail(segment: String, offset: UInt64, bytesCut: UInt64)
    /// A record inside a segment failed its check (`reason`): it and everything after it in that
    /// segment are skipped (not deleted); reading continues at the next segment. `index` is the
    /// index the bad record had.
    case corruptRecord(segment: String, offset: UInt64, index: UInt64, reason: RecordProblem)
    /// Record indices `first...last` are in no segment (lost in a corrupt segment, or a segment
    /// file missing); every sink that had not acknowledged them also gets a `SpoolGap`.
    case lostRecords(first: UInt64, last: UInt64)
    /// Two segments claim the same indices (the files were tampered with): the earlier segment's
    /// records from `index` on are ignored.
    case overlappingSegments(segment: String, index: UInt64)
    /// A cursor file could not be read or failed its check: that sink starts at the oldest record.
    case corruptCursor(sink: String, path: String)

    /// What was wrong with a record.
    public enum RecordProblem: Sendable, Equatable {
        /// The first byte is not the record magic, or the version is unknown.
        case badMagic
        /// The length runs past the end of the file or past the segment size.
        case badLength
        /// The CRC-32C does not match the header and payload.
        case checksumMismatch
    }

    /// One line for the log.
    public var description: String {
        switch self {
        case let .tornTail(segment, offset, cut): "spool: torn last record in \(segment) at byte \(offset): \(cut) bytes cut off"
        case let .corruptRecord(segment, offset, index, reason): "spool: corrupt record \(index) in \(segment) at byte \(offset) (\(reason)): the rest of the segment is skipped"
        case let .lostRecords(first, last): "spool: records \(first)…\(last) are lost"
        case let .overlappingSegments(segment, index): "spool: \(segment) overlaps the next segment from record \(index)"
        case let .corruptCursor(sink, path): "spool: cursor \(path) of sink \(sink) is unreadable: the sink starts at the oldest record"
        }
    }
}

/// A failed spool operation. Value type; any thread.
public enum SpoolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed: `operation` (`open`, `write`, `sync`, …) on `path` with `errno` `code`.
    case system(operation: String, path: String, code: Int32)
    /// The configuration is unusable (the text says why).
    case invalidConfiguration(String)
    /// A sink name must be 1–100 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
    case invalidSinkName(String)
    /// The sink was not registered when the spool was opened.
    case unknownSink(String)
    /// A record of `bytes` (header included) does not fit in a segment of `limit` bytes.
    case recordTooLarge(bytes: UInt64, limit: UInt64)
    /// `acknowledge` named an index that was never appended (`end` is the next index).
    case acknowledgeBeyondEnd(sink: String, index: UInt64, end: UInt64)
    /// The spool was closed. (After a failed write or sync the spool throws that first error on
    /// every call instead.)
    case closed

    /// One line: `spool: cannot write DIR/00….seg: No space left on device`.
    public var description: String {
        switch self {
        case let .system(operation, path, code): "spool: cannot \(operation) \(path): \(String(cString: strerror(code)))"
        case let .invalidConfiguration(why): "spool: \(why)"
        case let .invalidSinkName(name): "spool: invalid sink name \"\(name)\" (1-100 of A-Z a-z 0-9 . _ -, not starting with .)"
        case let .unknownSink(name): "spool: no sink named \"\(name)\""
        case let .recordTooLarge(bytes, limit): "spool: a record of \(bytes) bytes does not fit in a segment of \(limit)"
        case let .acknowledgeBeyondEnd(sink, index, end): "spool: sink \(sink) acknowledged record \(index), but the next record is \(end)"
        case .closed: "spool: closed"
        }
    }
}

/// One record as read back. Value type; any thread.
public struct SpoolEntry: Sendable, Equatable {
    /// Its index (global, increasing by one per append).
    public var index: UInt64
    /// The bytes appended.
    public var payload: [UInt8]
    /// When it was appended: nanoseconds since the Unix epoch (CLOCK_REALTIME).
    public var appendTime: UInt64
}

/// The spool's figures for metrics, taken at one instant. Value type; any thread.
public struct SpoolFigures: Sendable, Equatable {
    /// Bytes in segment files (buffered ones included).
    public var totalBytes: UInt64
    /// Records held.
    public var records: UInt64
    /// Append time of the oldest record held (ns since the Unix epoch), nil when empty.
    public var oldestAppendTime: UInt64?
    /// Per sink: records held that it has not acknowledged.
    public var pending: [String: UInt64]
    /// Per sink: records deleted by the cap before it acknowledged them, since open.
    public var dropped: [String: UInt64]
    /// The index the next append gets.
    public var nextIndex: UInt64
}
