import Foundation

/// The address of a delivery sink's URL (`mqtt(s)://` or `http(s)://`), checked alike for a
/// `[sink NAME]` section and for `annotate --sink`: a scheme of the allowed set, a host, a port in
/// 1-65535 if one is given, and no password (a password lives in `password_file`). Value type.
public struct SinkAddress: Sendable, Equatable {
    /// Why a URL is not a usable sink address. Callers word the message for their own input.
    public enum Problem: Error, Equatable, Sendable {
        /// Not a URL, or no host.
        case notURLWithHost
        /// A scheme outside the allowed set (lowercased).
        case scheme(String)
        /// A port outside 1-65535.
        case port(Int)
        /// A password written into the URL.
        case password
    }

    /// The parsed URL.
    public let components: URLComponents
    /// The scheme, lowercased.
    public let scheme: String
    /// The host, never empty.
    public let host: String

    /// Checks `url` against `schemes` (lowercase names). Throws the first problem found, in the
    /// order of the cases. Pure.
    public init(_ url: String, schemes: Set<String>) throws(Problem) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              let host = components.host, !host.isEmpty else { throw .notURLWithHost }
        guard schemes.contains(scheme) else { throw .scheme(scheme) }
        if let port = components.port, !(1...65535).contains(port) { throw .port(port) }
        if components.password != nil { throw .password }
        self.components = components
        self.scheme = scheme
        self.host = host
    }
}
