import Foundation
import Testing
@testable import NetnetPipeline

@Suite struct WallClockTests {
    private func foundation(_ milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    @Test func knownInstants() {
        #expect(WallClock.iso8601(nanoseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(WallClock.iso8601(nanoseconds: 1_795_579_081_123_456_789) == "2026-11-25T03:58:01.123Z")
        #expect(WallClock.iso8601(nanoseconds: 951_782_400_000_000_000) == "2000-02-29T00:00:00.000Z")
        #expect(WallClock.iso8601(nanoseconds: -1) == "1969-12-31T23:59:59.999Z")
        #expect(WallClock.iso8601(nanoseconds: Int64.max) == "2262-04-11T23:47:16.854Z")
        #expect(WallClock.iso8601(nanoseconds: Int64.min) == "1677-09-21T00:12:43.145Z")
    }

    @Test func matchesISO8601DateFormatter() {
        var rng = SystemRandomNumberGenerator()
        // Whole milliseconds (exact in a Date), over 1900…2200, plus day and year boundaries.
        var samples: [Int64] = (0..<3000).map { _ in Int64.random(in: -2_208_988_800_000 ... 7_258_118_400_000, using: &rng) }
        for year in [1900, 1969, 1970, 1999, 2000, 2024, 2100] {
            let days = Int64((year - 1970) * 365 + (year - 1969) / 4 - (year - 1901) / 100 + (year - 1601) / 400)
            samples += [-1, 0, 1, 86_399_999].map { days * 86_400_000 + $0 }
        }
        var mismatches: [String] = []
        for ms in samples {
            let mine = WallClock.iso8601(nanoseconds: ms * 1_000_000)
            let theirs = foundation(ms)
            if mine != theirs { mismatches.append("\(ms): \(mine) vs \(theirs)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test func subMillisecondsAreTruncated() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<1000 {
            let ns = Int64.random(in: -4_000_000_000_000_000_000 ... 4_000_000_000_000_000_000, using: &rng)
            let floorMs = ns >= 0 ? ns / 1_000_000 : (ns - 999_999) / 1_000_000
            #expect(WallClock.iso8601(nanoseconds: ns) == foundation(floorMs))
        }
    }

    @Test func appendsTheSameBytes() {
        var bytes: [UInt8] = Array("x".utf8)
        WallClock.appendISO8601(nanoseconds: 1_795_579_081_123_456_789, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "x2026-11-25T03:58:01.123Z")
    }

    @Test func clocksAdvance() {
        let wall = WallClock.nowNanoseconds()
        #expect(abs(Double(wall) / 1e9 - Date().timeIntervalSince1970) < 5)
        let a = WallClock.monotonicNanoseconds()
        let b = WallClock.monotonicNanoseconds()
        #expect(b >= a)
    }
}
