/// Reconnect delays: exponential backoff with full jitter. Attempt `n` (0 for the first retry
/// after a failure) waits a uniformly random time in [0, min(cap, base · 2ⁿ)), so a camera that
/// comes back is reconnected within that bound and many cameras failing together do not retry in
/// lock-step. Pure; value type; any thread.
public struct Backoff: Sendable, Equatable {
    /// Bound of the first delay, seconds (> 0).
    public var base: Double
    /// Largest bound, seconds (>= base).
    public var cap: Double

    /// A backoff from `base` doubling up to `cap`. Any thread.
    public init(base: Double, cap: Double) {
        precondition(base > 0 && cap >= base, "Backoff: need 0 < base <= cap")
        self.base = base
        self.cap = cap
    }

    /// The upper bound of the delay before retry `attempt` (0-based): min(cap, base · 2^attempt). Any thread.
    public func bound(attempt: Int) -> Double {
        let exponent = min(max(attempt, 0), 62)
        let grown = base * Double(UInt64(1) << UInt64(exponent))
        return min(cap, grown)
    }

    /// The delay before retry `attempt`, given `unit`, a random number in [0, 1) (values outside
    /// are clamped). Any thread.
    public func delay(attempt: Int, unit: Double) -> Double {
        bound(attempt: attempt) * min(max(unit, 0), 1)
    }
}
