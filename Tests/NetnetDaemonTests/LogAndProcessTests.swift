import Foundation
import Testing
@testable import NetnetDaemon
import NetnetMedia
#if canImport(Glibc)
import Glibc
#endif

/// Journal detection as systemd says, the `process_*` figures and `netnet_build_info`.
@Suite("daemon log and process metrics")
struct LogAndProcessTests {
    @Test("the journal format only when JOURNAL_STREAM's DEV:INODE is standard error's")
    func journalDetection() throws {
        let path = NSTemporaryDirectory() + "netnet-journal-\(UUID().uuidString)"
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        var info = stat()
        try #require(fstat(fd, &info) == 0)
        let matching = "\(info.st_dev):\(info.st_ino)"
        #expect(DaemonLog.isJournal(environment: ["JOURNAL_STREAM": matching], descriptor: fd))
        for value in ["\(info.st_dev):\(info.st_ino + 1)", "\(info.st_dev + 1):\(info.st_ino)", "", "garbage",
                      "\(info.st_dev)", "\(info.st_dev):\(info.st_ino):0", ":\(info.st_ino)"] {
            #expect(!DaemonLog.isJournal(environment: ["JOURNAL_STREAM": value], descriptor: fd), "\(value)")
        }
        #expect(!DaemonLog.isJournal(environment: [:], descriptor: fd))
        #expect(!DaemonLog.isJournal(environment: ["JOURNAL_STREAM": matching], descriptor: 987_654))   // not open
    }

    @Test("process figures are read, and the process_* and build_info families follow Prometheus' names")
    func processFigures() throws {
        let figures = ProcessFigures.sample()
        let start = try #require(figures.startTimeSeconds)
        #expect(start <= Date().timeIntervalSince1970 + 1 && start > Date().timeIntervalSince1970 - 86_400 * 30)
        #expect((figures.cpuSeconds ?? 0) > 0)
        #expect((figures.residentMemoryBytes ?? 0) > 1 << 20)
        #expect((figures.virtualMemoryBytes ?? 0) >= (figures.residentMemoryBytes ?? 0))
        let open = try #require(figures.openDescriptors)
        #expect(open >= 3 && open <= (figures.maxDescriptors ?? 0))

        let text = MetricsText.render(streams: [], sinkDrops: [], uptimeSeconds: 1, reloads: 0, reloadFailures: 0,
                                      process: ProcessFigures(startTimeSeconds: 1_764_000_000.5, cpuSeconds: 2.25,
                                                              residentMemoryBytes: 4096, virtualMemoryBytes: 8192,
                                                              openDescriptors: 12, maxDescriptors: 4096))
        for expected in ["# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 2.25\n",
                         "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 4096\n",
                         "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes 8192\n",
                         "# TYPE process_open_fds gauge\nprocess_open_fds 12\n",
                         "# TYPE process_max_fds gauge\nprocess_max_fds 4096\n",
                         "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1764000000.5\n",
                         "netnet_build_info{version=\"\(NetnetBuild.version)\",swift=\"\(NetnetBuild.swiftVersion)\",ffmpeg=\"\(FFmpegInfo.version)\"} 1\n"] {
            #expect(text.contains(expected), "\(expected)")
        }
        // A figure that could not be read leaves its family out; nil leaves out all of them.
        let partial = MetricsText.render(streams: [], sinkDrops: [], uptimeSeconds: 1, reloads: 0, reloadFailures: 0,
                                         process: ProcessFigures(cpuSeconds: 1))
        #expect(partial.contains("process_cpu_seconds_total 1.0\n") && !partial.contains("process_open_fds"))
        let none = MetricsText.render(streams: [], sinkDrops: [], uptimeSeconds: 1, reloads: 0, reloadFailures: 0, process: nil)
        #expect(!none.contains("process_") && none.contains("netnet_build_info{"))
        #expect(!FFmpegInfo.version.isEmpty && NetnetBuild.swiftVersion.hasPrefix("6."))
    }
}
