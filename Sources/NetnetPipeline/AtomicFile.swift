#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file replacement that a crash cannot tear: the bytes go to `PATH.tmp` in the same
/// directory, are flushed to the disk (`fsync`), and the temporary file is renamed over `path`,
/// then the directory is flushed so the rename itself survives a power cut. A reader, or the
/// program after `kill -9`, sees the old file or the new one, never a mix. Any thread; two
/// writers of one path must not overlap (each owner writes its own file).
public enum AtomicFile {
    /// Replaces `path` with `bytes` (mode 0644, or what the umask leaves). Throws `OutputError`
    /// naming the path on any failed step; the old file is then left as it was and the temporary
    /// one removed.
    public static func write(_ bytes: [UInt8], to path: String) throws(OutputError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OutputError(operation: "create", path: temporary, code: errno) }
        do {
            try writeAll(bytes, to: fd, path: temporary)
        } catch {
            close(fd); unlink(temporary)
            throw error
        }
        if fsync(fd) != 0 {
            let code = errno
            close(fd); unlink(temporary)
            throw OutputError(operation: "flush", path: temporary, code: code)
        }
        if close(fd) != 0 {
            let code = errno
            unlink(temporary)
            throw OutputError(operation: "close", path: temporary, code: code)
        }
        if rename(temporary, path) != 0 {
            let code = errno
            unlink(temporary)
            throw OutputError(operation: "replace", path: path, code: code)
        }
        let directory = directoryOf(path)
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            // The rename is done; a directory that cannot be flushed (some file systems) only
            // weakens the power-cut promise, so it is not an error.
            _ = fsync(dirfd)
            close(dirfd)
        }
    }

    /// Writes all of `bytes` to the open descriptor `fd` (continuing after EINTR and short
    /// writes); throws `OutputError` naming `path` on a failed write. The caller's thread.
    public static func writeAll(_ bytes: [UInt8], to fd: Int32, path: String) throws(OutputError) {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { systemWrite(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw OutputError(operation: "write", path: path, code: n < 0 ? errno : EIO) }
            written += n
        }
    }

    /// Whether a file could be created at `path` now: its directory exists and is writable, and
    /// `path` is not a directory. Throws `OutputError` naming the path when not (for checking
    /// an output before a long run that writes it at the end).
    public static func checkWritable(_ path: String) throws(OutputError) {
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { throw OutputError(operation: "write", path: path, code: EISDIR) }
        if access(directoryOf(path), W_OK) != 0 { throw OutputError(operation: "write", path: path, code: errno) }
    }

    /// The directory part of `path` ("." for a bare name).
    static func directoryOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
