import Foundation
import Testing
@testable import NetnetPipeline

/// Events seen by a trap's handler, with waiting (bounded) for them.
final class EventLog: @unchecked Sendable {
    private let condition = NSCondition()
    private var entries: [String] = []

    func append(_ entry: String) {
        condition.lock()
        entries.append(entry)
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `count` entries exist or `timeout` seconds pass; returns the entries.
    func wait(for count: Int, timeout: Double = 10) -> [String] {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while entries.count < count && condition.wait(until: deadline) {}
        return entries
    }
}

/// The trap is process-wide, so these run one at a time. In-process tests use SIGUSR1/SIGUSR2 sent
/// to the trap thread alone (`pthread_kill`), so no other thread of the test process can receive
/// them; the forced exit is replaced by a recorder. The real signals go to a child process.
@Suite(.serialized) struct SignalTrapTests {

    @Test func exitStatuses() {
        #expect(SignalTrap.forcedExitStatus(signal: SIGINT) == 130)
        #expect(SignalTrap.forcedExitStatus(signal: SIGTERM) == 143)
        #expect(SignalTrap.defaultStopSignals == [SIGINT, SIGTERM])
        #expect(SignalTrap.defaultHangupSignals == [SIGHUP])
    }

    @Test func eventsArriveOnTheTrapThreadAndTheSecondStopForcesExit() throws {
        let log = EventLog()
        let exits = EventLog()
        let holder = TrapHolder()
        let trap = try SignalTrap.install(
            stopSignals: [SIGUSR1], hangupSignals: [SIGUSR2], ignoreSIGPIPE: false,
            handler: { event in
                let onTrapThread = holder.trap?.thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
                log.append("\(event) on trap thread: \(onTrapThread)")
            },
            forceExit: { signal in exits.append("exit \(signal)") })
        holder.trap = trap
        defer { trap.remove() }
        let thread = try #require(trap.thread)

        #expect(!trap.stopRequested)
        pthread_kill(thread, SIGUSR2)
        #expect(log.wait(for: 1) == ["hangup(signal: \(SIGUSR2)) on trap thread: true"])
        pthread_kill(thread, SIGUSR2)
        #expect(log.wait(for: 2).last == "hangup(signal: \(SIGUSR2)) on trap thread: true")
        #expect(!trap.stopRequested, "hangup is not a stop")

        pthread_kill(thread, SIGUSR1)
        #expect(log.wait(for: 3).last == "stop(signal: \(SIGUSR1)) on trap thread: true")
        #expect(trap.stopRequested)
        #expect(exits.wait(for: 1, timeout: 0.2).isEmpty)

        pthread_kill(thread, SIGUSR1)
        #expect(exits.wait(for: 1) == ["exit \(SIGUSR1)"])
        #expect(log.wait(for: 4, timeout: 0.2).count == 3, "the second stop signal forces exit instead of calling the handler")

        // A hangup after the stop is still just reported.
        pthread_kill(thread, SIGUSR2)
        #expect(log.wait(for: 4).count == 4)
    }

    @Test func onlyOneTrapAtATimeAndRemoveAllowsAnother() throws {
        let first = try SignalTrap.install(stopSignals: [SIGUSR1], hangupSignals: [], ignoreSIGPIPE: false,
                                           handler: { _ in }, forceExit: { _ in })
        #expect(throws: SignalTrap.InstallError.alreadyInstalled) {
            _ = try SignalTrap.install(stopSignals: [SIGUSR2], hangupSignals: [], handler: { _ in })
        }
        first.remove()
        first.remove()  // idempotent
        let log = EventLog()
        let second = try SignalTrap.install(stopSignals: [SIGUSR2], hangupSignals: [], ignoreSIGPIPE: false,
                                            handler: { log.append("\($0)") }, forceExit: { _ in })
        defer { second.remove() }
        pthread_kill(try #require(second.thread), SIGUSR2)
        #expect(log.wait(for: 1) == ["stop(signal: \(SIGUSR2))"])
    }

    // MARK: Child process: the real signals, sent to the whole process with kill(2)

    /// Re-runs this test binary on `SignalTrapChild/childMain` with the child switch set, sends it
    /// `signals` (waiting for the handler's report after each but the last), and returns its exit.
    private func runChild(signals: [Int32], expectedReports: [String]) throws -> (status: Int32, reason: Process.TerminationReason, log: String) {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let events = dir.appendingPathComponent("events").path
        _ = FileManager.default.createFile(atPath: events, contents: nil)
        let output = dir.appendingPathComponent("child-output")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = ["--testing-library", "swift-testing", "--filter", "NetnetPipelineTests.SignalTrapChild/childMain"]
        var environment = ProcessInfo.processInfo.environment
        environment[SignalTrapChild.switchVariable] = events
        process.environment = environment
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }

        func readEvents() -> [String] {
            ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        func waitForEvents(_ count: Int, timeout: Double) -> Bool {
            let deadline = Date(timeIntervalSinceNow: timeout)
            while Date() < deadline {
                if readEvents().count >= count { return true }
                if !process.isRunning { return false }
                usleep(10_000)
            }
            return false
        }
        func childLog() -> String { (try? String(contentsOf: output, encoding: .utf8)).map { String($0.suffix(2000)) } ?? "" }

        guard waitForEvents(1, timeout: 120) else {
            Issue.record("child did not install its trap: \(readEvents()) \(childLog())")
            return (-1, .exit, childLog())
        }
        for (i, signal) in signals.enumerated() {
            kill(process.processIdentifier, signal)
            if i < expectedReports.count {
                guard waitForEvents(i + 2, timeout: 20) else {
                    Issue.record("child did not report signal \(signal): \(readEvents()) \(childLog())")
                    return (-1, .exit, childLog())
                }
            }
        }
        guard exited.wait(timeout: .now() + 20) == .success else {
            Issue.record("child did not exit after \(signals): \(readEvents())")
            return (-1, .exit, childLog())
        }
        #expect(readEvents() == ["installed"] + expectedReports, "\(childLog())")
        return (process.terminationStatus, process.terminationReason, childLog())
    }

    #if os(Linux)
    @Test func childSecondSIGINTExits130AfterHangupsAreReported() throws {
        let result = try runChild(signals: [SIGHUP, SIGHUP, SIGINT, SIGINT],
                                  expectedReports: ["hangup \(SIGHUP)", "hangup \(SIGHUP)", "stop \(SIGINT)"])
        #expect(result.reason == .exit && result.status == 130, "\(result.log)")
        #expect(result.log.contains("netnet: second SIGINT, exiting now"))
    }

    @Test func childSecondSIGTERMExits143() throws {
        let result = try runChild(signals: [SIGTERM, SIGTERM], expectedReports: ["stop \(SIGTERM)"])
        #expect(result.reason == .exit && result.status == 143, "\(result.log)")
    }

    @Test func childSIGTERMAfterSIGINTExits143() throws {
        let result = try runChild(signals: [SIGINT, SIGTERM], expectedReports: ["stop \(SIGINT)"])
        #expect(result.reason == .exit && result.status == 143, "\(result.log)")
    }
    #endif
}

/// Lets a handler reach its own trap.
final class TrapHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: SignalTrap?
    var trap: SignalTrap? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

/// The child side of the signal tests. In a normal test run (no switch variable) it does nothing.
/// In the child it installs the real trap (SIGINT/SIGTERM stop, SIGHUP reports) after the test
/// runner's threads exist, so signals sent to the process also exercise the forwarding to the trap
/// thread, appends each event to the file named by the variable, and waits to be ended by the
/// forced exit.
@Suite struct SignalTrapChild {
    static let switchVariable = "NETNET_SIGNALTRAP_CHILD_EVENTS"

    @Test func childMain() throws {
        guard let path = ProcessInfo.processInfo.environment[Self.switchVariable] else { return }
        @Sendable func report(_ line: String) {
            let fd = open(path, O_WRONLY | O_APPEND)
            guard fd >= 0 else { return }
            let bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            close(fd)
        }
        _ = try SignalTrap.install { event in
            switch event {
            case let .stop(signal): report("stop \(signal)")
            case let .hangup(signal): report("hangup \(signal)")
            }
        }
        report("installed")
        for _ in 0..<600 { usleep(100_000) }  // 60 s; the parent's second stop signal ends the process first
        report("timeout")
        _exit(99)
    }
}
