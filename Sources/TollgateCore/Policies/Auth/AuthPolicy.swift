/// Authenticates the caller (`auth.any_of`) and checks it may use the route (scopes, roles, the
/// key's route list); on success sets ``RequestView/caller``.
///
/// 401 when no accepted credential is presented or it does not verify; 403 when it verifies but
/// does not grant what the route needs. A key is taken from the first configured source that
/// carries one; a bearer value with a Tollgate key prefix is a key, any other bearer value a JWT.
public struct AuthPolicy: Policy {
    public let kind = RouteConfig.PolicyKind.auth
    public let config: AuthConfig
    public let route: String
    let services: IdentityServices

    public init(config: AuthConfig, route: String, services: IdentityServices) {
        self.config = config
        self.route = route
        self.services = services
    }

    public func evaluate(_ request: inout RequestView) -> Decision {
        let bearer = config.acceptsBearer
        let now = request.wallMillis / 1000
        let caller: Caller
        switch credential(request) {
        case .none:
            return .reject(.unauthenticated(bearer: bearer))
        case .key(let text):
            guard let keys = services.keys else { return .reject(.invalidCredentials(bearer: bearer)) }
            switch keys.check(text, now: now) {
            case .invalid:
                return .reject(.invalidCredentials(bearer: bearer))
            case .lapsed(_, let status):
                return .reject(.keyLapsed(status, help: services.reactivationHelp, bearer: bearer))
            case .accepted(let record):
                if let ban = services.bans?.ban(key: record.id, now: now), ban.kind == .key { return .reject(.banned) }
                let method: Caller.Method
                switch record.kind {
                case .api: method = .apiKey
                case .install: method = .clientKey
                case .admin: return .reject(.invalidCredentials(bearer: bearer))  // never in this index; never a caller
                }
                guard config.anyOf.contains(method) else { return .reject(.invalidCredentials(bearer: bearer)) }
                guard record.routes.isEmpty || record.routes.contains(route) else { return .reject(.forbidden) }
                caller = Caller(method: method, subject: record.subject, keyID: record.id, scopes: record.scopes)
            }
        case .token(let token):
            guard let jwt = services.jwt else { return .reject(.invalidCredentials(bearer: bearer)) }
            switch jwt.verify(token, now: now) {
            case .failure(let failure):
                request.authFailure = failure.description
                return .reject(.invalidCredentials(bearer: true))
            case .success(let c):
                if let id = c.clientID, let client = services.clients?.client(id), client.revokedAt != nil {
                    request.authFailure = "client revoked"
                    return .reject(.invalidCredentials(bearer: true))
                }
                caller = c
            }
        }
        let missing = config.scopes.filter { !caller.scopes.contains($0) }
        guard missing.isEmpty else { return .reject(.insufficientScope(config.scopes)) }
        guard config.roles.isEmpty || config.roles.contains(where: caller.roles.contains) else { return .reject(.forbidden) }
        request.caller = caller
        return .pass
    }

    enum Credential {
        case none
        case key(Substring)
        case token(Substring)
    }

    /// `Bearer ` in any case (RFC 7235: the scheme is case-insensitive), without allocating.
    public static func hasBearerScheme(_ value: Substring.UTF8View) -> Bool {
        guard value.count > 7 else { return false }
        for (c, expected) in zip(value, "bearer ".utf8) where c | (c >= 0x41 && c <= 0x5A ? 0x20 : 0) != expected { return false }
        return true
    }

    func credential(_ request: RequestView) -> Credential {
        var bearerValue: Substring?
        if config.acceptsBearer, let auth = request.header("authorization") {
            let value = Substring(auth)
            if Self.hasBearerScheme(value.utf8) { bearerValue = value.dropFirst(7).drop(while: { $0 == " " }) }
        }
        if config.acceptsKeys {
            for source in config.keySources {
                switch source {
                case .header(let name):
                    if let value = request.header(name), !value.isEmpty { return .key(Substring(value)) }
                case .bearer:
                    if let bearerValue, bearerValue.hasPrefix("tg_") { return .key(bearerValue) }
                }
            }
        }
        if config.anyOf.contains(.jwt), let bearerValue, !bearerValue.isEmpty, !bearerValue.hasPrefix("tg_") { return .token(bearerValue) }
        return .none
    }
}

/// Checks a route's ``OwnerRule`` after validation: the caller may reach only its own objects.
/// Refuses with the same 403 whether the object exists or not.
public struct OwnerPolicy: Policy {
    public let kind = RouteConfig.PolicyKind.owner
    public let rule: OwnerRule

    public init(rule: OwnerRule) { self.rule = rule }

    public func evaluate(_ request: inout RequestView) -> Decision {
        guard let caller = request.caller else { return .reject(.unauthenticated(bearer: true)) }
        if !rule.unlessRoles.isEmpty, rule.unlessRoles.contains(where: caller.roles.contains) { return .pass }
        guard let param = request.params.first(where: { $0.name == rule.param }) else { return .reject(.forbidden) }
        let expected: String?
        switch rule.equals {
        case .subject: expected = caller.subject
        case .claim(let path): expected = caller.claim(path)
        }
        guard let expected, !expected.isEmpty, param.value.text == expected else { return .reject(.forbidden) }
        return .pass
    }
}
