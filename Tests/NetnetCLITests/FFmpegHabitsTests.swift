import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Runs `command` with bash and `pipefail`; returns its status, standard output and error.
func bash(_ command: String) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-o", "pipefail", "-c", command]
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// FFmpeg's habits (issue #21, part 6): the annotated video to standard output (`--output -
/// --format FMT`), `detect -` from standard input, and FFmpeg input options passed through
/// (`--input-option`, `input_options`), refused when FFmpeg does not take them.
@Suite("FFmpeg's habits: pipes and input options", .serialized, .enabled(if: hasFFmpeg, "needs the ffmpeg CLI"))
struct FFmpegHabitsTests {
    let scratch = Scratch()
    var netnet: String { NetnetBinary.url.path }

    func model() throws -> String {
        let path = scratch.file("tiny.safetensors")
        if FileManager.default.fileExists(atPath: path) { return path }
        let result = try NetnetBinary.run(["model", "init", "--network", "netnet-vgg16-300", "--width", "0.125",
                                           "--classes", "person,car", "--head-init", "he", "--output", path])
        #expect(result.status == 0, "\(result.stderr)")
        return path
    }

    /// The done-when of the issue, on the whole of vtest.avi (795 frames; ~50 s in a debug build).
    @Test("annotate vtest.avi --output - --format matroska | ffprobe -: the video stream with the input's 795 frames",
          .enabled(if: hasVtest, "samples/vtest.avi is missing: bash scripts/fetch-vtest.sh"))
    func pipeToFFprobe() throws {
        let errors = scratch.file("pipe.stderr")
        let result = try bash("'\(netnet)' annotate '\(vtestPath)' --output - --format matroska --preset ultrafast 2>'\(errors)'"
                              + " | ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,nb_read_frames -of csv=p=0 -")
        let stderr = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        #expect(result.status == 0, "\(result.stderr)\(stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "h264,795", "ffprobe: \(result.stdout)")
        // Progress and the summary stay on standard error.
        #expect(stderr.contains("795 frames"), "summary: \(stderr)")
    }

    @Test("--format mp4 to a pipe is written fragmented: every frame and the audio arrive; --format overrides the extension")
    func mp4ToAPipe() throws {
        let clip = scratch.file("tone.ts")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -f lavfi -i sine=frequency=440:sample_rate=48000:duration=2 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest \(clip)")
        let out = scratch.file("piped.mp4")
        let result = try bash("'\(netnet)' annotate '\(clip)' --model '\(try model())' --output - --format mp4 --quiet > '\(out)'")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try probeVideo(out).frames == 50)
        let audio = try capture("ffprobe -v error -select_streams a:0 -show_entries stream=codec_name -of csv=p=0 '\(out)'")
        #expect(audio == "aac", "audio: '\(audio)'")
        // A file whose extension names no container: --format decides.
        let odd = scratch.file("annotated.video")
        let named = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--output", odd, "--format", "nut", "--quiet"])
        #expect(named.status == 0, "\(named.stderr)")
        #expect(try capture("ffprobe -v error -show_entries format=format_name -of csv=p=0 '\(odd)'") == "nut")
        let unknown = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--output", "-", "--format", "nonsense", "--quiet"])
        #expect(unknown.status == 1 && unknown.stderrLines.count == 1, "\(unknown.stderr)")
        #expect(unknown.stderr.contains("no container format (muxer) named 'nonsense'"), "\(unknown.stderr)")
    }

    @Test("--output - needs --format; it and another output on standard output are a usage error")
    func usageErrors() throws {
        let clip = scratch.file("in.mp4")
        let cases: [([String], String)] = [
            (["--output", "-"], "--output - writes the video to standard output: give its container with --format"),
            (["--output", "-", "--format", "nut", "--json", "-"], "--output - and --json - both write to standard output"),
            (["--output", "-", "--format", "nut", "--events", "-"], "--output - and --events - both write to standard output"),
            (["--output", "-", "--format", "nut", "--counts", "-", "--scene", clip], "--output - and --counts - both write to standard output"),
            (["--json", "-", "--format", "nut"], "--format names the container of --output"),
            (["--json", "-", "--input-option", "probesize"], "--input-option 'probesize' is not KEY=VALUE"),
            (["--json", "-", "--input-option", "a=1", "--input-option", "a=2"], "--input-option a is given twice"),
            (["--output", "o.mp4", "--encoder-params", "subme"], "--encoder-params 'subme': 'subme' is not key=value"),
            (["--output", "o.mp4", "--codec", "mpeg4", "--encoder-params", "me=dia"], "the mpeg4 encoder takes no parameter list"),
            (["--output", "o.mp4", "--encoder-params", "subme=1:foo=bar"], "--encoder-params 'subme=1:foo=bar': x264 has no parameter 'foo'"),
        ]
        for (arguments, expected) in cases {
            let result = try NetnetBinary.run(["annotate", clip] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.status)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
    }

    @Test("the pipe's reader goes away (| head -c 1000): one line saying so, exit 1, no crash")
    func brokenPipe() throws {
        let clip = scratch.file("long.ts")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=8 -c:v libx264 -pix_fmt yuv420p \(clip)")
        let errors = scratch.file("epipe.stderr")
        let result = try bash("'\(netnet)' annotate '\(clip)' --model '\(try model())' --output - --format matroska --quiet 2>'\(errors)'"
                              + " | head -c 1000 > /dev/null; echo ${PIPESTATUS[0]}")
        let stderr = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "status \(result.stdout): \(stderr)")
        #expect(stderr.split(separator: "\n").count == 1, "\(stderr)")
        #expect(stderr.hasPrefix("netnet: standard output: the reader closed the pipe (Broken pipe)"), "\(stderr)")
    }

    @Test("detect - reads an image from standard input; garbage there is one line naming -")
    func detectFromStandardInput() throws {
        let model = try model()
        let result = try bash("ffmpeg -loglevel error -f lavfi -i testsrc2=size=320x240 -frames:v 1 -f image2pipe -c:v png - | '\(netnet)' detect --model '\(model)' -")
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stdout)")
        let object = try jsonObject(lines.first ?? "")
        #expect(object["file"] as? String == "-")
        #expect((object["width"] as? NSNumber)?.intValue == 320 && (object["height"] as? NSNumber)?.intValue == 240)
        let garbage = try bash("echo 'not an image' | '\(netnet)' detect --model '\(model)' -")
        let errors = garbage.stderr.split(separator: "\n").filter { !$0.contains(": model ") }
        #expect(garbage.status == 1 && garbage.stdout.isEmpty, "\(garbage.stdout)")
        #expect(errors == ["netnet: -: Invalid data found when processing input"], "\(garbage.stderr)")
        let twice = try NetnetBinary.run(["detect", "--model", model, "-", "-"])
        #expect(twice.status == 64 && twice.stderr.contains("- (standard input) may be given once"), "\(twice.stderr)")
    }

    @Test("--input-option: an option FFmpeg takes is passed; one it does not take is a one-line error naming it")
    func inputOptions() throws {
        let clip = scratch.file("short.mp4")
        try shell("ffmpeg -loglevel error -f lavfi -i testsrc2=size=160x120:rate=25:duration=1 -c:v libx264 -pix_fmt yuv420p \(clip)")
        let json = scratch.file("options.jsonl")
        let good = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--json", json, "--quiet",
                                         "--input-option", "probesize=5000000", "--input-option", "fflags=+genpts"])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(try jsonLines(json).count == 25)
        let bad = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--json", json, "--quiet",
                                        "--input-option", "probesize=5000000", "--input-option", "nonsense=1"])
        #expect(bad.status == 1)
        #expect(bad.stderrLines == ["netnet: --input-option nonsense: not an option of this input (FFmpeg: no option of that name in the format context, the mov demuxer or the file protocol)"],
                "\(bad.stderr)")
        // An RTSP option on a file: FFmpeg's file demuxer does not take it either.
        let misplaced = try NetnetBinary.run(["annotate", clip, "--model", try model(), "--json", json, "--quiet",
                                              "--input-option", "rtsp_transport=udp", "--input-option", "stimeout=5000000"])
        #expect(misplaced.status == 1 && misplaced.stderrLines.count == 1, "\(misplaced.stderr)")
        #expect(misplaced.stderr.hasPrefix("netnet: --input-option rtsp_transport, stimeout: not options of this input"), "\(misplaced.stderr)")
    }

    @Test("serve: input_options parse errors name file and line; a key FFmpeg does not take is the connection's failure, named")
    func configInputOptions() throws {
        let config = scratch.file("check.conf")
        func check(_ text: String) throws -> NetnetBinary.Result {
            try text.write(toFile: config, atomically: false, encoding: .utf8)
            return try NetnetBinary.run(["serve", "--check-config", config])
        }
        let ok = try check("[stream a]\nurl = rtsp://127.0.0.1:8554/cam\ninput_options = rtsp_transport=udp, stimeout=5000000\n")
        #expect(ok.status == 0, "\(ok.stderr)")
        let cases: [(String, String)] = [
            ("[stream a]\nurl = /x.mp4\ninput_options = rtsp_transport\n", "\(config):3: input_options: 'rtsp_transport' is not KEY=VALUE"),
            ("[stream a]\nurl = /x.mp4\ninput_options = a=1,,b=2\n", "\(config):3: input_options: '' is not KEY=VALUE"),
            ("[stream a]\nurl = /x.mp4\ninput_options = =1\n", "\(config):3: input_options: '=1' is not KEY=VALUE"),
            ("[stream a]\nurl = /x.mp4\n\ninput_options = a=1, a=2\n", "\(config):4: input_options: a is given twice"),
        ]
        for (text, expected) in cases {
            let result = try check(text)
            #expect(result.status == 1 && result.stderrLines.count == 1, "\(text): \(result.stderr)")
            #expect(result.stderr.hasPrefix("netnet: \(expected)"), "\(result.stderr)")
        }
        let clip = try ServeClips.make(in: scratch)
        let serveConfig = scratch.file("serve.conf")
        try "[global]\nlisten = 127.0.0.1:0\n[stream a]\nurl = \(clip)\ninput_options = probesize=5000000, nonsense=1\n"
            .write(toFile: serveConfig, atomically: false, encoding: .utf8)
        let serve = try ServeProcess(arguments: ["serve", "--config", serveConfig], scratch: scratch)
        let named = "stream a: backing_off (\(clip): input option nonsense: not an option of this input (FFmpeg: "
        #expect(waitFor(30) { serve.stderr.contains(named) }, "\(serve.stderr)")
        serve.signal(SIGTERM)
        #expect(serve.waitExit(10) == 0, "\(serve.stderr)")
    }
}
