import ArgumentParser

/// `netnet scene`: tools for scene files (docs/scenes.md).
struct SceneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scene",
        abstract: "Check scene files (lines, zones, masks) against video and tracks.",
        subcommands: [SceneCountCommand.self])
}
