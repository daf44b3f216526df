import ArgumentParser
import NetnetScene

/// `netnet scene`: tools for scene files (docs/scenes.md).
struct SceneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scene",
        abstract: "Check scene files (lines, zones, masks) against video and tracks.",
        subcommands: [SceneDrawCommand.self, SceneCountCommand.self])
}

/// The scene file at `path`, parsed; a missing, unreadable or broken file is a `SceneError`
/// naming it (`file: no such scene file`, `file:line: …`), shared by `annotate` and `scene draw`. Any thread.
func loadSceneFile(_ path: String) throws -> Scene {
    let text: String
    do {
        text = try SceneParser.read(path)
    } catch {
        let message = switch error {
        case .missing: "no such scene file"
        case .notRegular: "not a regular file"
        case .unreadable: "cannot read it"
        case .notText: "not UTF-8 text"
        }
        throw SceneError(file: path, line: nil, message: message)
    }
    return try SceneParser.parse(text, file: path)
}
