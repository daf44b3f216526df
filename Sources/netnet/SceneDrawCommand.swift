import ArgumentParser
import Foundation
import NetnetMedia
import NetnetPipeline
import NetnetScene

/// `netnet scene draw`: a scene drawn on a video's first frame, to check its coordinates.
struct SceneDrawCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "draw",
        abstract: "Draw a scene's lines, zones and masks on a video's first frame.",
        discussion: """
            Decodes the first frame of INPUT (any file, URL or image FFmpeg reads), checks the scene \
            against its size as annotate does, and writes the frame with the scene drawn as annotate \
            and the snapshots draw it: lines yellow with an arrow to their `in` side, zones cyan, \
            masks hatched, each with its name. The output's extension picks the format: .png or \
            .jpg/.jpeg. Example: netnet scene draw samples/vtest.avi --scene door.scene --output scene.png
            """)

    @Argument(help: "The video (or image) whose first frame is drawn on.")
    var input: String

    @Option(help: "The scene file (docs/scenes.md).")
    var scene: String

    @Option(name: [.short, .long], help: "The image to write: .png or .jpg/.jpeg.")
    var output: String

    @Option(help: "Scale the image to this many pixels wide (the height in proportion); default: the frame's size.")
    var width: Int?

    func validate() throws {
        let ext = (output as NSString).pathExtension.lowercased()
        guard ["png", "jpg", "jpeg"].contains(ext) else {
            throw ValidationError("--output must end in .png, .jpg or .jpeg, got \(output)")
        }
        if let width, !(2...16384).contains(width) { throw ValidationError("--width must be in 2…16384, got \(width)") }
    }

    func run() throws {
        FFmpegLog.setLevel(.quiet)   // failures are reported once, by us, with FFmpeg's reason
        let loaded = reportingErrors { try loadSceneFile(scene) }
        let frame = VideoFrame()
        reportingErrors {
            var options = VideoSourceOptions(url: input)
            options.decoderThreads = 1
            let source = try VideoSource(options: options)
            guard try source.nextFrame(into: frame, audioSink: nil) else {
                throw AnnotateError.noDecodableFrame(input: input, decodeErrors: source.decodeErrors)
            }
            try loaded.check(width: frame.width, height: frame.height)
        }
        var drawing = SceneDrawing(scene: loaded, width: frame.width, height: frame.height)
        reportingErrors { try SnapshotEncoder().write(frame, boxes: [], overlay: drawing.overlay(counts: nil), to: output, width: width) }
    }
}
