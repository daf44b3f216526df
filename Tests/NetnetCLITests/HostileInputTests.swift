import Foundation
import Testing

/// A child process started with posix_spawn, so that the test can signal it, kill it after a
/// deadline (a hang fails the test instead of blocking it) and read its own resource usage
/// (`wait4`: this child's peak RSS, not the largest of all children).
struct Child {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String

    struct Exit {
        /// The exit status, nil when a signal ended it (or the deadline passed).
        let status: Int32?
        /// The signal that ended it, if any.
        let signal: Int32?
        /// True when the test killed it at the deadline.
        let timedOut: Bool
        /// Peak resident memory in KiB (ru_maxrss).
        let maxRSSKiB: Int
        let stdout: String
        let stderr: String
    }

    /// Starts `arguments[0]` (a path) with the rest as arguments; standard input from `stdin`,
    /// standard output and error into files.
    static func spawn(_ arguments: [String], stdin: String = "/dev/null", in scratch: Scratch) throws -> Child {
        let tag = UUID().uuidString
        let out = scratch.file("child-\(tag).out"), err = scratch.file("child-\(tag).err")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default dispositions and an empty mask for the stop signals, whatever the test runner has.
        var defaults = sigset_t(), empty = sigset_t()
        sigemptyset(&defaults); sigaddset(&defaults, SIGINT); sigaddset(&defaults, SIGTERM); sigaddset(&defaults, SIGPIPE)
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard result == 0 else { throw CLIError("posix_spawn \(arguments[0]): \(String(cString: strerror(result)))") }
        return Child(pid: pid, stdoutPath: out, stderrPath: err)
    }

    /// Starts the built netnet with `arguments`.
    static func netnet(_ arguments: [String], stdin: String = "/dev/null", in scratch: Scratch) throws -> Child {
        try spawn([NetnetBinary.url.path] + arguments, stdin: stdin, in: scratch)
    }

    func signal(_ number: Int32) { kill(pid, number) }

    /// The child's standard output so far.
    var output: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    /// Waits for the child to end; kills it (SIGKILL) once `timeout` seconds have passed.
    func wait(timeout: Double) -> Exit {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var usage = rusage()
        var timedOut = false
        while true {
            let got = wait4(pid, &status, WNOHANG, &usage)
            if got == pid { break }
            if got < 0 && errno != EINTR { break }
            if Date() > deadline {
                timedOut = true
                kill(pid, SIGKILL)
                _ = wait4(pid, &status, 0, &usage)
                break
            }
            usleep(20_000)
        }
        let signalled = status & 0x7f
        return Exit(status: signalled == 0 ? (status >> 8) & 0xff : nil, signal: signalled == 0 ? nil : signalled,
                    timedOut: timedOut, maxRSSKiB: Int(usage.ru_maxrss), stdout: output,
                    stderr: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")
    }
}

/// Waits until `path` holds at least `count` lines (or `seconds` pass).
func waitForLines(_ path: String, _ count: Int, seconds: Double = 120) {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        if text.split(separator: "\n").count >= count { return }
        Thread.sleep(forTimeInterval: 0.05)
    }
}

/// A TCP listener on 127.0.0.1 that accepts connections and never sends a byte.
final class SilentServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var accepted: [Int32] = []
    private var closed = false

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let bound = onLoopback(port: 0) { bind(fd, $0, $1) }
        guard bound == 0, listen(fd, 8) == 0 else { throw CLIError("cannot listen on 127.0.0.1") }
        port = boundPort(fd)
        listener = fd
        Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                lock.lock(); accepted.append(client); let stop = closed; lock.unlock()
                if stop { return }
            }
        }.start()
    }

    deinit {
        lock.lock(); closed = true; let clients = accepted; lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for client in clients { close(client) }
    }
}

/// Issue #25, annotate/media/model half: hostile input and exhausted resources never crash, hang,
/// or lose data without a word.
@Suite("hostile input", .serialized, .enabled(if: hasFFmpeg, "needs the ffmpeg CLI"))
struct HostileInputTests {
    let scratch = Scratch()

    func model() throws -> String {
        let path = scratch.file("tiny.safetensors")
        if FileManager.default.fileExists(atPath: path) { return path }
        let result = try NetnetBinary.run(["model", "init", "--network", "ssd-vgg16-300", "--width", "0.125", "--classes", "person,car",
                                           "--output", path])
        #expect(result.status == 0, "\(result.stderr)")
        return path
    }

    // MARK: item 1: a pipe is not a live camera

    @Test("ffmpeg -i vtest.avi -c copy -f matroska - | netnet annotate - --json - writes all 795 lines (block on pipes)",
          .enabled(if: hasVtest, "samples/vtest.avi is missing: bash scripts/fetch-vtest.sh"))
    func pipeBlocks() throws {
        // Exactly the issue's command, with the bundled default model.
        let out = scratch.file("pipe.jsonl"), err = scratch.file("pipe.err")
        try shell("set -e; ffmpeg -loglevel error -i '\(vtestPath)' -c copy -f matroska - | '\(NetnetBinary.url.path)' annotate - --json - > '\(out)' 2> '\(err)'")
        let lines = try jsonLines(out)
        let errors = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(lines.count == 795, "\(lines.count) lines; \(errors)")
        #expect(lines.allSatisfy { ($0["dropped"] as? Int) == 0 })
    }

    // MARK: item 2: a second signal leaves a playable video

    @Test("a second SIGINT/SIGTERM exits at once and the MP4 written so far plays", arguments: [SIGINT, SIGTERM])
    func secondSignal(_ number: Int32) throws {
        let clip = scratch.file("long-\(number).mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=60 -f lavfi -i sine=frequency=440:sample_rate=48000:duration=60 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest \(clip)")
        let out = scratch.file("abrupt-\(number).mp4"), json = scratch.file("abrupt-\(number).jsonl")
        let child = try Child.netnet(["annotate", clip, "--model", try model(), "--output", out, "--json", json, "--quiet"], in: scratch)
        waitForLines(json, 100)   // 4 s of video: several fragments are out
        child.signal(number)
        usleep(50_000)
        child.signal(number)
        let exit = child.wait(timeout: 30)
        #expect(!exit.timedOut && exit.status == 128 + number, "status \(String(describing: exit.status)), \(exit.stderr)")
        #expect(exit.stderr.contains("exiting now"), "the second signal should force the exit: \(exit.stderr)")
        let frames = try capture("ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 '\(out)'")
        #expect((Int(frames) ?? 0) > 0, "decodable frames: '\(frames)'")
        let streams = try capture("ffprobe -v error -show_entries stream=codec_type -of csv=p=0 '\(out)'")
        #expect(streams.contains("video") && streams.contains("audio"), "streams: \(streams)")
    }

    @Test("a finished MP4 starts its video at 0, beside the audio, with every frame")
    func finishedMP4Timing() throws {
        let clip = scratch.file("short.mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=3 -f lavfi -i sine=frequency=440:sample_rate=48000:duration=3 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest \(clip)")
        let out = scratch.file("short-out.mp4")
        let result = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--output", out, "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let start = try capture("ffprobe -v error -select_streams v:0 -show_entries stream=start_time -of csv=p=0 '\(out)'")
        #expect(abs((Double(start) ?? -1) - 0) < 0.001, "video start_time \(start)")
        #expect(try probeVideo(out).frames == 75)
    }

    // MARK: item 3: no decodable frame is a failure

    @Test("annotate: an input whose every video packet is garbage exits 1 naming it (JSON and video outputs)")
    func noDecodableFrame() throws {
        let clip = scratch.file("clean.mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -c:v libx264 -pix_fmt yuv420p \(clip)")
        // A valid container (moov with the SPS/PPS, sizes, timestamps) over a codec stream of noise.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: clip)))
        var offset = 0, state: UInt64 = 99
        while offset + 8 <= bytes.count {
            let size = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard size >= 8 else { break }
            if bytes[(offset + 4)..<(offset + 8)].elementsEqual(Array("mdat".utf8)) {
                for i in (offset + 8)..<min(offset + size, bytes.count) {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
                }
            }
            offset += size
        }
        let garbage = scratch.file("garbage.mp4")
        try Data(bytes).write(to: URL(fileURLWithPath: garbage))
        for outputs in [["--json", scratch.file("garbage.jsonl")], ["--json", "-", "--output", scratch.file("garbage-out.mp4")]] {
            let result = try NetnetBinary.run(["annotate", garbage, "--model", try model()] + outputs)
            #expect(result.status == 1, "\(outputs): exit \(result.status)")
            #expect(result.stderr.contains("netnet: \(garbage): no decodable video frame"), "\(outputs): \(result.stderr.suffix(400))")
            #expect(!result.stderr.contains("0 frames,"), "no summary of a run that did nothing")
        }
    }

    // MARK: item 4: a FIFO as the model path

    @Test("a FIFO (or directory, /dev/zero) as the model: every command fails at once, naming the path")
    func fifoModel() throws {
        let fifo = scratch.file("model.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let image = scratch.file("image.png")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=64x48 -frames:v 1 \(image)")
        let config = scratch.file("netnet.conf")
        try "[global]\nmodel = \(fifo)\n\n[stream a]\nurl = rtsp://127.0.0.1:9/a\n".write(toFile: config, atomically: true, encoding: .utf8)
        let commands: [[String]] = [
            ["model", "info", fifo],
            ["model", "info", "/dev/zero"],
            ["model", "info", scratch.path],
            ["detect", "--model", fifo, image],
            ["annotate", image, "--model", fifo, "--json", "-"],
            ["serve", "--check-config", config],
        ]
        for arguments in commands {
            // Before the fix each of these blocked in open(2) forever: a deadline turns that into a failure.
            let exit = try Child.netnet(arguments, in: scratch).wait(timeout: 20)
            #expect(!exit.timedOut, "\(arguments): hung")
            #expect(exit.status == 1, "\(arguments): status \(String(describing: exit.status))")
            let path = arguments.contains("info") ? arguments[2] : fifo
            #expect(exit.stderr.contains("netnet: \(path): not a regular file"), "\(arguments): \(exit.stderr)")
            #expect(exit.stderr.split(separator: "\n").count == 1, "\(arguments): one line: \(exit.stderr)")
        }
    }

    // MARK: item 5: oversized frames

    @Test("a 16000x16000 image: detect and annotate fail naming the size and the limit, without allocating the frame")
    func oversizedFrame() throws {
        let png = scratch.file("huge.png"), mkv = scratch.file("huge.mkv")
        try shell("ffmpeg -loglevel error -f lavfi -i color=c=black:s=16000x16000:d=0.04 -frames:v 1 \(png)")
        try shell("ffmpeg -loglevel error -f lavfi -i color=c=black:s=16000x16000:d=0.08:r=25 -c:v mjpeg \(mkv)")
        let pngBytes = (try FileManager.default.attributesOfItem(atPath: png)[.size] as? Int) ?? 0
        #expect(pngBytes < 2_000_000, "the test image should be small on disk: \(pngBytes) bytes")
        let runs: [[String]] = [
            ["detect", "--model", try model(), png],
            ["annotate", png, "--model", try model(), "--json", "-"],
            ["annotate", png, "--model", try model(), "--output", scratch.file("huge-out.mp4")],
            ["annotate", mkv, "--model", try model(), "--output", scratch.file("huge-out2.mp4"), "--json", "-"],
        ]
        for arguments in runs {
            let exit = try Child.netnet(arguments, in: scratch).wait(timeout: 120)
            #expect(exit.status == 1, "\(arguments): status \(String(describing: exit.status)) \(exit.stderr.suffix(300))")
            let input = arguments[0] == "detect" ? png : arguments[1]
            #expect(exit.stderr.contains("netnet: \(input): ") && exit.stderr.contains("16000x16000")
                    && exit.stderr.contains("over the limit of 67108864 pixels"), "\(arguments): \(exit.stderr.suffix(400))")
            // One 16000x16000 RGB picture alone is 750 MiB; the run must stay far below it.
            #expect(exit.maxRSSKiB < 512 * 1024, "\(arguments): peak RSS \(exit.maxRSSKiB / 1024) MiB")
        }
        // The limit is a flag.
        let small = scratch.file("small.png")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=64x48 -frames:v 1 \(small)")
        let limited = try NetnetBinary.run(["detect", "--model", try model(), "--max-frame-pixels", "3000", small])
        #expect(limited.status == 1 && limited.stderr.contains("a 64x48 frame (3072 pixels) is over the limit of 3000 pixels"), "\(limited.stderr)")
        let allowed = try NetnetBinary.run(["detect", "--model", try model(), "--max-frame-pixels", "3072", small])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let refused = try NetnetBinary.run(["annotate", small, "--json", "-", "--max-frame-pixels", "0"])
        #expect(refused.status != 0 && refused.stderr.contains("--max-frame-pixels"), "\(refused.stderr)")
    }

    // MARK: item 8 (annotate/model part)

    @Test("model info escapes control characters from the file's description and class names")
    func controlCharacters() throws {
        let path = try model()
        let hostile = scratch.file("hostile.safetensors")
        // Rewrite the header: the description and a class name carry terminal escapes.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) })
        var header = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        let range = header.range(of: #""description":"[^"]*""#, options: .regularExpression)!
        header.replaceSubrange(range, with: #""description":"\u001b[2J\u001b]0;owned\u0007red\u009b31m \u202eevil""#)
        header = header.replacingOccurrences(of: #"\"person\""#, with: #"\"per\\u001b[5mson\""#)
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out: [UInt8] = (0..<8).map { UInt8((UInt64(headerBytes.count) >> (8 * UInt64($0))) & 0xff) }
        out += headerBytes + bytes[(8 + length)...]
        try Data(out).write(to: URL(fileURLWithPath: hostile))
        let info = try NetnetBinary.run(["model", "info", hostile])
        #expect(info.status == 0, "\(info.stderr)")
        let controls = info.stdout.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E }
        #expect(controls.isEmpty, "control characters reach the terminal: \(controls.map { String($0.value, radix: 16) })")
        #expect(info.stdout.contains(#"description: \u{1B}[2J\u{1B}]0;owned\u{7}red\u{9B}31m \u{202E}evil"#), "\(info.stdout)")
        #expect(info.stdout.contains(#"per\u{1B}[5mson"#), "\(info.stdout)")
        // The model line annotate and detect print on standard error is escaped too.
        let image = scratch.file("ctl.png")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=64x48 -frames:v 1 \(image)")
        let detect = try NetnetBinary.run(["detect", "--model", hostile, image])
        #expect(detect.status == 0 && !detect.stderr.unicodeScalars.contains { $0.value == 0x1B }, "\(detect.stderr)")
    }

    @Test("a 0x0 input (no picture size, no frame) is an error naming the input, not the output")
    func zeroSizeInput() throws {
        let png = scratch.file("frame.png")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=64x48 -frames:v 1 \(png)")
        // Keep the PNG's signature and IHDR, drop its IDAT: probing finds no picture size.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: png)))
        var kept = Array(bytes[0..<8]), offset = 8
        while offset + 12 <= bytes.count {
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            if !bytes[(offset + 4)..<(offset + 8)].elementsEqual(Array("IDAT".utf8)) { kept += bytes[offset..<(offset + 12 + length)] }
            offset += 12 + length
        }
        let empty = scratch.file("no-picture.png")
        try Data(kept).write(to: URL(fileURLWithPath: empty))
        let out = scratch.file("zero-out.mp4")
        let result = try NetnetBinary.run(["annotate", empty, "--model", try model(), "--output", out])
        #expect(result.status == 1)
        #expect(result.stderr.contains("netnet: \(empty): "), "the message names the input: \(result.stderr)")
        #expect(!result.stderr.contains("\(out):"), "the output is not what is wrong: \(result.stderr)")
    }

    @Test("SIGINT during a normal run: no bogus corrupt-frame warning, 0 decode errors",
          .enabled(if: hasVtest, "samples/vtest.avi is missing: bash scripts/fetch-vtest.sh"))
    func stopIsNotDamage() throws {
        for round in 0..<3 {
            let json = scratch.file("stop-\(round).jsonl")
            let child = try Child.netnet(["annotate", vtestPath, "--model", try model(), "--json", json,
                                          "--output", scratch.file("stop-\(round).mp4")], in: scratch)
            waitForLines(json, 30 + 20 * round)
            child.signal(SIGINT)
            let exit = child.wait(timeout: 60)
            #expect(exit.status == 130, "round \(round): status \(String(describing: exit.status))")
            #expect(!exit.stderr.contains("corrupt") && !exit.stderr.contains("damaged"), "round \(round): \(exit.stderr)")
            #expect(exit.stderr.contains(" 0 decode errors (stopped by signal)"), "round \(round): \(exit.stderr)")
        }
    }

    @Test("Ctrl-C while a URL is opening interrupts the open: exit 130 at once, not after the open timeout",
          arguments: ["tcp", "http"])
    func interruptOpen(_ scheme: String) throws {
        let server = try SilentServer()
        let url = scheme == "tcp" ? "tcp://127.0.0.1:\(server.port)" : "http://127.0.0.1:\(server.port)/camera.mp4"
        let child = try Child.netnet(["annotate", url, "--model", try model(), "--json", "-"], in: scratch)
        Thread.sleep(forTimeInterval: 1)
        child.signal(SIGINT)
        // The open timeout is 10 s: an exit within 5 s of the signal can only come from the interrupt.
        let exit = child.wait(timeout: 5)
        #expect(!exit.timedOut, "\(url): still opening 5 s after SIGINT")
        #expect(exit.status == 130, "\(url): status \(String(describing: exit.status)), \(exit.stderr)")
        #expect(exit.stderr.contains("\(url): interrupted while opening"), "\(exit.stderr)")
        withExtendedLifetime(server) {}
    }
}
