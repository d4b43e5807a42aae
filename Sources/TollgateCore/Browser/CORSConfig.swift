/// Cross-origin access to a route (`routes[i].cors`): which other sites' pages may call it from a
/// browser. Never reflects an origin that is not listed; `*` cannot be combined with credentials.
public struct CORSConfig: Sendable, Equatable {
    /// Allowed origins; `*` for any (without credentials); `null` only if listed.
    public var origins: [String]
    public var methods: [String]
    /// Request headers a page may send (lower-cased).
    public var headers: [String]
    public var credentials: Bool
    public var maxAge: Int

    public func allows(origin: String) -> Bool {
        origins.contains(origin) || (origins.contains("*") && origin != "null")
    }

    /// Headers for a response to a request from `origin` (none when the origin is not allowed).
    public func responseHeaders(origin: String?) -> [(String, String)] {
        guard let origin, allows(origin: origin) else { return origin == nil ? [] : [("Vary", "Origin")] }
        var out: [(String, String)] = [("Access-Control-Allow-Origin", origins.contains(origin) || credentials ? origin : "*"),
                                       ("Vary", "Origin")]
        if credentials { out.append(("Access-Control-Allow-Credentials", "true")) }
        return out
    }

    /// Shadow mode: the headers that grant `origin` what it asked for, for a request or preflight
    /// the rules refuse (credentials only if the route allows them).
    public func grantAsAsked(origin: String, method: String? = nil, requestHeaders: String? = nil) -> [(String, String)] {
        var out: [(String, String)] = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if credentials { out.append(("Access-Control-Allow-Credentials", "true")) }
        if let method {
            let methods = methods.contains(method.uppercased()) ? methods : methods + [method.uppercased()]
            out.append(("Access-Control-Allow-Methods", methods.joined(separator: ", ")))
            if let requestHeaders, !requestHeaders.isEmpty { out.append(("Access-Control-Allow-Headers", requestHeaders)) }
            out.append(("Access-Control-Max-Age", "0"))
        }
        return out
    }

    /// The answer to a preflight, or nil when it must be refused.
    public func preflight(origin: String?, method: String?, requestHeaders: String?) -> [(String, String)]? {
        guard let origin, allows(origin: origin), let method, methods.contains(method.uppercased()) else { return nil }
        let asked = (requestHeaders ?? "").split(separator: ",").map { $0.trimmingWhitespace().lowercased() }.filter { !$0.isEmpty }
        guard asked.allSatisfy({ headers.contains($0) }) else { return nil }
        var out = responseHeaders(origin: origin)
        out.append(("Access-Control-Allow-Methods", methods.joined(separator: ", ")))
        if !headers.isEmpty { out.append(("Access-Control-Allow-Headers", headers.joined(separator: ", "))) }
        out.append(("Access-Control-Max-Age", String(maxAge)))
        return out
    }
}
