/// An upstream URL template: `https://api.example/v2/places/{id}?v=2`. `{name}` placeholders in the
/// path are filled with percent-encoded parameter values.
public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
    public var isTLS: Bool
    public var host: String
    public var port: Int
    /// Path with `{name}` placeholders, e.g. `/v2/places/{id}`.
    public var pathTemplate: String
    /// Query text fixed in the URL (without `?`), kept as written.
    public var staticQuery: String
    public var description: String

    /// `Host` header value: the port is omitted when it is the scheme's default.
    public var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return (isTLS && port == 443) || (!isTLS && port == 80) ? h : "\(h):\(port)"
    }

    /// Names used in `{…}` placeholders.
    public var placeholders: [String] {
        var names: [String] = []
        var rest = Substring(pathTemplate)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            names.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return names
    }

    public enum ParseError: Error, Equatable { case scheme, host, port, userInfo, fragment }

    public init(_ text: String) throws(ParseError) {
        description = text
        var rest: Substring
        if text.hasPrefix("https://") {
            isTLS = true
            rest = text.dropFirst(8)
        } else if text.hasPrefix("http://") {
            isTLS = false
            rest = text.dropFirst(7)
        } else {
            throw .scheme
        }
        guard !rest.contains("#") else { throw .fragment }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.contains("@") else { throw .userInfo }
        rest = rest[authorityEnd...]
        var hostPart = authority
        var port = isTLS ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .host }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw .port }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { throw .port }
            port = p
        }
        guard !hostPart.isEmpty else { throw .host }
        host = String(hostPart)
        self.port = port
        if let q = rest.firstIndex(of: "?") {
            pathTemplate = String(rest[..<q])
            staticQuery = String(rest[rest.index(after: q)...])
        } else {
            pathTemplate = String(rest)
            staticQuery = ""
        }
        if pathTemplate.isEmpty { pathTemplate = "/" }
    }
}
