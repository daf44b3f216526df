import CFFmpeg

/// A "stop now" switch for blocking FFmpeg I/O (open, read), safe to flip from any thread — e.g. a
/// SIGINT/SIGTERM handler's thread — while the reader thread is blocked inside FFmpeg.
///
/// One Interrupter may be shared by several inputs (`VideoSourceOptions.interrupter`); interrupting
/// it makes every blocked open/read of those inputs return soon (FFmpeg polls it at least every
/// 100 ms on network protocols) with a MediaError "URL: interrupted". It stays set until `reset()`.
///
/// Sendable: its only state is one 32-bit flag in memory it owns, read and written exclusively with
/// atomic operations (C `__atomic` builtins in the shim), so concurrent use cannot race.
public final class Interrupter: @unchecked Sendable {
    let flag: UnsafeMutablePointer<Int32>

    /// A switch that is not set. Any thread.
    public init() {
        flag = .allocate(capacity: 1)
        flag.initialize(to: 0)
    }

    deinit {
        flag.deallocate()
    }

    /// Sets the switch: blocked and future opens/reads of inputs using it fail with "interrupted". Any thread.
    public func interrupt() {
        netnet_atomic_store_i32(flag, 1)
    }

    /// Clears the switch (for a later, new open). Any thread.
    public func reset() {
        netnet_atomic_store_i32(flag, 0)
    }

    /// True once `interrupt()` was called (and `reset()` was not called since). Any thread.
    public var isInterrupted: Bool {
        netnet_atomic_load_i32(flag) != 0
    }
}

/// Owns the C state of one input's AVIOInterruptCB (netnet_io_guard): the shared Interrupter's flag
/// plus a deadline for the blocking call in progress. The format context stores a pointer to it,
/// so whoever owns that context (MediaInput) keeps this object alive longer.
///
/// The deadline is armed and disarmed by the thread that drives the input; the callback reads it
/// (atomically) from inside FFmpeg on that same thread.
final class IOGuard {
    /// Why the last blocking call was aborted by the callback.
    enum Reason { case none, interrupted, timedOut }

    let state: UnsafeMutablePointer<netnet_io_guard>
    let interrupter: Interrupter

    init(interrupter: Interrupter) {
        self.interrupter = interrupter
        state = .allocate(capacity: 1)
        state.initialize(to: netnet_io_guard(flag: interrupter.flag, deadline_us: 0, reason: 0))
    }

    deinit {
        state.deallocate()
    }

    /// Makes blocking calls fail once `seconds` have passed from now (no limit when nil or <= 0).
    func arm(seconds: Double?) {
        if let seconds, seconds > 0, seconds.isFinite {
            netnet_io_guard_arm(state, av_gettime_relative() + Int64(seconds * 1_000_000))
        } else {
            netnet_io_guard_arm(state, 0)
        }
    }

    /// Removes the deadline (the interrupt flag still works); keeps the last abort reason.
    func disarm() {
        netnet_io_guard_disarm(state)
    }

    /// Why the callback aborted a call (sticky: the first reason stays; none when it never did).
    /// An aborted read leaves FFmpeg's byte reader in error, so later failures have the same cause.
    var reason: Reason {
        if interrupter.isInterrupted { return .interrupted }
        switch netnet_io_guard_reason(state) {
        case 1: return .interrupted
        case 2: return .timedOut
        default: return .none
        }
    }
}

@available(*, unavailable, message: "IOGuard's deadline belongs to the thread driving its input")
extension IOGuard: Sendable {}
