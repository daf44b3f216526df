#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Clocks and the UTC timestamp format of the JSON lines. Stateless; every function may be called
/// from any thread.
public enum WallClock {
    /// Nanoseconds since 1970-01-01T00:00:00Z by the system's real-time clock (`CLOCK_REALTIME`;
    /// it can jump when the clock is set). Any thread.
    public static func nowNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Nanoseconds of a monotonic clock (`CLOCK_MONOTONIC`) from an arbitrary origin: for measuring
    /// durations and rates, never for timestamps. Any thread.
    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Length in bytes of every timestamp this type writes: `2026-11-25T03:58:01.123Z`.
    public static let iso8601Length = 24

    /// `nanoseconds` since the Unix epoch as ISO 8601 UTC with milliseconds, for example
    /// `2026-11-25T03:58:01.123Z`. Milliseconds are truncated toward the past (as a clock shows
    /// them), also before 1970. One allocation (the string). Any thread.
    public static func iso8601(nanoseconds: Int64) -> String {
        String(unsafeUninitializedCapacity: iso8601Length) { buffer in
            write(nanoseconds: nanoseconds, to: buffer.baseAddress!)
            return iso8601Length
        }
    }

    /// Appends the `iso8601(nanoseconds:)` text (24 ASCII bytes, no quotes) to `bytes`; allocates
    /// only if `bytes` must grow. Any thread.
    public static func appendISO8601(nanoseconds: Int64, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: iso8601Length) { buffer in
            write(nanoseconds: nanoseconds, to: buffer.baseAddress!)
            bytes.append(contentsOf: buffer)
        }
    }

    /// Writes the 24 bytes of the timestamp at `out`.
    private static func write(nanoseconds: Int64, to out: UnsafeMutablePointer<UInt8>) {
        // Floor divisions, so instants before 1970 land in the right second and millisecond.
        let milliseconds = floorDivide(nanoseconds, 1_000_000)
        let seconds = floorDivide(milliseconds, 1000)
        let millisecond = Int(milliseconds - seconds * 1000)
        let days = floorDivide(seconds, 86_400)
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civil(daysSinceEpoch: days)

        @inline(__always) func digits(_ value: Int, _ count: Int, at offset: Int) {
            var v = value
            for i in stride(from: count - 1, through: 0, by: -1) {
                out[offset + i] = UInt8(truncatingIfNeeded: 48 + v % 10)
                v /= 10
            }
        }
        // Int64 nanoseconds span 1677…2262, so the year always has four digits.
        digits(Int(year), 4, at: 0)
        out[4] = UInt8(ascii: "-")
        digits(month, 2, at: 5)
        out[7] = UInt8(ascii: "-")
        digits(day, 2, at: 8)
        out[10] = UInt8(ascii: "T")
        digits(secondOfDay / 3600, 2, at: 11)
        out[13] = UInt8(ascii: ":")
        digits(secondOfDay / 60 % 60, 2, at: 14)
        out[16] = UInt8(ascii: ":")
        digits(secondOfDay % 60, 2, at: 17)
        out[19] = UInt8(ascii: ".")
        digits(millisecond, 3, at: 20)
        out[23] = UInt8(ascii: "Z")
    }

    @inline(__always)
    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
    private static func civil(daysSinceEpoch: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097                                         // [0, 146096]
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365    // [0, 399]
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)                    // [0, 365]
        let mp = (5 * doy + 2) / 153                                         // [0, 11], March first
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
