import Foundation
import Testing
@testable import NetnetDaemon
#if canImport(Glibc)
import Glibc
#endif

/// Journal detection as systemd says.
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
}
