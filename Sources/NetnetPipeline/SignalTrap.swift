import Foundation

/// Turns SIGINT, SIGTERM and SIGHUP into calls on one thread the program owns, instead of
/// asynchronous signal handlers.
///
/// How: `install` blocks the signals in the calling thread (threads created afterwards inherit the
/// mask), starts a dedicated thread that waits for them with `sigwait(3)`, and calls the handler on
/// that thread with an `Event`. For threads that already existed (OpenBLAS starts its pool when the
/// library loads; Dispatch and the Swift runtime may have started some) it also installs a minimal
/// `sigaction` handler that only re-sends the signal to the trap thread with `pthread_kill`
/// (async-signal-safe), so a signal is never lost or fatal whichever thread the kernel picks.
///
/// - The first SIGINT or SIGTERM calls the handler with `.stop(signal:)`: the program should cancel
///   its rings, let the writer finish its current line and exit. `stopRequested` turns true.
/// - A second SIGINT or SIGTERM (either, after either) forces exit at once, from the trap thread,
///   with `_exit(128 + signal)`: status 130 after SIGINT, 143 after SIGTERM, with a note on standard
///   error. No cleanup runs; the JSON lines output still ends on a complete line because
///   `JSONLinesWriter` writes each line in one `write(2)`.
/// - SIGHUP calls the handler with `.hangup(signal:)` every time and never forces exit (the daemon
///   will reload its configuration on it).
/// - SIGPIPE is ignored (by default), so a closed pipe surfaces as an EPIPE write error naming the
///   output instead of killing the process.
///
/// Install it first thing in `main`, before starting any thread (stage threads, OpenBLAS work,
/// Foundation `Thread`s): threads started later inherit the blocked mask and never see the signals
/// themselves. Only one trap may be installed at a time. The handler runs on the trap thread; it
/// must be quick and thread-safe (cancel the rings, set a flag); it must not wait for the pipeline.
///
/// Tested: the event mapping, the forced exit (through an injected exit function) and `remove()` in
/// process with test signals (SIGUSR1/SIGUSR2) sent to the trap thread alone; the real SIGINT /
/// SIGTERM / SIGHUP behaviour, exit statuses 130 and 143 included, in a child process (the test
/// binary re-run on one test) signalled with `kill(2)` (Tests/NetnetPipelineTests/SignalTrapTests.swift).
public final class SignalTrap: @unchecked Sendable {
    /// What the trap thread reports. Value type; any thread.
    public enum Event: Sendable, Equatable {
        /// The first stop signal (SIGINT or SIGTERM by default): finish up and exit.
        case stop(signal: Int32)
        /// A report-only signal (SIGHUP by default): reload, reopen logs, …; may come many times.
        case hangup(signal: Int32)
    }

    /// Errors from `install`. Value type; any thread.
    public enum InstallError: Error, Equatable, Sendable, CustomStringConvertible {
        /// Another trap is installed; remove it first.
        case alreadyInstalled
        /// A system call failed (`sigaction`, `pthread_sigmask`) with this errno.
        case system(call: String, code: Int32)

        /// A readable message.
        public var description: String {
            switch self {
            case .alreadyInstalled: return "a SignalTrap is already installed"
            case let .system(call, code): return "\(call) failed: \(String(cString: strerror(code)))"
            }
        }
    }

    /// SIGINT and SIGTERM: the first one stops, the second forces exit.
    public static let defaultStopSignals: [Int32] = [SIGINT, SIGTERM]
    /// SIGHUP: reported each time, never forces exit.
    public static let defaultHangupSignals: [Int32] = [SIGHUP]

    /// The exit status a second stop signal forces: 128 + the signal number (130 for SIGINT, 143 for
    /// SIGTERM), as shells report a process killed by that signal. Pure; any thread.
    public static func forcedExitStatus(signal: Int32) -> Int32 { 128 + signal }

    /// The signals that stop (then force exit).
    public let stopSignals: [Int32]
    /// The signals reported as `.hangup`.
    public let hangupSignals: [Int32]

    private let handler: @Sendable (Event) -> Void
    private let forceExit: @Sendable (Int32) -> Void
    private let ignoreSIGPIPE: Bool
    private let lock = NSLock()
    private var stopCount = 0
    private var removing = false
    private var threadID: pthread_t?
    private var previousActions: [(Int32, sigaction)] = []
    private var previousSIGPIPE: sigaction?
    private let started = DispatchSemaphore(value: 0)
    private let ended = DispatchSemaphore(value: 0)

    /// Installs the trap (see the type's notes: call before starting other threads) and returns it.
    /// `handler` is called on the trap thread for each event. Throws `InstallError`. Main thread, at
    /// start-up.
    public static func install(stopSignals: [Int32] = defaultStopSignals,
                               hangupSignals: [Int32] = defaultHangupSignals,
                               ignoreSIGPIPE: Bool = true,
                               handler: @escaping @Sendable (Event) -> Void) throws -> SignalTrap {
        try install(stopSignals: stopSignals, hangupSignals: hangupSignals, ignoreSIGPIPE: ignoreSIGPIPE,
                    handler: handler, forceExit: SignalTrap.exitNow)
    }

    /// `install` with the forced exit replaced (tests observe it instead of exiting).
    static func install(stopSignals: [Int32], hangupSignals: [Int32], ignoreSIGPIPE: Bool,
                        handler: @escaping @Sendable (Event) -> Void,
                        forceExit: @escaping @Sendable (Int32) -> Void) throws -> SignalTrap {
        let trap = SignalTrap(stopSignals: stopSignals, hangupSignals: hangupSignals, ignoreSIGPIPE: ignoreSIGPIPE,
                              handler: handler, forceExit: forceExit)
        installLock.lock()
        defer { installLock.unlock() }
        guard !trapInstalled else { throw InstallError.alreadyInstalled }
        try trap.start()
        trapInstalled = true
        return trap
    }

    private init(stopSignals: [Int32], hangupSignals: [Int32], ignoreSIGPIPE: Bool,
                 handler: @escaping @Sendable (Event) -> Void, forceExit: @escaping @Sendable (Int32) -> Void) {
        precondition(!stopSignals.isEmpty || !hangupSignals.isEmpty, "SignalTrap needs at least one signal")
        precondition(Set(stopSignals).isDisjoint(with: hangupSignals), "a signal cannot both stop and hang up")
        self.stopSignals = stopSignals
        self.hangupSignals = hangupSignals
        self.ignoreSIGPIPE = ignoreSIGPIPE
        self.handler = handler
        self.forceExit = forceExit
    }

    /// Whether a stop signal has arrived. Any thread.
    public var stopRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopCount > 0
    }

    /// The trap thread, for sending it a signal directly (tests). Any thread.
    var thread: pthread_t? {
        lock.lock()
        defer { lock.unlock() }
        return threadID
    }

    /// Uninstalls: restores the previous signal dispositions (and SIGPIPE's), ends the trap thread
    /// and allows a new `install`. The signals stay blocked in the threads that blocked them (a
    /// thread's mask is its own). Idempotent. Any thread but the trap thread (not from the handler).
    public func remove() {
        guard teardown() else { return }
        SignalTrap.installLock.lock()
        SignalTrap.trapInstalled = false
        SignalTrap.installLock.unlock()
    }

    // MARK: Private

    private static let installLock = NSLock()
    nonisolated(unsafe) private static var trapInstalled = false

    private var signalSet: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in stopSignals + hangupSignals { sigaddset(&set, signal) }
        return set
    }

    private func start() throws {
        var set = signalSet
        let rc = pthread_sigmask(SIG_BLOCK, &set, nil)
        guard rc == 0 else { throw InstallError.system(call: "pthread_sigmask", code: rc) }

        let thread = Thread { [self] in run() }
        thread.name = "netnet-signals"
        thread.start()
        started.wait()

        // Threads that existed before the mask: forward whatever lands on them to the trap thread.
        signalForwardTarget = threadID
        for signal in stopSignals + hangupSignals {
            var action = sigaction()
            #if canImport(Darwin)
            action.__sigaction_u.__sa_handler = forwardSignal
            #else
            action.__sigaction_handler.sa_handler = forwardSignal
            #endif
            action.sa_flags = SA_RESTART
            sigfillset(&action.sa_mask)
            var old = sigaction()
            guard sigaction(signal, &action, &old) == 0 else {
                let code = errno
                _ = teardown()
                throw InstallError.system(call: "sigaction(\(signal))", code: code)
            }
            previousActions.append((signal, old))
        }
        if ignoreSIGPIPE {
            var action = sigaction()
            #if canImport(Darwin)
            action.__sigaction_u.__sa_handler = SIG_IGN
            #else
            action.__sigaction_handler.sa_handler = SIG_IGN
            #endif
            var old = sigaction()
            if sigaction(SIGPIPE, &action, &old) == 0 { previousSIGPIPE = old }
        }
    }

    /// Restores the dispositions and ends the trap thread; false if already done.
    private func teardown() -> Bool {
        lock.lock()
        guard !removing, let thread = threadID else {
            lock.unlock()
            return false
        }
        removing = true
        lock.unlock()
        for (signal, action) in previousActions {
            var old = action
            sigaction(signal, &old, nil)
        }
        previousActions.removeAll()
        if var old = previousSIGPIPE { sigaction(SIGPIPE, &old, nil) }
        previousSIGPIPE = nil
        // Wake the trap thread with a signal only it can receive; it sees `removing` and ends.
        pthread_kill(thread, (stopSignals + hangupSignals)[0])
        ended.wait()
        signalForwardTarget = nil
        return true
    }

    /// The trap thread's loop.
    private func run() {
        var set = signalSet
        pthread_sigmask(SIG_BLOCK, &set, nil)
        lock.lock()
        threadID = pthread_self()
        lock.unlock()
        started.signal()
        while true {
            var signal: Int32 = 0
            guard sigwait(&set, &signal) == 0 else { continue }
            lock.lock()
            if removing {
                lock.unlock()
                break
            }
            let isStop = stopSignals.contains(signal)
            if isStop { stopCount += 1 }
            let count = stopCount
            lock.unlock()
            if isStop && count >= 2 {
                forceExit(signal)
            } else if isStop {
                handler(.stop(signal: signal))
            } else {
                handler(.hangup(signal: signal))
            }
        }
        ended.signal()
    }

    /// The default forced exit: a note on standard error, then `_exit(128 + signal)`.
    private static let exitNow: @Sendable (Int32) -> Void = { signal in
        let name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
        let note = Array("\nnetnet: second \(name), exiting now\n".utf8)
        _ = note.withUnsafeBytes { Foundation.write(STDERR_FILENO, $0.baseAddress!, $0.count) }
        _exit(forcedExitStatus(signal: signal))
    }
}

/// The trap thread, read by the forwarding signal handler. Written only by `install` and `remove`,
/// while the handler is not installed (before `sigaction`, after restoring).
nonisolated(unsafe) private var signalForwardTarget: pthread_t?

/// The `sigaction` handler for threads that do not block the trapped signals: re-sends the signal
/// to the trap thread, which blocks it and picks it up with `sigwait`. Async-signal-safe
/// (`pthread_kill` only); errno is preserved.
private func forwardSignal(_ signal: Int32) {
    let saved = errno
    if let target = signalForwardTarget { pthread_kill(target, signal) }
    errno = saved
}
