/// Builds a route's policy chain: one builder per policy kind, chosen by an exhaustive switch, so a
/// new kind cannot be added without saying how it is built.
///
/// Fails closed: a builder returns nil only when the route does not use its policy, and throws when
/// the route requires the policy but the gateway-wide part it needs (`page_tokens`, `challenge`,
/// `captcha`) is missing. A route never runs with a required check silently left out; the config
/// loader reports the same case as a config error first.
enum PolicyRegistry {
    static func chain(for config: RouteConfig, shared: Route.Shared) throws(RouteWiringError) -> [any Policy] {
        var chain: [any Policy] = []
        for kind in config.policyOrder {
            if let policy = try build(kind, for: config, shared: shared) { chain.append(policy) }
        }
        return chain
    }

    static func build(_ kind: RouteConfig.PolicyKind, for config: RouteConfig,
                      shared: Route.Shared) throws(RouteWiringError) -> (any Policy)? {
        switch kind {
        case .validation:
            return ValidationPolicy(specs: config.params)
        case .rateLimit:
            guard !config.limits.isEmpty else { return nil }
            return RateLimitPolicy(limits: config.limits.map { shared.limiters.bind($0, route: config.name) }, sessionCookie: shared.pageTokens?.config.cookie)
        case .origin:
            return config.origin.map { OriginPolicy(config: $0) }
        case .pageToken:
            guard config.requiresPageToken else { return nil }
            guard let tokens = shared.pageTokens else { throw RouteWiringError(route: config.name, kind: kind, missing: "page_tokens") }
            return PageTokenPolicy(tokens: tokens)
        case .captcha:
            guard config.requiresCaptcha else { return nil }
            guard let captcha = shared.captcha else { throw RouteWiringError(route: config.name, kind: kind, missing: "captcha") }
            return CaptchaPolicy(config: captcha.config, secretValue: captcha.secret,
                                 sessionCookie: shared.pageTokens?.config.cookie, passes: captcha.passes)
        case .auth:
            guard let auth = config.auth else { return nil }
            let services = shared.identity
            if auth.acceptsKeys, services.keys == nil { throw RouteWiringError(route: config.name, kind: kind, missing: "identity.key_hash_secret") }
            if auth.anyOf.contains(.jwt), services.jwt == nil { throw RouteWiringError(route: config.name, kind: kind, missing: "identity.jwt") }
            return AuthPolicy(config: auth, route: config.name, services: services)
        case .owner:
            return config.owner.map { OwnerPolicy(rule: $0) }
        case .emailAddress:
            guard case .sendVerification = config.target else { return nil }
            guard let services = shared.verification else { throw RouteWiringError(route: config.name, kind: kind, missing: "verification") }
            return EmailAddressPolicy(services: services)
        case .verifiedEmail:
            guard config.requiresVerifiedEmail else { return nil }
            guard let services = shared.verification else { throw RouteWiringError(route: config.name, kind: kind, missing: "verification") }
            return VerifiedEmailPolicy(services: services)
        case .challenge:
            guard let (when, rate) = config.challenge else { return nil }
            guard let pow = shared.proofOfWork else { throw RouteWiringError(route: config.name, kind: kind, missing: "challenge") }
            return ChallengePolicy(pow: pow, when: when, softRate: rate, route: config.name)
        }
    }
}

/// A route requires a policy whose gateway-wide part is not configured (or its secret is missing).
public struct RouteWiringError: Error, CustomStringConvertible {
    public let route: String
    public let kind: RouteConfig.PolicyKind
    /// The top-level key that is missing.
    public let missing: String

    public var description: String {
        "route \(route) requires \(kind.rawValue), but there is no usable top-level \(missing)"
    }
}
