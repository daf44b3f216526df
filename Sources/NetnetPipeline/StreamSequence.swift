import Foundation

/// One stream's record counter: every record of the stream — frame, event and status lines — takes
/// the next `seq` from it, so `(stream, seq)` names one record. With a `SequenceStore` behind it
/// the numbers never repeat across restarts, even after `kill -9`: a block of numbers is reserved
/// on disk before the first of them is handed out, so a crash skips the rest of the block (seqs
/// are unique and increasing, not gap-free). Any thread (one lock).
public final class StreamSequence: @unchecked Sendable {
    /// The stream id.
    public let stream: String
    private let lock = NSLock()
    private var next: Int
    private var reserved: Int
    private let reserve: ((Int) -> Bool)?
    private let block: Int

    /// A counter starting at `first`, kept in memory only (a restart starts at `first` again).
    public convenience init(stream: String, first: Int = 0) {
        self.init(stream: stream, first: first, block: 0, reserve: nil)
    }

    init(stream: String, first: Int, block: Int, reserve: ((Int) -> Bool)?) {
        self.stream = stream
        next = first
        reserved = first
        self.block = block
        self.reserve = reserve
    }

    /// The next `seq` (one more than the last handed out). Reserves the next block on disk first
    /// when the current one is used up; if that write fails, numbering goes on in memory (logged
    /// by the store) and a restart may then reuse numbers of this run. Any thread.
    public func take() -> Int {
        lock.lock(); defer { lock.unlock() }
        if let reserve, next >= reserved {
            if reserve(next + block) { reserved = next + block } else { reserved = next + 1 }
        }
        let seq = next
        next += 1
        return seq
    }

    /// The `seq` the next `take` returns. Any thread.
    public var peek: Int {
        lock.lock(); defer { lock.unlock() }
        return next
    }
}

/// Where the streams' `seq` counters are kept across restarts: `DIRECTORY/NAME.seq`, one per
/// stream, holding `netnet-seq 1 LIMIT` — every seq below `LIMIT` may have been used. The file is
/// replaced atomically (`AtomicFile`, fsynced) before a block of `block` numbers is handed out,
/// so a restart starts at `LIMIT` and never reuses one. `NAME` is the stream id with every byte
/// outside `A-Z a-z 0-9 . _ -` written `%XX`. The same stream id always gets the same counter
/// object (a stream restarted by a reload goes on counting). Any thread.
public final class SequenceStore: @unchecked Sendable {
    /// The folder of the counter files, or nil for counters in memory only.
    public let directory: String?
    /// Numbers reserved per write.
    public let block: Int
    private let lock = NSLock()
    private var counters: [String: StreamSequence] = [:]
    private let warn: @Sendable (String) -> Void

    /// A store in `directory` (created if missing; nil: memory only, every stream from 0).
    /// `warn` receives one line when a counter file is unreadable (that stream then starts after
    /// the largest number the file could hold, see `load`) or cannot be written. Throws
    /// `OutputError` when the folder cannot be created. Any thread.
    public init(directory: String?, block: Int = 4096, warn: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.directory = directory.map { $0.hasSuffix("/") && $0.count > 1 ? String($0.dropLast()) : $0 }
        self.block = max(1, block)
        self.warn = warn
        if let directory = self.directory {
            if mkdir(directory, 0o750) != 0 && errno != EEXIST {
                throw OutputError(operation: "create", path: directory, code: errno)
            }
        }
    }

    /// The counter of `stream`, created on first use from its file (or from 0). Any thread.
    public func sequence(for stream: String) -> StreamSequence {
        lock.lock(); defer { lock.unlock() }
        if let counter = counters[stream] { return counter }
        let counter: StreamSequence
        if let directory {
            let path = directory + "/" + Self.fileName(stream)
            let first = load(path)
            let warn = self.warn
            counter = StreamSequence(stream: stream, first: first, block: block) { limit in
                do {
                    try AtomicFile.write(Array("netnet-seq 1 \(limit)\n".utf8), to: path)
                    return true
                } catch {
                    warn("seq: cannot reserve numbers of stream \(stream): \(error)")
                    return false
                }
            }
        } else {
            counter = StreamSequence(stream: stream)
        }
        counters[stream] = counter
        return counter
    }

    /// The limit in the file, 0 when there is none. A file that exists but does not parse is
    /// warned about and the stream starts at 2^40: far above any block a real run reserved, so no
    /// number is reused (consumers see a jump).
    private func load(_ path: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        let fields = String(decoding: data, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        if fields.count == 3, fields[0] == "netnet-seq", fields[1] == "1", let limit = Int(fields[2]), limit >= 0 {
            return limit
        }
        warn("seq: \(path) is unreadable; the stream's seq goes on from 2^40 so no number is reused")
        return 1 << 40
    }

    /// The file name of a stream's counter (`%XX` for bytes outside `A-Z a-z 0-9 . _ -`, and for a
    /// leading `.`). Pure.
    public static func fileName(_ stream: String) -> String {
        var name = ""
        for (i, byte) in stream.utf8.enumerated() {
            let plain = (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
                || byte == 95 || byte == 45 || (byte == 46 && i > 0)
            name += plain ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }
        return name + ".seq"
    }
}
