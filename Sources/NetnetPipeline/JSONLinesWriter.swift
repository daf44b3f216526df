#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call on an output, with the path and the C error: its description reads
/// `cannot write out.jsonl: No space left on device`. Value type; any thread.
public struct OutputError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being done: `open`, `write`, `close`.
    public var operation: String
    /// The path as given (`-` is shown as "standard output").
    public var path: String
    /// The `errno` value.
    public var code: Int32

    /// An error for `operation` on `path` with `errno` `code`.
    public init(operation: String, path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    /// `cannot <operation> <path>: <strerror>`.
    public var description: String {
        let name = path == "-" ? "standard output" : path
        return "cannot \(operation) \(name): \(String(cString: strerror(code)))"
    }
}

/// Writes JSON lines (docs/json-lines.md) to a file or, for the path `-`, to standard output. Each
/// line goes out in ONE `write(2)` call (continued only after EINTR or a short write), so a reader
/// never sees half a line from a healthy writer and a file always ends on a complete line even if
/// the process is killed between lines. If a write fails part-way through a line on a regular
/// file the writer opened (not standard output), the file is cut back to the end of the previous
/// line; this assumes no other process writes to that file. Errors (disk full, EPIPE) throw
/// `OutputError` naming the path; after an error the writer refuses further lines.
///
/// Lines carry the `seq` their `FrameRecorder` gave them. One thread at a time (it
/// may be created on one thread and handed to the writer thread).
///
/// EPIPE (the reader of a pipe went away) arrives as an error only when SIGPIPE is ignored, which
/// `SignalTrap.install` does; otherwise the kernel kills the process with SIGPIPE.
public final class JSONLinesWriter: @unchecked Sendable {
    /// The path as given; `-` means standard output.
    public let path: String
    /// Lines written so far, over all streams.
    public private(set) var linesWritten = 0
    private var fd: Int32
    private let ownsDescriptor: Bool
    /// End of the last complete line, for cutting back a partial one (regular files only).
    private var committedOffset: off_t?
    private var failed: OutputError?
    private var buffer: [UInt8] = []

    /// Opens `path` for writing, truncating it (or appending, if `append`), created with mode 0644;
    /// `-` writes to standard output (never closed by the writer). Throws `OutputError` if the file
    /// cannot be opened. Any thread.
    public init(path: String, append: Bool = false) throws {
        self.path = path
        if path == "-" {
            fd = STDOUT_FILENO
            ownsDescriptor = false
        } else {
            let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC)
            var descriptor: Int32
            repeat {
                descriptor = open(path, flags, 0o644)
            } while descriptor < 0 && errno == EINTR
            guard descriptor >= 0 else { throw OutputError(operation: "open", path: path, code: errno) }
            fd = descriptor
            ownsDescriptor = true
        }
        // Only files this writer opened are cut back after a partial line: standard output may be
        // shared with other writers, whose output must never be truncated.
        var info = stat()
        if ownsDescriptor && fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG {
            let offset = lseek(fd, 0, append ? SEEK_END : SEEK_CUR)
            committedOffset = offset >= 0 ? offset : nil
        }
        buffer.reserveCapacity(4096)
    }

    deinit {
        if ownsDescriptor && fd >= 0 { _ = systemClose(fd) }
    }

    /// Writes `record` as line `seq` of its stream (`FrameRecorder` numbers them). Throws
    /// `OutputError` on a failed write (and on every call after one). Allocates nothing in steady
    /// state (the line buffer is reused). Writer thread.
    public func write(_ record: FrameRecord, seq: Int) throws {
        buffer.removeAll(keepingCapacity: true)
        record.appendJSONLine(seq: seq, to: &buffer)
        try writeLine(buffer)
    }

    /// Writes one already-encoded line; `bytes` must end with a newline and hold no other. Same
    /// guarantees and errors as `write(_:)`. Writer thread.
    public func writeLine(_ bytes: [UInt8]) throws {
        precondition(bytes.last == UInt8(ascii: "\n"), "JSONLinesWriter.writeLine: a line must end with a newline")
        if let failed { throw failed }
        guard fd >= 0 else { throw OutputError(operation: "write", path: path, code: EBADF) }
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = systemWrite(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    let error = OutputError(operation: "write", path: path, code: code)
                    if done > 0, let committedOffset { _ = ftruncate(fd, committedOffset) }
                    failed = error
                    throw error
                }
                done += n
            }
        }
        if let offset = committedOffset { committedOffset = offset + off_t(bytes.count) }
        linesWritten += 1
    }

    /// Closes the file (standard output stays open). Throws `OutputError` if the kernel reports a
    /// late write error at close (NFS, quota). Idempotent. Writer thread.
    public func close() throws {
        guard fd >= 0 else { return }
        let descriptor = fd
        fd = -1
        if ownsDescriptor && systemClose(descriptor) != 0 && errno != EINTR {
            throw OutputError(operation: "close", path: path, code: errno)
        }
    }
}

// The C functions, named apart from this type's `write` and `close` methods.
@inline(__always) func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Darwin)
    return Darwin.write(fd, buffer, count)
    #elseif canImport(Musl)
    return Musl.write(fd, buffer, count)
    #else
    return Glibc.write(fd, buffer, count)
    #endif
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
