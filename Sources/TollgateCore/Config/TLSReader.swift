/// Reads the parts of `tls:` beyond the certificate files: `hsts` and `redirect_http`.
enum TLSReader {
    /// `hsts: { max_age: 365d, include_subdomains: true, preload: false }`, or `hsts: false` (off).
    /// Returns `.some(nil)` for off, nil for an error.
    static func hsts(_ node: ConfigNode) -> HSTS?? {
        if case .scalar = node.node, let on = node.bool() {
            if on { node.error("must be false (off) or a mapping such as { max_age: 365d, include_subdomains: true }") }
            return .some(nil)
        }
        guard let keys = node.object(allowed: ["max_age", "include_subdomains", "preload"]) else { return nil }
        let maxAge = keys["max_age"].flatMap { $0.duration() } ?? .seconds(365 * 86_400)
        let sub = keys["include_subdomains"].flatMap { $0.bool() } ?? true
        let preload = keys["preload"].flatMap { $0.bool() } ?? false
        if preload, !sub || maxAge < .seconds(365 * 86_400) {
            node.error("preload needs include_subdomains: true and max_age of at least 365d (the browsers' preload list requires both)")
        }
        if maxAge < .zero { keys["max_age"]?.error("must not be negative") }
        return HSTS(maxAge: maxAge, includeSubdomains: sub, preload: preload)
    }

    /// `redirect_http: 0.0.0.0:80`.
    static func listener(_ node: ConfigNode) -> HostPort? {
        guard let text = node.string() else { return nil }
        guard let hp = HostPort(text) else {
            node.error("must be host:port, e.g. 0.0.0.0:80")
            return nil
        }
        return hp
    }
}
