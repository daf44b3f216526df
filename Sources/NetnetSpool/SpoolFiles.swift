#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The system calls the spool makes, each turning a failure into `SpoolError.system` naming the
/// path (EINTR retried). Any thread.
enum SpoolFiles {
    static func fail(_ operation: String, _ path: String, _ code: Int32 = errno) -> SpoolError {
        .system(operation: operation, path: path, code: code)
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(SpoolError) -> Int32 {
        while true {
            #if canImport(Darwin)
            let fd = Darwin.open(path, flags | O_CLOEXEC, mode)
            #elseif canImport(Musl)
            let fd = Musl.open(path, flags | O_CLOEXEC, mode)
            #else
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            #endif
            if fd >= 0 { return fd }
            if errno != EINTR { throw fail("open", path) }
        }
    }

    /// Writes all of `bytes` at the descriptor's position.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SpoolError) {
        let code: Int32 = bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                #if canImport(Darwin)
                let n = Darwin.write(fd, raw.baseAddress! + done, raw.count - done)
                #elseif canImport(Musl)
                let n = Musl.write(fd, raw.baseAddress! + done, raw.count - done)
                #else
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                #endif
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return n < 0 ? errno : EIO }
                done += n
            }
            return 0
        }
        if code != 0 { throw fail("write", path, code) }
    }

    /// Reads `count` bytes at `offset` (fewer only at the end of the file).
    static func read(_ fd: Int32, count: Int, at offset: UInt64, path: String) throws(SpoolError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        var failure: Int32 = 0
        bytes.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                if n < 0 { failure = errno; return }
                if n == 0 { return }
                done += n
            }
        }
        if failure != 0 { throw fail("read", path, failure) }
        if done < count { bytes.removeSubrange(done...) }
        return bytes
    }

    /// The whole file at `path`.
    static func readFile(_ path: String) throws(SpoolError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw fail("stat", path) }
        return try read(fd, count: Int(info.st_size), at: 0, path: path)
    }

    static func dataSync(_ fd: Int32, path: String) throws(SpoolError) {
        #if canImport(Darwin)
        let rc = fsync(fd)
        #else
        let rc = fdatasync(fd)
        #endif
        if rc != 0 { throw fail("sync", path) }
    }

    /// Flushes a directory's entries (created, renamed, deleted files) to the disk; file systems
    /// that cannot are let be.
    static func syncDirectory(_ path: String) {
        guard let fd = try? open(path, O_RDONLY | O_DIRECTORY) else { return }
        _ = fsync(fd)
        close(fd)
    }

    static func makeDirectory(_ path: String) throws(SpoolError) {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw fail("create", path) }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { throw fail("create", path, ENOTDIR) }
    }

    /// The names in a directory (not `.` and `..`).
    static func list(_ path: String) throws(SpoolError) -> [String] {
        guard let dir = opendir(path) else { throw fail("list", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func remove(_ path: String) throws(SpoolError) {
        if unlink(path) != 0 && errno != ENOENT { throw fail("delete", path) }
    }

    /// Replaces `path` with `bytes` so that a crash or power cut leaves the old file or the new
    /// one: `PATH.tmp`, fsync, rename, fsync of the directory (as NetnetPipeline's AtomicFile,
    /// which this module cannot import).
    static func atomicWrite(_ bytes: [UInt8], to path: String, directory: String) throws(SpoolError) {
        let temporary = path + ".tmp"
        let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        do throws(SpoolError) {
            try writeAll(fd, bytes, path: temporary)
            if fsync(fd) != 0 { throw fail("sync", temporary) }
        } catch {
            close(fd); unlink(temporary)
            throw error
        }
        if close(fd) != 0 { let code = errno; unlink(temporary); throw fail("close", temporary, code) }
        if rename(temporary, path) != 0 { let code = errno; unlink(temporary); throw fail("replace", path, code) }
        syncDirectory(directory)
    }

    /// Nanoseconds on `clock`.
    static func now(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
