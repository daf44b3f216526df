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
}
