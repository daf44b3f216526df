import Foundation
import NetnetMedia

/// What netnet is and was built with, for `netnet --version` and `netnet_build_info`. Any thread.
public enum NetnetBuild {
    /// netnet's version.
    public static let version = "0.1.0"

    /// The Swift compiler's major.minor version (known from 6.0 to 6.5; a newer compiler says 6.5).
    public static let swiftVersion: String = {
        #if compiler(>=6.5)
        return "6.5"
        #elseif compiler(>=6.4)
        return "6.4"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }()

    /// The FFmpeg libraries' version at run time (`av_version_info()`).
    public static var ffmpegVersion: String { FFmpegInfo.version }
}

/// The process's own figures for the `process_*` metrics, as Prometheus' client libraries name
/// them. A field is nil when it could not be read; its sample is then left out. Value type.
public struct ProcessFigures: Sendable, Equatable {
    /// When the process started, seconds since the Unix epoch.
    public var startTimeSeconds: Double?
    /// User plus system CPU time used so far, seconds (getrusage).
    public var cpuSeconds: Double?
    /// Resident memory, bytes (/proc/self/stat).
    public var residentMemoryBytes: UInt64?
    /// Virtual memory, bytes (/proc/self/stat).
    public var virtualMemoryBytes: UInt64?
    /// Descriptors open now (/proc/self/fd, without the one reading it).
    public var openDescriptors: Int?
    /// The soft `RLIMIT_NOFILE`.
    public var maxDescriptors: Int?

    /// Figures given field by field (tests). Pure.
    public init(startTimeSeconds: Double? = nil, cpuSeconds: Double? = nil, residentMemoryBytes: UInt64? = nil,
                virtualMemoryBytes: UInt64? = nil, openDescriptors: Int? = nil, maxDescriptors: Int? = nil) {
        self.startTimeSeconds = startTimeSeconds
        self.cpuSeconds = cpuSeconds
        self.residentMemoryBytes = residentMemoryBytes
        self.virtualMemoryBytes = virtualMemoryBytes
        self.openDescriptors = openDescriptors
        self.maxDescriptors = maxDescriptors
    }

    /// The process's start time, read once from /proc/self/stat on first use (the daemon asks at
    /// start, when descriptors are plentiful) and kept. Any thread.
    public static let startTime: Double? = {
        guard let fields = statFields(), fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        let perSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard perSecond > 0 else { return nil }
        // Boot time: the wall clock minus the time since boot (CLOCK_BOOTTIME, as the kernel's
        // start times count), which needs no /proc/stat.
        var wall = timespec(), boot = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let bootedAt = (Double(wall.tv_sec) + Double(wall.tv_nsec) / 1e9) - (Double(boot.tv_sec) + Double(boot.tv_nsec) / 1e9)
        return ((bootedAt + ticks / perSecond) * 1000).rounded() / 1000
    }()

    /// The figures now. CPU time and the descriptor limit come from system calls that open
    /// nothing. Memory and the descriptor count each open a file for the moment of reading, and
    /// only while more than `DescriptorSpares.openHeadroom` descriptor numbers below the limit are
    /// free (docs/operations.md, "File descriptors"): under a squeeze they are left out rather
    /// than take a number the runtime needs. Any thread.
    public static func sample() -> ProcessFigures {
        var figures = ProcessFigures(startTimeSeconds: startTime)
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
            figures.cpuSeconds = seconds(usage.ru_utime) + seconds(usage.ru_stime)
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            figures.maxDescriptors = limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
        }
        guard roomToOpen() else { return figures }
        if let fields = statFields(), fields.count > 21, let virtual = UInt64(fields[20]), let pages = UInt64(fields[21]) {
            figures.virtualMemoryBytes = virtual
            figures.residentMemoryBytes = pages * UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 1))
        }
        guard roomToOpen() else { return figures }
        figures.openDescriptors = countOpenDescriptors()
        return figures
    }

    /// Whether a short-lived open leaves the daemon's headroom free.
    private static func roomToOpen() -> Bool {
        DescriptorSpares.freeBelowLimit(upTo: DescriptorSpares.openHeadroom + 1) > DescriptorSpares.openHeadroom
    }

    /// /proc/self/stat's fields after the command name, from field 3 (`state`) on: field N of
    /// proc(5) is element N − 3.
    static func statFields() -> [Substring]? {
        let fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// Entries of /proc/self/fd, less the descriptor of the directory being read; nil if unreadable.
    static func countOpenDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0.first ?? 0 }
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return max(count - 1, 0)
    }
}
