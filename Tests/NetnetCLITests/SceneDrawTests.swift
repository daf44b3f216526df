import Foundation
import Testing

/// `netnet scene draw`, and the scene drawn on `annotate`'s video.
@Suite("netnet scene draw", .serialized, .enabled(if: hasFFmpeg, "needs the ffmpeg CLI"))
struct SceneDrawTests {
    let scratch = Scratch()

    /// A clip of `frames` frames from vtest.avi (768×576).
    func vtestClip(frames: Int) throws -> String { try NetnetCLITests.vtestClip(frames: frames, in: scratch) }

    /// The first frame of a video (or an image) as packed RGB, row after row.
    func rgb(_ path: String) throws -> [UInt8] {
        let raw = scratch.file("frame-\(UUID().uuidString).rgb")
        try shell("ffmpeg -loglevel error -y -i '\(path)' -frames:v 1 -f rawvideo -pix_fmt rgb24 '\(raw)'")
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: raw)))
    }

    func isYellow(_ pixels: [UInt8], width: Int, x: Int, y: Int) -> Bool {
        let i = (y * width + x) * 3
        return pixels[i] > 200 && pixels[i + 1] > 200 && pixels[i + 2] < 90
    }

    var sceneFile: String {
        let path = scratch.file("vtest.scene")
        if !FileManager.default.fileExists(atPath: path) {
            try! "[line middle]\npoints = 560,420 560,160\n[zone junction]\npoints = 600,110 768,90 768,320 630,300\nloiter = 10\n[mask tripod]\npoints = 445,330 535,330 535,490 445,490\n"
                .write(toFile: path, atomically: false, encoding: .utf8)
        }
        return path
    }

    @Test("writes a PNG of the frame's size (or --width), and a JPEG by extension, with the line drawn",
          .enabled(if: hasVtest, "samples/vtest.avi is missing: bash scripts/fetch-vtest.sh"))
    func writesImages() throws {
        let png = scratch.file("scene.png")
        let drawn = try NetnetBinary.run(["scene", "draw", vtestPath, "--scene", sceneFile, "--output", png])
        #expect(drawn.status == 0 && drawn.stderr.isEmpty, "\(drawn.stderr)")
        #expect(try capture("ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 '\(png)'") == "png,768,576")
        let pixels = try rgb(png)
        #expect((170...410).filter { isYellow(pixels, width: 768, x: 560, y: $0) }.count > 230, "the line down x = 560")
        #expect(isYellow(pixels, width: 768, x: 572, y: 290), "its arrow to the right, the `in` side")
        #expect(!isYellow(pixels, width: 768, x: 548, y: 290), "nothing on the left but the text")

        let small = scratch.file("scene-small.jpg")
        let scaled = try NetnetBinary.run(["scene", "draw", vtestPath, "--scene", sceneFile, "-o", small, "--width", "384"])
        #expect(scaled.status == 0, "\(scaled.stderr)")
        #expect(try capture("ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 '\(small)'") == "mjpeg,384,288")
    }

    @Test("bad input: missing input, not a video, broken or missing scene, a point outside, unwritable output",
          .enabled(if: hasVtest, "samples/vtest.avi is missing: bash scripts/fetch-vtest.sh"))
    func badInput() throws {
        let out = scratch.file("bad.png")
        func draw(_ input: String, scene: String, output: String? = nil) throws -> NetnetBinary.Result {
            try NetnetBinary.run(["scene", "draw", input, "--scene", scene, "--output", output ?? out])
        }
        func oneLine(_ result: NetnetBinary.Result, _ fragment: String) {
            #expect(result.status == 1 && result.stderrLines.count == 1 && result.stderr.hasPrefix("netnet: ")
                    && result.stderr.contains(fragment), "\(fragment): \(result.stderr)")
        }
        oneLine(try draw(scratch.file("missing.avi"), scene: sceneFile), "missing.avi: No such file or directory")
        let text = scratch.file("notes.avi")
        try "not a video".write(toFile: text, atomically: true, encoding: .utf8)
        oneLine(try draw(text, scene: sceneFile), "notes.avi")
        let broken = scratch.file("broken.scene")
        try "[line door]\npoints = 10,10\n".write(toFile: broken, atomically: false, encoding: .utf8)
        oneLine(try draw(vtestPath, scene: broken), "\(broken):2: a line has 2 points, got 1")
        oneLine(try draw(vtestPath, scene: scratch.file("none.scene")), "none.scene: no such scene file")
        let outside = scratch.file("outside.scene")
        try "[zone x]\npoints = 1,1 900,1 5,5\n".write(toFile: outside, atomically: false, encoding: .utf8)
        oneLine(try draw(vtestPath, scene: outside), "\(outside):1: [zone x]: point 900,1 is outside the 768×576 frame")
        oneLine(try draw(vtestPath, scene: sceneFile, output: scratch.file("no/such/dir/scene.png")), "scene.png: No such file or directory")
        #expect(!FileManager.default.fileExists(atPath: out))
        let gif = try draw(vtestPath, scene: sceneFile, output: scratch.file("scene.gif"))
        #expect(gif.status != 0 && gif.stderr.contains("--output must end in .png, .jpg or .jpeg"), "\(gif.stderr)")
        let help = try NetnetBinary.run(["scene", "draw", "--help"])
        #expect(help.status == 0 && help.stdout.contains("--scene") && help.stdout.contains("--width") && help.stdout.contains("in` side"))
    }

    @Test("annotate --scene draws the line on the video; without it those pixels are the picture's",
          .enabled(if: hasVtest, "samples/vtest.avi is missing: bash scripts/fetch-vtest.sh"))
    func annotateDrawsTheScene() throws {
        let clip = try vtestClip(frames: 4)
        let model = scratch.file("tiny.safetensors")
        let made = try NetnetBinary.run(["model", "init", "--network", "netnet-vgg16-300", "--width", "0.125", "--classes", "person",
                                         "--output", model])
        #expect(made.status == 0, "\(made.stderr)")
        var frames: [[UInt8]] = []
        for scene in [nil, sceneFile] {
            let out = scratch.file("annotated-\(scene == nil ? "plain" : "scene").mp4")
            // --threshold 1: no boxes, so only the scene can change the line's pixels.
            let result = try NetnetBinary.run(["annotate", clip, "--model", model, "--threshold", "1", "--output", out, "--quiet", "--crf", "12"]
                                              + (scene.map { ["--scene", $0] } ?? []))
            #expect(result.status == 0, "\(result.stderr)")
            frames.append(try rgb(out))
        }
        let onLine = (170...410).filter { isYellow(frames[1], width: 768, x: 560, y: $0) }.count
        let before = (170...410).filter { isYellow(frames[0], width: 768, x: 560, y: $0) }.count
        #expect(onLine > 220 && before < 10, "yellow pixels on x = 560: \(onLine) with the scene, \(before) without")
        // Away from the scene's shapes the two videos agree (same encoder input there).
        let i = (500 * 768 + 100) * 3
        #expect(abs(Int(frames[0][i]) - Int(frames[1][i])) < 12)
    }
}
