import Foundation
import Testing
import NetnetEngine
@testable import NetnetPipeline

/// The package's root folder (this file is Tests/NetnetPipelineTests/PipelineTestSupport.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A fresh, empty temporary directory for one test.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("netnet-pipeline-tests-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A record with typical values.
func sampleRecord(stream: String = "cam-1", frame: Int = 42, detections: Int = 2, inferred: Bool = true) -> FrameRecord {
    FrameRecord(stream: stream, frame: frame, pts: 1.4,
                timeNanoseconds: 1_795_579_081_123_456_789,  // 2026-11-25T03:58:01.123Z
                width: 768, height: 576, dropped: 3,
                inferenceMilliseconds: inferred ? 35.41234 : nil, inferred: inferred,
                detections: (0..<detections).map { i in
                    Detection(classIndex: i, label: i == 0 ? "person" : "car", score: 0.912341 - Float(i) * 0.1,
                              box: [10.125 + Float(i), 20.5, 110.0, 220.994])
                })
}

/// Runs a program and returns its exit status and combined output.
func runProgram(_ executable: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The first executable named `name` on PATH, if any.
func findOnPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// Re-runs this test binary on the one swift-testing test `filter` (`Module.Suite/test`) with
/// `environment` added, waits at most `timeout` seconds, and returns its exit status and output.
/// The child-side test checks the environment and does nothing in a normal run.
func runTestInChild(_ filter: String, environment: [String: String], timeout: Double = 120) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    process.arguments = ["--testing-library", "swift-testing", "--filter", filter]
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("netnet-child-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: log) }
    let handle = try FileHandle(forWritingTo: log)
    process.standardOutput = handle
    process.standardError = handle
    let exited = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in exited.signal() }
    try process.run()
    if exited.wait(timeout: .now() + timeout) == .timedOut {
        kill(process.processIdentifier, SIGKILL)
        _ = exited.wait(timeout: .now() + 5)
        return (-1, "child timed out after \(timeout) s")
    }
    let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    return (process.terminationStatus, String(output.suffix(3000)))
}
