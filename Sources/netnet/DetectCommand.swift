import ArgumentParser
import Foundation
import NetnetEngine
import NetnetMedia
import NetnetPipeline

/// `netnet detect`: detections on still images, one JSON line per image.
struct DetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Detect objects in images; print one JSON line per image.",
        discussion: """
            Output per image: {"file", "width", "height", "detections": [{"class", "label", "score", \
            "box": [x1, y1, x2, y2]}]} with boxes in the image's pixels. Any image FFmpeg decodes works \
            (for a video, its first frame). - reads one image from standard input ("file": "-"), e.g. \
            `ffmpeg -i in.mp4 -frames:v 1 -f image2pipe -c:v png - | netnet detect -`. A file that cannot be read is reported on standard error, \
            the other images are still processed, and the exit status is 1.
            """)

    @Option(help: "Model file (default: the bundled default model).")
    var model: String?

    @Option(help: "Minimum score to report, in [0, 1].")
    var threshold: Float = 0.5

    @Option(help: "Also write DIR/input.npy, DIR/loc.npy and DIR/conf.npy (raw heads) for the last image.")
    var dumpHeads: String?

    @OptionGroup var precision: PrecisionOptions

    @Option(help: "Largest image accepted, in pixels (width × height); a larger one is an error, not an allocation. Default: 8192×8192.")
    var maxFramePixels: Int = VideoSourceOptions.defaultMaxFramePixels

    @Argument(help: "Image files; - for one image from standard input.")
    var images: [String]

    func validate() throws {
        guard threshold.isFinite, (0...1).contains(threshold) else { throw ValidationError("--threshold must be in [0, 1], got \(threshold)") }
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        guard images.filter({ $0 == "-" }).count <= 1 else { throw ValidationError("- (standard input) may be given once") }
        guard maxFramePixels >= 1 else { throw ValidationError("--max-frame-pixels must be at least 1, got \(maxFramePixels)") }
    }

    func run() throws {
        FFmpegLog.setLevel(.quiet)  // failures are reported once, by us, with FFmpeg's reason
        let loaded = reportingErrors { try DefaultModel.load(model) }
        let detector = reportingErrors { try precision.makeDetector(model: loaded) }
        let preparer = InputPreparer(model: loaded.description)
        var failures = 0
        for (index, path) in images.enumerated() {
            let image: BGRImage
            do {
                image = try ImageDecoder.decodeFirstFrame(path: path, maxPixels: maxFramePixels)
                try preparer.prepare(image, into: detector.input)
            } catch {
                FileHandle.standardError.write(Data("netnet: \(error)\n".utf8))
                failures += 1
                continue
            }
            detector.forward()
            if let directory = dumpHeads, index == images.count - 1 {
                reportingErrors { try dumpHeads(detector, to: directory) }
            }
            let found = detector.detections(threshold: threshold, imageWidth: image.width, imageHeight: image.height)
            var object = JSONObject()
            object.add("file", path)
            object.add("width", image.width)
            object.add("height", image.height)
            object.add("detections", found)
            print(object.text)
        }
        if failures > 0 { throw ExitCode(1) }
    }

    private func dumpHeads(_ detector: Detector, to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let size = detector.plan.description.inputSize
        let priors = detector.plan.priorCount
        try NumpyFile.write(UnsafeBufferPointer(start: detector.input, count: 3 * size * size), shape: [1, 3, size, size],
                            to: "\(directory)/input.npy")
        try NumpyFile.write(detector.locationOutput, shape: [priors, 4], to: "\(directory)/loc.npy")
        try NumpyFile.write(detector.confidenceOutput, shape: [priors, detector.plan.description.scoreCount], to: "\(directory)/conf.npy")
    }
}
