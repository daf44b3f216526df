import Hummingbird
import NetnetDaemon

/// A stream id taken from a request (the `:id` path segment or `?stream=`), percent-decoded and
/// checked against the id grammar before any lookup, so malformed escapes are a `400` and an id
/// no configuration can hold (a `/`, a NUL, 5000 bytes) is a `404` that echoes nothing back.
/// Any thread.
enum StreamIDArgument {
    /// The stream id in `raw` (still percent-encoded, as the router hands it over), or the
    /// problem response to send instead. `isKnown` says whether a stream has that id.
    static func resolve(_ raw: String, isKnown: (String) -> Bool) -> Result<String, ProblemResponse> {
        guard let id = percentDecoded(raw) else {
            return .failure(ProblemResponse(.badRequest, "malformed percent-encoding in the stream id"))
        }
        guard ConfigParser.isValidID(id) else {
            return .failure(ProblemResponse(.notFound, "no such stream: stream ids are 1 to 64 characters of A-Z a-z 0-9 _ . -"))
        }
        guard isKnown(id) else { return .failure(ProblemResponse(.notFound, "no stream '\(id)'")) }
        return .success(id)
    }

    /// The first value of `name` in a raw query string (`a=1&stream=x`), still encoded; nil when absent.
    static func rawQueryValue(_ name: String, in query: String?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts[0] == name { return parts.count > 1 ? String(parts[1]) : "" }
        }
        return nil
    }

    /// `text` with `%XX` escapes (and `+` as a space, as forms send it in queries) decoded; nil
    /// when an escape is not two hex digits or the result is not UTF-8.
    static func percentDecoded(_ text: String, plusIsSpace: Bool = false) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// A problem+json answer not yet turned into a `Response` (so it can travel in a `Result`).
/// Value type; any thread.
struct ProblemResponse: Error {
    let status: HTTPResponse.Status
    let detail: String

    init(_ status: HTTPResponse.Status, _ detail: String) {
        self.status = status
        self.detail = detail
    }

    /// The response to send.
    var response: Response { Problem.response(status, detail: detail) }
}

extension Problem {
    /// The most of a client's own text (a path) a problem's `detail` repeats.
    static let echoLimit = 80

    /// `text` cut to `echoLimit` characters with `…` after a cut, so a hostile client cannot
    /// have 8 KiB of its own bytes reflected back. Pure.
    static func echo(_ text: String) -> String {
        text.count <= echoLimit ? text : String(text.prefix(echoLimit)) + "…"
    }
}
