import Foundation
import Testing
@testable import NetnetMedia

/// Test inputs generated with the real `ffmpeg` CLI into a fresh temporary folder, once per run.
final class Fixtures: Sendable {
    /// Absolute path of `ffmpeg` on PATH, nil when missing (the media tests are then skipped).
    static let ffmpegPath: String? = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/ffmpeg"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    static var ffmpegAvailable: Bool { ffmpegPath != nil }
    static let skipMessage: Comment = "ffmpeg CLI not found on PATH: media tests skipped"

    /// Generated once, lazily and thread-safely (Swift `static let`); a generation failure is kept
    /// and rethrown by `get()` so every media test fails with the ffmpeg message instead of crashing.
    private static let generated: Result<Fixtures, any Error> = {
        do {
            let fixtures = try Fixtures()
            // static lets are never deinitialised: remove the folder at exit.
            atexit { if case .success(let f) = Fixtures.generated { try? FileManager.default.removeItem(atPath: f.dir) } }
            return .success(fixtures)
        } catch {
            return .failure(error)
        }
    }()

    /// The shared fixtures; throws if ffmpeg could not generate them.
    static func get() throws -> Fixtures { try generated.get() }

    let dir: String

    private init() throws {
        guard let ffmpeg = Fixtures.ffmpegPath else { throw MediaError("no ffmpeg") }
        FFmpegLog.setLevel(.quiet)   // the error tests make FFmpeg log on purpose
        dir = NSTemporaryDirectory() + "netnet-reader-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        do { try Self.generate(into: dir, ffmpeg: ffmpeg) } catch {
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
    }

    private static func generate(into dir: String, ffmpeg: String) throws {
        func gen(_ name: String, _ args: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: ffmpeg)
            p.arguments = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + args + ["\(dir)/\(name)"]
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw MediaError("ffmpeg \(args) → \(name) failed: \(text)") }
        }
        // lavfi sources default to yuv420p (even sizes, limited range): ",format=rgb24" keeps sizes
        // and colours exact for the lossless fixtures.
        func lavfi(_ graph: String) -> [String] { ["-f", "lavfi", "-i", graph + ",format=rgb24", "-frames:v", "1"] }
        let solid = lavfi("color=c=0x3366CC:s=64x48")
        let testsrc = lavfi("testsrc2=size=320x240")
        let odd = lavfi("testsrc2=size=161x97")
        try gen("testsrc.png", testsrc)
        // JPEGs: the CLI would pick yuvj444p for an rgb24 source; force the usual 4:2:0 (and test 4:2:2/4:4:4 too).
        let jpeg420 = ["-pix_fmt", "yuvj420p", "-q:v", "2"]
        try gen("testsrc.jpg", testsrc + jpeg420)
        try gen("testsrc422.jpg", testsrc + ["-pix_fmt", "yuvj422p", "-q:v", "2"])
        try gen("testsrc444.jpg", testsrc + ["-pix_fmt", "yuvj444p", "-q:v", "2"])
        try gen("testsrc.bmp", testsrc)
        try gen("odd.png", odd)
        try gen("odd.jpg", odd + jpeg420)
        try gen("odd-gray.png", odd + ["-pix_fmt", "gray"])
        try gen("gray.png", testsrc + ["-pix_fmt", "gray"])
        try gen("rgba.png", testsrc + ["-pix_fmt", "rgba"])
        try gen("rgb48.png", testsrc + ["-pix_fmt", "rgb48be"])
        try gen("pal8.png", lavfi("testsrc2=size=161x97,trim=end_frame=1") + ["-vf", "split[a][b];[a]palettegen[p];[b][p]paletteuse", "-pix_fmt", "pal8"])
        try gen("solid.png", solid)
        try gen("solid.jpg", solid + jpeg420)
        // Odd-size 4:2:0 JPEG: without full_chroma_inp the CLI's rgb24 → yuvj420p conversion writes a
        // wrong last chroma sample at odd sizes (libjpeg's djpeg shows it too).
        try gen("solid-odd.jpg", lavfi("color=c=0x3366CC:s=65x49") + ["-sws_flags", "bilinear+accurate_rnd+full_chroma_inp"] + jpeg420)
        try gen("solid-rgba.png", solid + ["-pix_fmt", "rgba"])
        try gen("solid-pal8.png", lavfi("color=c=0x3366CC:s=64x48,trim=end_frame=1") + ["-vf", "split[a][b];[a]palettegen[p];[b][p]paletteuse", "-pix_fmt", "pal8"])
        try gen("solid-gray.png", lavfi("color=c=0x808080:s=64x48") + ["-pix_fmt", "gray"])
        try gen("solid-rgb48.png", solid + ["-pix_fmt", "rgb48be"])
        try gen("video.mp4", ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "30",
                              "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "2"])
        try gen("solid.mp4", ["-f", "lavfi", "-i", "color=c=0x3366CC:s=64x48:rate=25,format=rgb24", "-frames:v", "5",
                              "-c:v", "libx264", "-pix_fmt", "yuv420p", "-qp", "0"])
        try gen("audio.wav", ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.2"])
        // ffmpeg's own BGR24 renderings, as references.
        for name in ["testsrc.png", "odd.png", "gray.png", "rgba.png", "pal8.png", "odd-gray.png", "testsrc.bmp"] {
            try gen(name + ".bgr", ["-i", "\(dir)/\(name)", "-f", "rawvideo", "-pix_fmt", "bgr24"])
        }

        // Broken inputs.
        try Data("this is plain text, not a JPEG\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/text.jpg"))
        try Data().write(to: URL(fileURLWithPath: "\(dir)/empty.png"))
        let png = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/testsrc.png"))
        try png.prefix(100).write(to: URL(fileURLWithPath: "\(dir)/truncated.png"))
    }

    func path(_ name: String) -> String { "\(dir)/\(name)" }
}

/// Current resident set size of this process in KiB (Linux /proc/self/status), nil elsewhere.
func residentKiB() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// VmRSS growth (KiB) of each window of `iterations` calls of `body`, after `warmup` calls: three
/// windows, or up to six until one grows less than `quietBelow` KiB. Other suites run in parallel
/// in this process, so a window's growth can be theirs (a busy run has shown three in a row); a
/// leak grows every window alike, so callers bound the quietest window.
func residentGrowthPerWindow(iterations: Int, warmup: Int, quietBelow: Int = 0, _ body: (Int) throws -> Void) rethrows -> [Int] {
    for i in 0..<warmup { try body(i) }
    var growths: [Int] = []
    for window in 0..<6 {
        let before = residentKiB()
        for i in 0..<iterations { try body(warmup + window * iterations + i) }
        if let before, let after = residentKiB() { growths.append(after - before) }
        if window >= 2, quietBelow == 0 || (growths.min() ?? .max) < quietBelow { break }
    }
    return growths
}
