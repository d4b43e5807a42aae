/// Reads the parts of `tls:` beyond the certificate files: `hsts`, `redirect_http` and `http2`.
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

    /// `http2: true` (the defaults), `http2: false` (HTTP/1.1 only), or
    /// `http2: { max_concurrent_streams: 100, max_header_list_size: 16KiB }`. Returns `.some(nil)`
    /// for off, nil for an error.
    static func http2(_ node: ConfigNode) -> HTTP2Limits?? {
        if case .scalar = node.node {
            guard let on = node.bool() else { return nil }
            return on ? HTTP2Limits() : .some(nil)
        }
        guard let keys = node.object(allowed: ["max_concurrent_streams", "max_header_list_size"]) else { return nil }
        var limits = HTTP2Limits()
        if let node = keys["max_concurrent_streams"], let n = node.int(min: 1) {
            if n > 1000 { node.error("must be at most 1000 (each stream can hold an upstream call)") } else { limits.maxConcurrentStreams = n }
        }
        if let node = keys["max_header_list_size"], let size = node.byteSize() {
            if size < 1024 || size > 1 << 20 { node.error("must be between 1KiB and 1MiB") } else { limits.maxHeaderListSize = size }
        }
        return limits
    }
}
