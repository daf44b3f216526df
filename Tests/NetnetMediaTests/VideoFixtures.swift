import Foundation
import Testing
@testable import NetnetMedia

/// Video test inputs (clips in several containers, broken files) generated with the real `ffmpeg` CLI
/// into their own temporary folder, once per run, the first time a video test asks for them.
final class VideoFixtures: Sendable {
    static let ffprobePath: String? = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/ffprobe"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// ffmpeg and ffprobe are both on PATH.
    static var available: Bool { Fixtures.ffmpegPath != nil && ffprobePath != nil }
    static let skipMessage: Comment = "ffmpeg/ffprobe CLI not found on PATH: video tests skipped"

    /// Clips readable end to end: name → frame rate. 320x240, 3 s, 25 fps unless noted.
    static let clips = ["clip.mp4", "clip.mkv", "clip.avi", "clip.ts", "clip.mov"]

    private static let generated: Result<VideoFixtures, any Error> = {
        do {
            let fixtures = try VideoFixtures()
            atexit { if case .success(let f) = VideoFixtures.generated { try? FileManager.default.removeItem(atPath: f.dir) } }
            return .success(fixtures)
        } catch {
            return .failure(error)
        }
    }()

    /// The shared fixtures; throws if ffmpeg could not generate them.
    static func get() throws -> VideoFixtures { try generated.get() }

    let dir: String

    private init() throws {
        guard let ffmpeg = Fixtures.ffmpegPath else { throw MediaError("no ffmpeg") }
        FFmpegLog.setLevel(.quiet)   // the error tests make FFmpeg log on purpose
        dir = NSTemporaryDirectory() + "netnet-video-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        do { try Self.generate(into: dir, ffmpeg: ffmpeg) } catch {
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
    }

    private static func generate(into dir: String, ffmpeg: String) throws {
        func gen(_ name: String, _ args: [String]) throws {
            _ = try run(ffmpeg, ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + args + ["\(dir)/\(name)"])
        }
        let testsrc = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3"]
        let sine = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3"]
        let h264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25", "-bf", "2"]
        let aac = ["-c:a", "aac", "-b:a", "64k"]
        try gen("clip.mp4", testsrc + sine + h264 + aac)
        try gen("clip.mkv", testsrc + sine + h264 + aac)
        try gen("clip.mov", testsrc + sine + h264 + aac)
        try gen("clip.ts", testsrc + sine + h264 + aac)
        try gen("clip.avi", testsrc + sine + ["-c:v", "mpeg4", "-q:v", "4", "-c:a", "libmp3lame", "-b:a", "64k"])
        // 1 s with audio, for loops.
        try gen("short.mp4", ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
                              "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1"] + h264 + aac)
        // Solid mid-grey picture with a tone: boxes drawn on it are easy to find again.
        try gen("solid.mp4", ["-f", "lavfi", "-i", "color=c=0x808080:s=320x240:r=25:d=3"] + sine + h264 + aac)
        try gen("solid.mkv", ["-f", "lavfi", "-i", "color=c=0x808080:s=320x240:r=25:d=3"] + sine + h264 + aac)
        // PCM audio, which mp4 cannot carry.
        try gen("pcm.mkv", ["-f", "lavfi", "-i", "color=c=0x808080:s=64x48:r=25:d=1",
                            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1"] + h264 + ["-c:a", "pcm_s16le"])
        // 10 s, one keyframe a second, for corruption in the middle.
        try gen("long.ts", ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=10"] + h264)
        // moov atom in front, so the first half of the file is a playable prefix.
        try gen("faststart.mp4", ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4"] + h264 + ["-movflags", "+faststart"])
        // Odd size and a non-4:2:0 format through the writer's conversion path.
        try gen("odd422.mkv", ["-f", "lavfi", "-i", "testsrc2=size=161x97:rate=25:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv422p"])

        // A phone-style clip: the stream says "display rotated by 90°".
        try gen("rotated.mp4", ["-i", "\(dir)/short.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=90"])

        // Broken inputs.
        try Data("this is plain text, not a video\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/text.mp4"))
        let faststart = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/faststart.mp4"))
        try faststart.prefix(faststart.count / 2).write(to: URL(fileURLWithPath: "\(dir)/truncated.mp4"))
        let ts = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/long.ts"))
        try ts.prefix(ts.count / 2).write(to: URL(fileURLWithPath: "\(dir)/truncated.ts"))
        // Garbage over ~3 % of the stream in the middle, keeping the 188-byte TS packet structure (sync
        // bytes, headers) and the TS packets that start a PES packet, so the demuxer still delivers every
        // frame and the damaged H.264 data reaches the decoder.
        var corrupt = ts
        var rng = SeededGenerator(seed: 2026)   // the same damage every run
        let packets = corrupt.count / 188
        let first = packets / 2, count = max(4, packets / 33)
        for p in first..<(first + count) {
            let start = p * 188
            let header = [UInt8](corrupt[start..<(start + 4)])
            guard header[0] == 0x47, header[1] & 0x40 == 0, header[3] & 0x20 == 0 else { continue }   // PES start or adaptation field: keep
            for i in (start + 4)..<(start + 188) { corrupt[i] = UInt8.random(in: 0...255, using: &rng) }
        }
        // Same region with the PES starts destroyed too: the demuxer loses whole frames.
        var mangled = ts
        for p in first..<(first + count) {
            let start = p * 188
            for i in (start + 4)..<(start + 188) { mangled[i] = UInt8.random(in: 0...255, using: &rng) }
        }
        try mangled.write(to: URL(fileURLWithPath: "\(dir)/mangled.ts"))
        try corrupt.write(to: URL(fileURLWithPath: "\(dir)/corrupt.ts"))
    }

    func path(_ name: String) -> String { "\(dir)/\(name)" }

    /// Frames ffprobe decodes in the first video stream (`-count_frames` nb_read_frames).
    static func probeFrameCount(_ path: String) throws -> Int {
        let out = try run(ffprobePath!, ["-v", "error", "-count_frames", "-select_streams", "v:0",
                                         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path])
        guard let n = Int(out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").first ?? "") else {
            throw MediaError("ffprobe nb_read_frames of \(path): \(out)")
        }
        return n
    }

    /// Decoded frame times of the first video stream in seconds, relative to the stream's start_time.
    static func probeFrameTimes(_ path: String) throws -> [Double] {
        let start = try run(ffprobePath!, ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=start_time",
                                           "-of", "csv=p=0", path])
        // MPEG-TS lists its streams twice (under the program and on their own): take the first line.
        let startTime = Double(start.split(separator: "\n").first?.trimmingCharacters(in: CharacterSet(charactersIn: " ,")) ?? "") ?? 0
        let out = try run(ffprobePath!, ["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp_time",
                                         "-of", "csv=p=0", path])
        return out.split(separator: "\n").compactMap { Double($0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ","))) }
            .map { $0 - startTime }
    }

    /// Container duration in seconds (format=duration).
    static func probeDuration(_ path: String) throws -> Double {
        let out = try run(ffprobePath!, ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path])
        guard let d = Double(out.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw MediaError("ffprobe duration of \(path): \(out)")
        }
        return d
    }

    /// (codec_name, sample_rate) of the first audio stream, nil when there is none.
    static func probeAudio(_ path: String) throws -> (codec: String, sampleRate: Int)? {
        let out = try run(ffprobePath!, ["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name,sample_rate",
                                         "-of", "csv=p=0", path])
        // MPEG-TS lists its streams twice (under the program and on their own): take the first line.
        let line = out.split(separator: "\n").first { !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? ""
        let fields = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",")
        guard fields.count >= 2, let rate = Int(fields[1]) else { return nil }
        return (String(fields[0]), rate)
    }
}

/// Runs a program, returns its standard output; throws with its standard error when it fails.
@discardableResult
func run(_ program: String, _ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    // Read both pipes while the process runs (a full pipe would block it).
    let errData = LockedData()
    let errThread = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
    errThread.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !errData.isSet { usleep(1000) }
    let stdout = String(decoding: outData, as: UTF8.self)
    guard p.terminationStatus == 0 else {
        throw MediaError("\(program) \(args.joined(separator: " ")) failed: \(String(decoding: errData.value, as: UTF8.self))")
    }
    return stdout
}

/// A Data value set once by another thread.
final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return data != nil }
    var value: Data { lock.lock(); defer { lock.unlock() }; return data ?? Data() }
}

/// Reads every frame of `path`: (frames, pts list, decode errors).
func readAll(_ path: String, threads: Int = 0) throws -> (frames: Int, pts: [Int64?], seconds: [Double?], errors: Int, audioPackets: Int) {
    var options = VideoSourceOptions(url: path)
    options.decoderThreads = threads
    let source = try VideoSource(options: options)
    let frame = VideoFrame()
    var pts: [Int64?] = [], seconds: [Double?] = []
    var audio = 0
    while try source.nextFrame(into: frame, audioSink: { _ in audio += 1 }) {
        pts.append(frame.pts)
        seconds.append(frame.ptsSeconds)
    }
    return (pts.count, pts, seconds, source.decodeErrors, audio)
}

/// A reproducible generator for fixture damage (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
