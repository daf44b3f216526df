import Foundation
import Testing

/// Runs the built `netnet` binary (`swift build` puts it beside the test bundle).
struct NetnetBinary {
    static let url: URL = {
        let testBinary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("netnet")
    }()

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        var stderrLines: [Substring] { stderr.split(separator: "\n") }
    }

    /// Runs netnet with `arguments`; with a `launcher` (a program and its arguments), runs
    /// `launcher… netnet-path arguments…` instead, for wrappers that set up the process first.
    static func run(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) throws -> Result {
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw CLIError("\(url.path) not found: build it first (swift build)")
        }
        let process = Process()
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [url.path] + arguments
        } else {
            process.executableURL = url
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes before waiting so a chatty child cannot fill a pipe and block.
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a shell tool (ffmpeg) and fails the test if it fails.
func shell(_ command: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CLIError("command failed: \(command)") }
}

let hasFFmpeg = FileManager.default.isExecutableFile(atPath: "/usr/bin/ffmpeg")

final class Scratch {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "netnet-cli-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { "\(path)/\(name)" }
}

func jsonObject(_ line: Substring) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw CLIError("not a JSON object: \(line)")
    }
    return object
}

@Suite("netnet command line")
struct CLITests {
    let scratch = Scratch()

    func tinyModel(_ network: String = "netnet-vgg16-300", classes: String = "person,car") throws -> String {
        let path = scratch.file("\(network).safetensors")
        let result = try NetnetBinary.run(["model", "init", "--network", network, "--width", "0.125",
                                           "--classes", classes, "--seed", "5", "--head-init", "he", "--output", path])
        #expect(result.status == 0, "\(result.stderr)")
        return path
    }

    @Test("--help lists the subcommands")
    func help() throws {
        let result = try NetnetBinary.run(["--help"])
        #expect(result.status == 0)
        for word in ["detect", "model", "bench", "parity", "USAGE"] { #expect(result.stdout.contains(word), "help lacks \(word)") }
        let detect = try NetnetBinary.run(["detect", "--help"])
        for word in ["--model", "--threshold", "--dump-heads"] { #expect(detect.stdout.contains(word)) }
    }

    @Test("a CPU without AVX2 (NETNET_CPUINFO standing in for it) still gets help and --version; any other command is refused in one line")
    func olderCPU() throws {
        let cpuinfo = FileManager.default.temporaryDirectory.appendingPathComponent("netnet-cpuinfo-\(getpid())").path
        try "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx\n".write(toFile: cpuinfo, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: cpuinfo) }
        let environment = ["NETNET_CPUINFO": cpuinfo]
        let help = try NetnetBinary.run(["--help"], environment: environment)
        #expect(help.status == 0 && help.stdout.contains("USAGE"), "\(help.stderr)")
        for arguments in [["bench", "--help"], ["help", "bench"]] {
            let benchHelp = try NetnetBinary.run(arguments, environment: environment)
            #expect(benchHelp.status == 0 && benchHelp.stdout.contains("--frames"), "\(arguments): \(benchHelp.stderr)")
        }
        let version = try NetnetBinary.run(["--version"], environment: environment)
        #expect(version.status == 0 && !version.stdout.isEmpty, "\(version.stderr)")
        let run = try NetnetBinary.run(["bench", "--network", "ssd-vgg16-300", "--width", "0.125", "--num-classes", "2",
                                        "--frames", "1", "--warmup", "0"], environment: environment)
        let info = try NetnetBinary.run(["model", "info", "/nonexistent.safetensors"], environment: environment)
        #if arch(x86_64)
        // The default x86-64 build's kernels need AVX2 and FMA: refused before anything runs.
        for refused in [run, info] {
            #expect(refused.status == 1 && refused.stdout.isEmpty, "\(refused.stdout)\(refused.stderr)")
            #expect(refused.stderrLines.count == 1 && refused.stderr.contains("lacks avx2, fma"), "\(refused.stderr)")
        }
        #else
        #expect(run.status == 0, "\(run.stderr)")
        #endif
    }

    @Test("model init then model info --json reports the documented keys")
    func modelInfo() throws {
        let path = try tinyModel()
        let result = try NetnetBinary.run(["model", "info", path, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try jsonObject(Substring(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(object["network"] as? String == "netnet-vgg16-300")
        #expect((object["width"] as? NSNumber)?.doubleValue == 0.125)
        #expect((object["input_size"] as? NSNumber)?.intValue == 300)
        #expect(object["classes"] as? [String] == ["person", "car"])
        #expect(((object["parameters"] as? NSNumber)?.intValue ?? 0) > 100_000)
        #expect(((object["macs"] as? NSNumber)?.intValue ?? 0) > 100_000_000)
        // Keys in the documented order, nested objects in the frame lines' style (JSONText).
        let line = result.stdout
        let positions = ["file", "network", "width", "input_size", "classes", "parameters", "macs", "priors",
                         "modules", "normalisation", "description"].map { line.range(of: "\"\($0)\": ")?.lowerBound }
        #expect(!positions.contains(nil) && positions.map { $0! } == positions.map { $0! }.sorted(), "\(line)")
        #expect(line.contains(#""width": 0.125, "input_size": 300, "classes": ["person", "car"], "#), "\(line)")
        #expect(line.contains(#""modules": {"nnfm": true, "nem": true, "ntm": true, "gate": "channel", "placement": "nem13+24"}, "normalisation": {"order": "bgr", "mean": [104, 117, 123], "std": [1, 1, 1]}"#),
                "\(line)")
        #expect(line.hasSuffix("}\n") && line.split(separator: "\n").count == 1, "\(line)")
        let text = try NetnetBinary.run(["model", "info", path])
        #expect(text.stdout.contains("netnet-vgg16-300") && text.stdout.contains("MACs/frame"))
    }

    @Test("model init rejects bad arguments with a message")
    func initValidation() throws {
        let result = try NetnetBinary.run(["model", "init", "--network", "yolo", "--num-classes", "3", "--output", scratch.file("x")])
        #expect(result.status != 0)
        #expect(result.stderr.contains("unknown network 'yolo'"))
        let both = try NetnetBinary.run(["model", "init", "--network", "ssd-vgg16-300", "--output", scratch.file("x")])
        #expect(both.status != 0 && both.stderr.contains("--num-classes"))
    }

    @Test("detect prints one JSON line per image with the documented keys", .enabled(if: hasFFmpeg, "needs the ffmpeg CLI"))
    func detect() throws {
        let model = try tinyModel()
        let a = scratch.file("a.png"), b = scratch.file("b.jpg")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240 -frames:v 1 \(a)")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=161x97,format=rgb24 -frames:v 1 \(b)")
        let heads = scratch.file("heads")
        let result = try NetnetBinary.run(["detect", "--model", model, "--threshold", "0.01", "--dump-heads", heads, a, b])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        let first = try jsonObject(lines[0]), second = try jsonObject(lines[1])
        #expect(first["file"] as? String == a)
        #expect((first["width"] as? NSNumber)?.intValue == 320 && (first["height"] as? NSNumber)?.intValue == 240)
        #expect((second["width"] as? NSNumber)?.intValue == 161 && (second["height"] as? NSNumber)?.intValue == 97)
        let detections = try #require(first["detections"] as? [[String: Any]])
        for detection in detections {
            #expect(Set(detection.keys) == ["class", "label", "score", "box"])
            let box = try #require(detection["box"] as? [NSNumber]).map(\.doubleValue)
            #expect(box.count == 4 && box[0] >= 0 && box[2] <= 320 && box[1] >= 0 && box[3] <= 240 && box[0] <= box[2])
            #expect(["person", "car"].contains(detection["label"] as? String ?? ""))
        }
        for name in ["input.npy", "loc.npy", "conf.npy"] {
            #expect(FileManager.default.fileExists(atPath: "\(heads)/\(name)"), "missing \(name)")
        }
        let conf = try Data(contentsOf: URL(fileURLWithPath: "\(heads)/conf.npy"))
        #expect(conf.count > 8732 * 3 * 4 && conf.prefix(6) == Data([0x93] + Array("NUMPY".utf8)))
        #expect(String(decoding: conf.prefix(128), as: UTF8.self).contains("'shape': (8732, 3)"))
    }

    @Test("detect: a missing or non-image file gives one line naming it and exit 1; other images still run",
          .enabled(if: hasFFmpeg, "needs the ffmpeg CLI"))
    func detectBadInput() throws {
        let model = try tinyModel()
        let good = scratch.file("good.png")
        try shell("ffmpeg -loglevel error -f lavfi -i color=c=red:s=64x48 -frames:v 1 \(good)")
        let text = scratch.file("notes.jpg")
        try "not an image".write(toFile: text, atomically: true, encoding: .utf8)
        let missing = scratch.file("missing.png")
        let result = try NetnetBinary.run(["detect", "--model", model, missing, text, good])
        #expect(result.status == 1)
        #expect(result.stdout.split(separator: "\n").count == 1)
        let errors = result.stderrLines.filter { !$0.contains(": model ") }
        #expect(errors.count == 2, "\(result.stderr)")
        #expect(errors.contains { $0.contains(missing) })
        #expect(errors.contains { $0.contains(text) })
    }

    @Test("a broken model file: one line naming the file and the problem, exit 1")
    func brokenModel() throws {
        let path = scratch.file("broken.safetensors")
        try "garbage".write(toFile: path, atomically: true, encoding: .utf8)
        for arguments in [["model", "info", path], ["detect", "--model", path, "x.png"], ["bench", "--model", path, "--frames", "1"]] {
            let result = try NetnetBinary.run(arguments)
            #expect(result.status == 1, "\(arguments)")
            #expect(result.stderrLines.count == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(path))
        }
    }

    /// The fuzz corpus through the CLI: each mutated file gives exactly one line on standard
    /// error and a non-zero exit (or loads, for a harmless mutation), never a crash.
    @Test("fuzz corpus: every mutated model gives a one-line error and a non-zero exit")
    func fuzzCorpus() throws {
        let source = try tinyModel("ssd-vgg16-300", classes: "person")
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        var state: UInt64 = 99
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 17 }
        let headerEnd = 8 + (Int(original[0]) | Int(original[1]) << 8)
        var refused = 0
        for round in 0..<40 {
            var bytes = original
            switch round % 4 {
            case 0: bytes[Int(next() % UInt64(headerEnd))] ^= 0x5a
            case 1: bytes.removeLast(1 + Int(next() % UInt64(bytes.count - 1)))
            case 2: bytes[8 + Int(next() % UInt64(headerEnd - 8))] = Array("{}[]\",:9".utf8)[Int(next() % 8)]
            default: bytes.replaceSubrange(headerEnd..<(headerEnd + 4), with: [0, 0, 0xc0, 0x7f])
            }
            let path = scratch.file("fuzz-\(round).safetensors")
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            let result = try NetnetBinary.run(["model", "info", path])
            #expect(result.status == 0 || result.status == 1, "round \(round): status \(result.status) (crash?)")
            if result.status != 0 {
                refused += 1
                #expect(result.stderrLines.count == 1, "round \(round): \(result.stderr)")
                #expect(result.stderr.hasPrefix("netnet: \(path): "), "round \(round): \(result.stderr)")
            }
        }
        #expect(refused >= 30)
    }

    @Test("bench --json prints the documented keys")
    func bench() throws {
        let result = try NetnetBinary.run(["bench", "--network", "ssd-vgg16-300", "--width", "0.125", "--num-classes", "2",
                                           "--frames", "1", "--warmup", "0", "--json", "--layers"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try jsonObject(Substring(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        for key in ["median_ms", "fps", "gflops", "peak_rss_mb", "layers"] { #expect(object[key] != nil, "missing \(key)") }
        #expect(((object["median_ms"] as? NSNumber)?.doubleValue ?? 0) > 0)
        for key in ["conv", "winograd_layers"] { #expect(object[key] != nil, "missing \(key)") }
    }

    @Test("bench --tracker --json times the tracker at 10, 50 and 200 boxes, and tracks them")
    func benchTracker() throws {
        let result = try NetnetBinary.run(["bench", "--tracker", "--json", "--frames", "100", "--warmup", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try jsonObject(Substring(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        for boxes in [10, 50, 200] {
            let entry = object["boxes_\(boxes)"] as? [String: Any]
            #expect(((entry?["median_us"] as? NSNumber)?.doubleValue ?? 0) > 0, "boxes_\(boxes): \(result.stdout)")
            // Every walker is followed by one track (a few more while ones that left are kept).
            let tracks = (entry?["tracks"] as? Int) ?? 0
            #expect(tracks >= boxes && tracks <= boxes + boxes / 2 + 5, "boxes_\(boxes): \(tracks) tracks")
        }
    }

    @Test("bench --conv picks the kernel of the 3x3 stride-1 layers and rejects unknown names")
    func benchConv() throws {
        var counts: [String: Int] = [:]
        for conv in ["im2col", "winograd"] {
            let result = try NetnetBinary.run(["bench", "--network", "ssd-vgg16-300", "--width", "0.125", "--num-classes", "2",
                                               "--frames", "1", "--warmup", "0", "--json", "--conv", conv])
            #expect(result.status == 0, "\(result.stderr)")
            let object = try jsonObject(Substring(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(object["conv"] as? String == conv)
            counts[conv] = (object["winograd_layers"] as? NSNumber)?.intValue
        }
        #expect(counts["im2col"] == 0)
        #expect((counts["winograd"] ?? 0) > 0)
        let refused = try NetnetBinary.run(["bench", "--frames", "1", "--conv", "fft"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--conv"), "\(refused.stderr)")
    }

    @Test("bench --winograd-way forces a way, --compare-ways times all three, and both refuse what cannot run")
    func benchWinogradWays() throws {
        let base = ["bench", "--network", "netnet-vgg16-300", "--width", "0.125", "--num-classes", "2", "--conv", "winograd",
                    "--warmup", "1"]
        let forced = try NetnetBinary.run(base + ["--frames", "2", "--json", "--threads", "2", "--kernel-threads", "2",
                                                  "--winograd-way", "parts"])
        #expect(forced.status == 0, "\(forced.stderr)")
        let object = try jsonObject(Substring(forced.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let frames = object["winograd_way_frames"] as? [String: Any]
        #expect((frames?["parts"] as? NSNumber)?.intValue == 3 && (frames?["shared"] as? NSNumber)?.intValue == 0,
                "every frame, warm-up included, ran parts: \(forced.stdout)")
        let compared = try NetnetBinary.run(base + ["--frames", "2", "--threads", "2", "--kernel-threads", "2", "--compare-ways"])
        #expect(compared.status == 0, "\(compared.stderr)")
        for way in ["shared", "parts", "auto"] {
            #expect(compared.stdout.contains("\(way)") && compared.stdout.contains("median:"), "\(compared.stdout)")
        }
        let oneThread = try NetnetBinary.run(base + ["--frames", "1", "--threads", "1", "--compare-ways"])
        #expect(oneThread.status != 0 && oneThread.stderr.contains("two ways"), "\(oneThread.stderr)")
        let unknown = try NetnetBinary.run(base + ["--frames", "1", "--winograd-way", "both"])
        #expect(unknown.status != 0 && unknown.stderr.contains("--winograd-way"), "\(unknown.stderr)")
    }
}
