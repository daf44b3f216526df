import Foundation
import Testing
@testable import NetnetDaemon

/// The descriptor reserve and the HTTP connection cap sized from RLIMIT_NOFILE.
@Suite("descriptor budget")
struct DescriptorBudgetTests {
    func config(streams: Int, file: Bool = true, stdout: Bool = false, connections: Int = 0) -> DaemonConfig {
        var c = DaemonConfig()
        c.streams = (0..<streams).map { StreamConfig(id: "s\($0)", url: "/x") }
        c.jsonLinesPath = file ? "/tmp/e.jsonl" : nil
        c.stdoutSink = stdout
        c.httpMaxConnections = connections
        return c
    }

    @Test func reserveIsBasePlusStreamsAndSinks() {
        #expect(DescriptorBudget.reserve(streams: 0, sinks: 0) == 64)
        #expect(DescriptorBudget.reserve(streams: 10, sinks: 2) == 64 + 40 + 4)
    }

    @Test func automaticCapTakesWhatIsLeftUpTo1024() throws {
        let roomy = try DescriptorBudget.make(config: config(streams: 2), limit: 65_536)
        #expect(roomy.connections == 1024 && roomy.reserve == 64 + 8 + 2)
        let tight = try DescriptorBudget.make(config: config(streams: 2), limit: 256)
        #expect(tight.connections == 256 - 74)
        // The largest configuration fits the unit's LimitNOFILE=4096.
        let largest = try DescriptorBudget.make(config: config(streams: DaemonConfig.maxStreams, stdout: true), limit: 4096)
        #expect(largest.connections == 1024 && largest.reserve + largest.connections == 2116)
    }

    @Test func tooLowALimitOrTooLargeACapIsRefused() throws {
        #expect(throws: DescriptorBudgetError.self) { try DescriptorBudget.make(config: config(streams: 2), limit: 74 + 15) }
        #expect(try DescriptorBudget.make(config: config(streams: 2), limit: 74 + 16).connections == 16)
        #expect(try DescriptorBudget.make(config: config(streams: 2, connections: 100), limit: 174).connections == 100)
        #expect(throws: DescriptorBudgetError.self) { try DescriptorBudget.make(config: config(streams: 2, connections: 101), limit: 174) }
    }

    /// The headroom check and the spares under a squeezed limit, in a child process: while the
    /// limit is squeezed the child has no free descriptor number for a moment, which would abort
    /// the test runner if its libdispatch monitor ticked then.
    @Test func headroomAndSparesUnderASqueezedLimit() async {
        await #expect(processExitsWith: .success) {
            DescriptorBudgetTests.squeeze()
        }
    }

    /// The child's body; records the first check that failed as an issue (the parent reports it)
    /// and exits 1.
    static func squeeze() {
        // The numbers open before the squeeze, so that a failure can name what another thread
        // of the child opened or closed meanwhile (readlink needs no descriptor of its own).
        func openNumbers() -> Set<Int32> { Set((0..<256).filter { fcntl($0, F_GETFD) != -1 }) }
        func describe(_ fd: Int32) -> String {
            "\(fd) \((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? "?")"
        }
        var before = Set<Int32>()
        func check(_ ok: Bool, _ what: String, line: Int = #line) {
            guard !ok else { return }
            // Recorded in the child, the issue reaches the parent's report with its text.
            let now = openNumbers()
            let opened = now.subtracting(before).sorted().map(describe), closed = before.subtracting(now).sorted()
            Issue.record("line \(line): \(what); open now and not before: \(opened), closed since: \(closed)")
            exit(1)
        }
        // The child's runtime opens and closes descriptors of its own as it starts (libdispatch's
        // timerfd and eventfd, the test harness's pipes); a spare opened while one of those is
        // open gets a number above the squeezed limit below. So: make dispatch's timer machinery
        // now (a timer that fires), then wait until the table has stayed the same for 200 ms
        // (for 5 s at most: a table that never settles leaves the checks to say so).
        let fired = DispatchSemaphore(value: 0)
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.setEventHandler { fired.signal() }
        timer.schedule(deadline: .now() + .milliseconds(1))
        timer.resume()
        fired.wait()
        timer.cancel()
        var table = openNumbers(), quiet = 0, rounds = 0
        while quiet < 4 && rounds < 100 {
            rounds += 1
            Thread.sleep(forTimeInterval: 0.05)
            let now = openNumbers()
            quiet = now == table ? quiet + 1 : 0
            table = now
        }
        let spares = DescriptorSpares(count: 2)
        check(spares.held == 2, "two spares at start")
        check(DescriptorSpares.freeBelowLimit(upTo: 3) == 3, "room at the full limit")
        var saved = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        before = openNumbers()
        // open takes the lowest free number: every number below x is in use.
        let x = open("/dev/null", O_RDONLY | O_CLOEXEC)
        check(x > 0, "open")
        close(x)
        var squeezed = saved
        squeezed.rlim_cur = rlim_t(x + 1)
        check(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &squeezed) == 0, "setrlimit")
        defer { setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved) }
        check(DescriptorSpares.freeBelowLimit(upTo: 3) == 1, "only x free below x + 1")
        check(!spares.mayOpen(), "no opening with one number free")
        spares.maintain()
        check(spares.held == 2, "one number free is not a famine")
        // Take the last number: the next open fails although only a few descriptors are open.
        let y = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let refused = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let code = errno
        spares.relieve()
        check(y == x, "the last number is x")
        check(refused == -1 && code == EMFILE, "EMFILE with no number free")
        check(spares.held == 1 && spares.releases == 1, "relieve releases one spare")
        check(DescriptorSpares.freeBelowLimit(upTo: 3) == 1, "the released spare's number is free")
        let z = open("/dev/null", O_RDONLY | O_CLOEXEC)
        check(z >= 0 && z < x, "the runtime can open again, below the limit")
        close(z)
        spares.relieve()
        check(spares.held == 1, "no release while a number is free")
        close(y)
        check(spares.mayOpen(), "two numbers free: the daemon may open")
        spares.maintain()
        check(spares.held == 1, "no spare taken back that would leave fewer than two free")
        check(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved) == 0, "restore")
        spares.maintain()
        check(spares.held == 2, "the spare taken back once there is room")
        exit(0)
    }
}
