import Foundation

/// Keeps credentials out of everything netnet shows (logs, errors, status lines, the API): a
/// URL's password becomes `***` (`rtsp://admin:***@cam/…`; userinfo without a password, which
/// may be a token, becomes `***@`), so does the value of a query parameter that names a secret
/// (`?password=***`, `token`, `key`, `signature`, …), and so does every secret registered here
/// (passwords read from `password_file`s), wherever it appears, as written or percent-encoded.
/// Any thread: the registry is guarded by a lock.
public enum Redaction {
    /// What replaces a secret.
    public static let mask = "***"

    /// Query parameter names whose values are secrets (compared case-insensitively).
    public static let secretParameters: Set<String> = [
        "password", "passwd", "pass", "pwd", "token", "access_token", "auth", "authorization", "key", "apikey",
        "api_key", "secret", "client_secret", "signature", "sig", "credential", "credentials", "session",
    ]

    private static let registry = SecretRegistry()

    /// Adds `secret` to the strings hidden everywhere (and its percent-encoded form). Secrets
    /// shorter than 3 characters are not registered: masking them would garble ordinary text.
    public static func register(secret: String) {
        guard secret.count >= 3 else { return }
        var forms = [secret]
        if let encoded = secret.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed), encoded != secret { forms.append(encoded) }
        registry.add(forms)
    }

    /// `text` with every URL's password and secret query values masked, and every registered
    /// secret replaced. Pure apart from reading the registry.
    public static func redact(_ text: String) -> String {
        var out = text.contains("://") || text.contains("?") || text.contains("&") ? redactURLs(in: text) : text
        for secret in registry.secrets where out.contains(secret) {
            out = out.replacingOccurrences(of: secret, with: mask)
        }
        return out
    }

    /// The userinfo and query masking of `redact`, without the registry.
    static func redactURLs(in text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        var rest = Substring(text)
        // Userinfo: "scheme://USERINFO@" where USERINFO has no '/', '@' or blank.
        while let marker = rest.range(of: "://") {
            result += rest[..<marker.upperBound]
            rest = rest[marker.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" || $0.isWhitespace || $0 == "\"" || $0 == "'" } ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@") {
                let userinfo = rest[..<at]
                if let colon = userinfo.firstIndex(of: ":") {
                    result += userinfo[..<colon] + ":" + mask
                } else {
                    result += mask
                }
                rest = rest[at...]
            }
        }
        result += rest
        return redactQueryValues(in: result)
    }

    /// Masks `NAME=VALUE` after `?` or `&` when NAME names a secret.
    static func redactQueryValues(in text: String) -> String {
        guard text.contains("=") else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count)
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            result.append(character)
            index = text.index(after: index)
            guard character == "?" || character == "&" else { continue }
            let nameEnd = text[index...].firstIndex { !($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") } ?? text.endIndex
            guard nameEnd < text.endIndex, text[nameEnd] == "=", secretParameters.contains(text[index..<nameEnd].lowercased()) else { continue }
            result += text[index...nameEnd]
            result += mask
            // The value ends where a URL's query would, or at a ':' (an error message's "URL: reason").
            index = text[text.index(after: nameEnd)...].firstIndex { $0 == "&" || $0 == "#" || $0 == ":" || $0.isWhitespace || $0 == "\"" || $0 == "'" } ?? text.endIndex
        }
        return result
    }
}

/// The registered secrets, longest first (so a secret containing another is masked whole).
private final class SecretRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String] = []

    func add(_ forms: [String]) {
        lock.lock(); defer { lock.unlock() }
        for form in forms where !values.contains(form) { values.append(form) }
        values.sort { $0.count > $1.count }
    }

    var secrets: [String] {
        lock.lock(); defer { lock.unlock() }
        return values
    }
}
