import Foundation

/// Why a scene file could not be read (before parsing). Callers word their own message. Value type.
public enum SceneFileProblem: Error, Equatable, Sendable {
    /// Nothing at the path.
    case missing
    /// Not a regular file (a FIFO or device would block the read forever; a directory).
    case notRegular
    /// The read failed.
    case unreadable
    /// Not UTF-8 text.
    case notText
}

extension SceneParser {
    /// The text of the scene file at `path`, refusing anything but a readable regular UTF-8 file
    /// without blocking on it. Any thread.
    public static func read(_ path: String) throws(SceneFileProblem) -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw .missing }
        guard (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeRegular else {
            throw .notRegular
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable }
        guard let text = String(data: data, encoding: .utf8) else { throw .notText }
        return text
    }
}
