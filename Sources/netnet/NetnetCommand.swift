import ArgumentParser
import Foundation

/// The `netnet` command: object detection on images and video with NETNet.
@main
struct NetnetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "netnet",
        abstract: "Video object detection with NETNet (SSD + Neighbor Erasing and Transferring) on the CPU.",
        discussion: """
            Models are safetensors files (docs/model-format.md). Without --model the bundled default \
            model is used; `netnet model info` says what it is.
            """,
        version: NetnetVersion.string,
        subcommands: [AnnotateCommand.self, ServeCommand.self, DetectCommand.self, ModelCommand.self, BenchCommand.self, ParityCommand.self])
}

/// The program's version, printed by `--version`.
enum NetnetVersion {
    static let string = "0.1.0"
}

/// A runtime failure the CLI reports as one line on standard error with exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints `netnet: message` on standard error and exits with `code`.
func exitWithError(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("netnet: \(message)\n".utf8))
    exit(code)
}

/// Runs `body`, turning any thrown error into one line on standard error and exit status 1.
func reportingErrors<T>(_ body: () throws -> T) -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        exit(error.rawValue)
    } catch {
        exitWithError("\(error)")
    }
}
