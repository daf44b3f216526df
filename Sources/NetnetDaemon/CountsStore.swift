import Foundation
import NetnetPipeline
import NetnetScene

/// `serve`'s scene counts on disk, so that a restart goes on counting (docs/scenes.md, "Counts"):
/// one `netnet.counts/1` document per stream with a scene, `STATE/counts/ID.json`, replaced
/// atomically (`AtomicFile`) at most once a second while its counts change and once more when
/// the daemon stops. After SIGKILL, what changed in the last second before it is lost; a torn or
/// corrupt file is reported, renamed `ID.json.corrupt-STAMP` and counting starts from zero. Any
/// thread: `save` and `load` serialise on one lock (the saver thread and reloads call them).
public final class CountsStore: @unchecked Sendable {
    /// The folder of the counts files (`STATE/counts`).
    public let directory: String
    private let log: DaemonLog
    private let descriptors: DescriptorSpares?
    private let lock = NSLock()
    private var saved: [String: SceneCounts] = [:]
    private var failures: [String: String] = [:]

    /// Largest counts file read back (a real one is a few KB): a bigger one is not ours.
    static let maxFileBytes = 1 << 20

    /// The store under `stateDirectory`, whose `counts` folder is created (mode 0750) if missing.
    /// Throws one line naming the folder when it cannot be created or is not a folder.
    /// `descriptors` makes a save wait for descriptor room (it is retried the next second).
    public init(stateDirectory: String, log: DaemonLog, descriptors: DescriptorSpares? = nil) throws {
        directory = (stateDirectory.hasSuffix("/") ? String(stateDirectory.dropLast()) : stateDirectory) + "/counts"
        self.log = log
        self.descriptors = descriptors
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o750])
        } catch {
            throw ConfigError(file: directory, line: nil, message: "cannot create the counts folder: \(Self.reason(error))")
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder), isFolder.boolValue else {
            throw ConfigError(file: directory, line: nil, message: "not a folder")
        }
    }

    /// The state directory a configuration uses: its `state_directory`, else the first folder of
    /// `$STATE_DIRECTORY` (which systemd's `StateDirectory=` sets), else nil (counts are kept in
    /// memory only). Pure.
    public static func stateDirectory(config: DaemonConfig, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let configured = config.stateDirectory { return configured }
        guard let fromSystemd = environment["STATE_DIRECTORY"]?.split(separator: ":").first, !fromSystemd.isEmpty else { return nil }
        return String(fromSystemd)
    }

    /// The counts file of stream `id`.
    public func path(stream id: String) -> String { "\(directory)/\(id).json" }

    /// The counts kept for stream `id`, taken on under `scene` (`SceneCounts.carried(to:)`), or nil
    /// when there is no file. A file that is not a counts document of this stream is renamed
    /// aside with a warning and nil returned; one that cannot be read is left alone, with a warning.
    public func load(stream id: String, scene: Scene) -> SceneCounts? {
        lock.lock(); defer { lock.unlock() }
        let file = path(stream: id)
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        guard let handle = FileHandle(forReadingAtPath: file) else {
            log.warning("stream \(id): counts file \(file): cannot read it; counting from zero (and it will be replaced)")
            return nil
        }
        defer { try? handle.close() }
        let data: Data
        do { data = try handle.read(upToCount: Self.maxFileBytes + 1) ?? Data() } catch {
            log.warning("stream \(id): counts file \(file): cannot read it: \(Self.reason(error)); counting from zero")
            return nil
        }
        let problem: String
        if data.count > Self.maxFileBytes {
            problem = "larger than \(Self.maxFileBytes) bytes"
        } else {
            do {
                let (stream, counts) = try CountsDocument.parse([UInt8](data))
                if stream == id {
                    let kept = counts.carried(to: scene)
                    saved[id] = kept
                    return kept
                }
                problem = "it is stream \"\(stream)\"'s"
            } catch {
                problem = error.reason
            }
        }
        let aside = file + ".corrupt-" + Self.stamp()
        if rename(file, aside) == 0 {
            log.warning("stream \(id): counts file \(file): \(problem); renamed to \(aside), counting from zero")
        } else {
            log.warning("stream \(id): counts file \(file): \(problem); cannot rename it aside (\(String(cString: strerror(errno)))), counting from zero")
        }
        return nil
    }

    /// Writes stream `id`'s counts unless they are what was last written. A failure is logged
    /// once until the next success (and retried on the next call); nothing is thrown.
    public func save(stream id: String, scene: String?, counts: SceneCounts) {
        lock.lock(); defer { lock.unlock() }
        if saved[id] == counts { return }
        if let descriptors, !descriptors.mayOpen() { return }
        let bytes = CountsDocument.render(stream: id, scene: scene, counts: counts, frames: nil, timeNanoseconds: WallClock.nowNanoseconds())
        do {
            try AtomicFile.write(bytes, to: path(stream: id))
            saved[id] = counts
            if failures.removeValue(forKey: id) != nil { log.info("stream \(id): counts written again to \(path(stream: id))") }
        } catch {
            if error.code == EMFILE || error.code == ENFILE { descriptors?.relieve() }
            let message = error.description
            if failures[id] != message {
                failures[id] = message
                log.warning("stream \(id): counts: \(message); retrying every second")
            }
        }
    }

    private static func stamp() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: Date())
    }

    private static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}
