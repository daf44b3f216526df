import Foundation
import NetnetEngine

/// Finds the bundled default model: `$NETNET_MODEL`, then `share/netnet/default.safetensors`
/// beside an installed binary, then `models/default.safetensors` of the source tree the binary
/// was built in (`.build/<config>/netnet` → `../../models`).
enum DefaultModel {
    static let fileName = "default.safetensors"

    static func path() throws -> String {
        if let configured = ProcessInfo.processInfo.environment["NETNET_MODEL"], !configured.isEmpty {
            return configured
        }
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let resolved = URL(fileURLWithPath: binary).resolvingSymlinksInPath()
        let binDir = resolved.deletingLastPathComponent()
        let candidates = [
            binDir.appendingPathComponent("../share/netnet/\(fileName)"),
            binDir.appendingPathComponent("../../models/\(fileName)"),
            binDir.appendingPathComponent("../../../models/\(fileName)"),
        ]
        for candidate in candidates where FileManager.default.fileExists(atPath: candidate.standardized.path) {
            return candidate.standardized.path
        }
        throw CommandFailure("no --model given and no default model found (looked for $NETNET_MODEL, \(candidates.map(\.standardized.path).joined(separator: ", ")))")
    }

    /// Loads `explicit` or the default model, telling standard error which model runs.
    static func load(_ explicit: String?, quiet: Bool = false) throws -> Model {
        let path = try explicit ?? path()
        let model = try Model(path: path)
        if !quiet {
            let d = model.description
            let note = explicit == nil ? "default model" : "model"
            var line = "netnet: \(note) \(path): \(d.network.rawValue) width \(ModelDescription.formatWidth(d.width)), \(d.classes.count) classes"
            if let text = d.text { line += " (\(TerminalText.escaped(text)))" }
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        return model
    }
}
