import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

let hasPromtool = FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool")

/// `promtool check metrics` on what `url` answers: whether it passed without a word, and what it said.
func promtoolCheck(_ url: String) throws -> (passed: Bool, said: String) {
    let check = Process()
    check.executableURL = URL(fileURLWithPath: "/bin/sh")
    check.arguments = ["-c", "curl -sf '\(url)' | promtool check metrics"]
    let output = Pipe()
    check.standardOutput = output
    check.standardError = output
    try check.run()
    let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    check.waitUntilExit()
    return (check.terminationStatus == 0 && said.isEmpty, said)
}

/// `netnet serve`'s `/metrics` as Prometheus' own checker reads it, and what the daemon's log
/// carries besides netnet's own lines: Hummingbird's and FFmpeg's messages (docs/operations.md).
@Suite("netnet serve metrics and logs", .serialized)
struct ServeMetricsTests {
    let scratch = Scratch()

    @Test("promtool check metrics passes on /metrics with a scene; Hummingbird and FFmpeg log through netnet's log",
          .enabled(if: hasFFmpeg && hasCurl && hasPromtool, "needs ffmpeg, curl and promtool (Debian's prometheus package)"))
    func promtoolChecksMetrics() throws {
        let clip = try ServeClips.make(in: scratch)
        let scene = scratch.file("door.scene")
        try "[line door]\npoints = 160,0 160,240\n[zone right]\npoints = 200,0 320,0 320,240 200,240\n"
            .write(toFile: scene, atomically: false, encoding: .utf8)
        let config = scratch.file("metrics.conf")
        // A stream at a closed port, so FFmpeg has something to say ("Connection refused").
        try """
            [global]
            listen = 127.0.0.1:0
            [stream clip]
            url = \(clip)
            scene = \(scene)
            [stream dead]
            url = tcp://127.0.0.1:9
            """.write(toFile: config, atomically: false, encoding: .utf8)
        // JOURNAL_STREAM names a stream that is not standard error: the lines stay plain.
        let serve = try ServeProcess(arguments: ["serve", "--config", config], scratch: scratch,
                                     environment: ["JOURNAL_STREAM": "1:2"])
        let port = try #require(serve.port(), "\(serve.stderr)")
        #expect(waitFor(30) { serve.stderr.contains("stream dead: [tcp @ ") }, "\(serve.stderr)")

        let url = "http://127.0.0.1:\(port)/metrics"
        let check = try promtoolCheck(url)
        #expect(check.passed, "promtool: \(check.said)")

        let metrics = try curl(["-f", url]).body
        for family in ["process_cpu_seconds_total counter", "process_open_fds gauge", "process_max_fds gauge",
                       "process_virtual_memory_bytes gauge", "process_resident_memory_bytes gauge",
                       "process_start_time_seconds gauge", "netnet_build_info gauge",
                       "netnet_line_crossings_total counter", "netnet_zone_entries_total counter"] {
            #expect(metrics.contains("# TYPE \(family)\n"), "\(family): \(metrics)")
        }
        #expect(metrics.contains(#"netnet_build_info{version=""#) && metrics.contains(#",ffmpeg=""#), "\(metrics)")
        let start = metrics.split(separator: "\n").first { $0.hasPrefix("process_start_time_seconds ") }
            .flatMap { Double($0.split(separator: " ")[1]) } ?? 0
        #expect(abs(start - Date().timeIntervalSince1970) < 600, "process_start_time_seconds \(start)")

        serve.signal(SIGTERM)
        #expect(serve.waitExit(20) == 0, "\(serve.stderr)")
        let lines = serve.stderr.split(separator: "\n")
        #expect(lines.allSatisfy { $0.hasPrefix("netnet: ") }, "not plain lines: \(serve.stderr)")
        #expect(serve.stderr.contains("netnet: info: netnet-http: Server started and listening on 127.0.0.1:\(port)"), "\(serve.stderr)")
        #expect(lines.contains { $0.hasPrefix("netnet: error: stream dead: [tcp @ ") && $0.contains("Connection refused") },
                "\(serve.stderr)")
    }
}
