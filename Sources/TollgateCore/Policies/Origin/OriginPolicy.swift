/// Checks that a call comes from the site's own pages, as a browser reports it.
///
/// These headers are set by browsers and cannot be forged by another site's page, but any other
/// client (curl, a script) can send whatever it likes: this stops other websites from using the API
/// through their visitors' browsers, not scripts. Page tokens, challenges and limits deal with those.
public struct OriginPolicy: Policy {
    public struct Config: Sendable, Equatable {
        /// Allowed origins, exactly as browsers send them: `https://example.com`, `http://127.0.0.1:8080`.
        public var allow: [String]
        /// Accept `Sec-Fetch-Site: same-site` as well as `same-origin`.
        public var allowSameSite: Bool
        /// When a request has none of Origin, Sec-Fetch-Site and Referer: refuse (the default) or allow.
        public var allowWhenAbsent: Bool
    }

    public let kind = RouteConfig.PolicyKind.origin
    let config: Config

    public init(config: Config) { self.config = config }

    public func evaluate(_ request: inout RequestView) -> Decision {
        let origin = request.header("origin")
        let fetchSite = request.header("sec-fetch-site")?.lowercased()
        if let origin {
            guard config.allow.contains(origin) else { return refuse("origin-not-allowed") }
        }
        if let fetchSite {
            let ok = fetchSite == "same-origin" || (config.allowSameSite && fetchSite == "same-site")
            guard ok else { return refuse("cross-site") }
        }
        if origin == nil, fetchSite == nil {
            if let referer = request.header("referer") {
                guard let refOrigin = Self.origin(ofURL: referer), config.allow.contains(refOrigin) else {
                    return refuse("referer-not-allowed")
                }
            } else if !config.allowWhenAbsent {
                return refuse("no-origin")
            }
        }
        return .pass
    }

    private func refuse(_ reason: String) -> Decision {
        .reject(Problem(status: 403, code: "origin", title: "Forbidden",
                        detail: "This API can only be called from its own site's pages.",
                        extensions: [JSONMember("reason", .string(reason))]))
    }

    /// `scheme://host[:port]` of an absolute URL, lower-cased scheme and host.
    static func origin(ofURL url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        return "\(scheme)://\(authority.lowercased())"
    }
}
