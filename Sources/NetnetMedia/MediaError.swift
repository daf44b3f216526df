import CFFmpeg

/// Errors with a message naming what failed and where (the path/URL), suitable for a one-line CLI error.
///
/// `description` reads like FFmpeg's own CLI messages, e.g. `"/x/y.jpg: No such file or directory"`.
/// `code` is the FFmpeg (negative AVERROR) code that caused it, or 0 when the failure was detected
/// by netnet itself (bad argument, unsupported extension, …). A plain value: safe on any thread.
public struct MediaError: Error, CustomStringConvertible, Sendable {
    /// One-line, human-readable message naming what failed and where.
    public let description: String
    /// FFmpeg error code (negative AVERROR value) or 0.
    public let code: Int32

    /// Creates an error with the given message and FFmpeg code (0 when none). Any thread.
    public init(_ description: String, code: Int32 = 0) {
        self.description = description
        self.code = code
    }

    /// What kind of failure this is, for callers that act on it (a stream reconnects after
    /// `timedOut` as a stall, stops quietly after `interrupted`). Decided from `code`, never from
    /// the message. Value type.
    public enum Kind: Sendable, Equatable {
        /// An open or read took longer than its timeout (AVERROR(ETIMEDOUT)).
        case timedOut
        /// An `Interrupter` cut an open or read short (AVERROR_EXIT): a stop was asked for.
        case interrupted
        /// The input ended (AVERROR_EOF) where more was needed.
        case endOfFile
        /// A frame over the `maxFramePixels` limit (AVERROR(ERANGE)).
        case frameTooLarge
        /// Any other FFmpeg error, with its (negative) code.
        case ffmpeg(Int32)
        /// Found by netnet itself, no FFmpeg code.
        case netnet
    }

    /// The kind of failure, from `code`. Any thread.
    public var kind: Kind {
        switch code {
        case 0: return .netnet
        case netnet_averror_etimedout(): return .timedOut
        case netnet_averror_exit(): return .interrupted
        case netnet_averror_eof(): return .endOfFile
        case netnet_averror_erange(): return .frameTooLarge
        default: return .ffmpeg(code)
        }
    }

    /// FFmpeg's text for an error code (av_strerror), e.g. "Invalid data found when processing input".
    /// Any thread.
    public static func ffmpegMessage(for code: Int32) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
            let base = buffer.baseAddress!
            base.initialize(to: 0)
            _ = netnet_strerror(code, base, buffer.count)   // always writes a NUL-terminated text
            return String(cString: base)
        }
    }

    /// "`subject`: `what`: <FFmpeg text>" (or "`subject`: <FFmpeg text>" when `what` is empty).
    static func ffmpeg(_ code: Int32, _ subject: String, _ what: String = "") -> MediaError {
        let text = ffmpegMessage(for: code)
        return MediaError(what.isEmpty ? "\(subject): \(text)" : "\(subject): \(what): \(text)", code: code)
    }
}

/// Throws a `MediaError` for a negative FFmpeg return code; returns the code otherwise.
@discardableResult
@inline(__always)
func check(_ ret: Int32, _ subject: @autoclosure () -> String, _ what: @autoclosure () -> String = "") throws -> Int32 {
    if ret < 0 { throw MediaError.ffmpeg(ret, subject(), what()) }
    return ret
}

/// FFmpeg error codes that are macros in C (re-exposed through the shim).
enum AVError {
    static let eagain = netnet_averror_eagain()
    static let eof = netnet_averror_eof()
    static let enomem = netnet_averror_enomem()
    static let einval = netnet_averror_einval()
    static let invalidData = netnet_averror_invaliddata()
    static let decoderNotFound = netnet_averror_decoder_not_found()
    static let encoderNotFound = netnet_averror_encoder_not_found()
    static let streamNotFound = netnet_averror_stream_not_found()
}

/// Process-wide FFmpeg log verbosity (av_log_set_level). FFmpeg keeps one global level, so set it
/// once at start-up (any thread; the call itself is atomic, but it affects every thread's logging).
public enum FFmpegLog {
    /// Verbosity levels, quietest first.
    public enum Level: Sendable, CaseIterable {
        /// Nothing at all.
        case quiet
        /// Only errors that make FFmpeg abort the whole operation.
        case panic
        /// Errors (e.g. corrupt packets it skipped).
        case error
        /// Errors and warnings.
        case warning
        /// FFmpeg's default.
        case info
        /// Very chatty.
        case debug

        var ffmpegValue: Int32 {
            switch self {
            case .quiet: return AV_LOG_QUIET
            case .panic: return AV_LOG_PANIC
            case .error: return AV_LOG_ERROR
            case .warning: return AV_LOG_WARNING
            case .info: return AV_LOG_INFO
            case .debug: return AV_LOG_DEBUG
            }
        }
    }

    /// Only errors get logged (AV_LOG_ERROR): hides FFmpeg's banner-level chatter and warnings
    /// such as swscale's alignment notes. Any thread; global.
    public static func setQuiet() {
        setLevel(.error)
    }

    /// Sets FFmpeg's global log level. Any thread; global.
    public static func setLevel(_ level: Level) {
        av_log_set_level(level.ffmpegValue)
    }
}

/// Options given for an input (`VideoSourceOptions.formatOptions`, `--input-option`,
/// `input_options`) that FFmpeg did not take: after `avformat_open_input` they were still in its
/// options dictionary, so neither the format context, the demuxer nor the protocol has an option of
/// that name. FFmpeg ignores such keys; netnet refuses them, so a misspelt or outdated option
/// (`stimeout`, gone from FFmpeg 5) is not silently dropped. Value type; any thread.
public struct InputOptionError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The input as shown in messages (credentials masked).
    public let input: String
    /// The keys FFmpeg left unused, sorted.
    public let keys: [String]
    /// FFmpeg's side of it: which demuxer and protocol were asked, e.g.
    /// `no option of that name in the avi demuxer or the file protocol`.
    public let explanation: String

    /// An error for `keys` of `input`, opened by `demuxer` over `protocolName` (nil: none). Any thread.
    public init(input: String, keys: [String], demuxer: String, protocolName: String?) {
        self.input = input
        self.keys = keys
        let asked = protocolName.map { "the \(demuxer) demuxer or the \($0) protocol" } ?? "the \(demuxer) demuxer"
        explanation = "no option of that name in the format context, \(asked)"
    }

    /// `KEY[, KEY…]: not an option of this input (FFmpeg: …)`, without the input's name: for a
    /// caller that names where the keys came from (`--input-option foo: …`).
    public var keysLine: String {
        "\(keys.joined(separator: ", ")): not \(keys.count == 1 ? "an option" : "options") of this input (FFmpeg: \(explanation))"
    }

    /// `INPUT: input option KEY: not an option of this input (FFmpeg: …)`.
    public var description: String {
        "\(input): input option \(keysLine)"
    }
}
