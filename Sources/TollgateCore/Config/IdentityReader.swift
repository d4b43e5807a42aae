/// `identity:` (the gateway-wide part: key hashing, JWT keys) and each route's `auth:` and `owner:`.
public struct IdentityConfig: Sendable, Equatable {
    /// Names the secret API keys and client secrets are hashed under.
    public var keyHashSecret: String?
    /// Shown to the holder of an expired or used-up key: how to get it reactivated.
    public var reactivationHelp: String?
    /// Names the secret identity headers sent upstream are signed with.
    public var headerSigningSecret: String?
    public var jwt: JWTConfig?
    /// Tollgate's own token endpoint for the client-credentials grant.
    public var oauth: OAuthConfig?

    /// The names of every secret this config reads (a reload keeps the identity runtime only when
    /// none of their values changed).
    public var secretNames: [String] {
        var names = [keyHashSecret, headerSigningSecret, oauth?.signingKeySecret].compactMap { $0 }
        for key in jwt?.keys ?? [] {
            switch key.material {
            case .hmacSecret(let name), .pemSecret(let name), .jwkSecret(let name): names.append(name)
            case .pemFile: break
            }
        }
        return names
    }
}

enum IdentityReader {
    static func gateway(_ node: ConfigNode, secrets: [String: SecretReference], baseDirectory: String) -> IdentityConfig? {
        guard let keys = node.object(allowed: ["key_hash_secret", "reactivation_help", "header_signing_secret", "jwt", "oauth"]) else { return nil }
        var config = IdentityConfig()
        config.keyHashSecret = keys["key_hash_secret"]?.secretName(in: secrets)
        config.reactivationHelp = keys["reactivation_help"]?.nonEmptyString()
        config.headerSigningSecret = keys["header_signing_secret"]?.secretName(in: secrets)
        config.jwt = keys["jwt"].flatMap { jwt($0, secrets: secrets, baseDirectory: baseDirectory) }
        config.oauth = keys["oauth"].flatMap { oauth($0, secrets: secrets) }
        if config.oauth != nil, config.keyHashSecret == nil { keys["oauth"]?.error("needs identity.key_hash_secret: client secrets are stored hashed under it") }
        return config
    }

    static func oauth(_ node: ConfigNode, secrets: [String: SecretReference]) -> OAuthConfig? {
        let allowed: Set<String> = ["issuer", "audience", "signing_key", "algorithm", "key_id", "token_lifetime", "token_path",
                                    "jwks_path", "rate_per_client", "rate_per_address", "leeway"]
        guard let keys = node.object(allowed: allowed) else { return nil }
        guard let secret = keys["signing_key"]?.secretName(in: secrets) else {
            if keys["signing_key"] == nil { node.error("needs signing_key: the secret holding a PEM private key (Ed25519 or P-256)") }
            return nil
        }
        var config = OAuthConfig(signingKeySecret: secret)
        if let s = keys["issuer"]?.nonEmptyString() { config.issuer = s }
        config.audience = keys["audience"]?.nonEmptyString()
        if let a = keys["algorithm"]?.choice(["EdDSA", "ES256"]) { config.algorithm = a }
        if let k = keys["key_id"]?.nonEmptyString() { config.keyID = k }
        if let d = keys["token_lifetime"]?.duration() {
            if d < .seconds(10) || d > .seconds(86_400) { keys["token_lifetime"]?.error("must be between 10s and 24h") } else { config.tokenLifetime = d }
        }
        for (key, path) in [("token_path", \OAuthConfig.tokenPath), ("jwks_path", \OAuthConfig.jwksPath)] {
            if let p = keys[key]?.nonEmptyString() {
                if p.hasPrefix("/") { config[keyPath: path] = p } else { keys[key]?.error("must start with /") }
            }
        }
        if let d = keys["leeway"]?.duration() { config.leeway = d }
        if let r = keys["rate_per_client"]?.rate() { config.perClient = r }
        if let r = keys["rate_per_address"]?.rate() { config.perAddress = r }
        return config
    }

    static func jwt(_ node: ConfigNode, secrets: [String: SecretReference], baseDirectory: String) -> JWTConfig? {
        let allowed: Set<String> = ["issuer", "audience", "leeway", "max_token_bytes", "require_exp", "roles_claim", "keys",
                                    "jwks_url", "jwks_refresh", "jwks_min_interval"]
        guard let keys = node.object(allowed: allowed) else { return nil }
        var config = JWTConfig()
        config.issuer = keys["issuer"]?.nonEmptyString()
        config.audience = keys["audience"]?.nonEmptyString()
        if let d = keys["leeway"]?.duration() { config.leeway = d }
        if let n = keys["max_token_bytes"]?.int(min: 256) { config.maxTokenBytes = n }
        if let b = keys["require_exp"]?.bool() { config.requireExpiry = b }
        if let c = keys["roles_claim"]?.nonEmptyString() { config.rolesClaim = c }
        config.jwksURL = keys["jwks_url"]?.url()
        if let d = keys["jwks_refresh"]?.duration() { config.jwksRefresh = d }
        if let d = keys["jwks_min_interval"]?.duration() { config.jwksMinInterval = d }
        if let list = keys["keys"]?.sequence() {
            for item in list {
                guard let k = item.object(allowed: ["kid", "alg", "secret", "pem_file", "pem_secret", "jwk_secret"]) else { continue }
                guard let alg = k["alg"]?.choice(JWTConfig.algorithms.sorted()) else {
                    if k["alg"] == nil { item.error("needs alg (\(JWTConfig.algorithms.sorted().joined(separator: ", ")))") }
                    continue
                }
                let hmac = alg.hasPrefix("HS")
                var material: JWTConfig.StaticKey.Material?
                switch (k["secret"], k["pem_file"], k["pem_secret"] ?? k["jwk_secret"]) {
                case (let s?, nil, nil):
                    if !hmac { s.error("an \(alg) key is a PEM public key: use pem_file or pem_secret") }
                    material = s.secretName(in: secrets).map { .hmacSecret($0) }
                case (nil, let f?, nil):
                    if hmac { f.error("an \(alg) key is a shared secret: use secret") }
                    material = ConfigLoader.file(f, base: baseDirectory).map { .pemFile($0) }
                case (nil, nil, let s?) where k["pem_secret"] != nil && k["jwk_secret"] != nil:
                    s.error("use one of pem_secret or jwk_secret")
                case (nil, nil, let s?):
                    if hmac { s.error("an \(alg) key is a shared secret: use secret") }
                    let isJWK = k["jwk_secret"] != nil
                    material = s.secretName(in: secrets).map { isJWK ? .jwkSecret($0) : .pemSecret($0) }
                default:
                    item.error(hmac ? "needs secret (the name of a secret)" : "needs one of pem_file, pem_secret or jwk_secret")
                }
                if let material { config.keys.append(.init(keyID: k["kid"]?.nonEmptyString(), algorithm: alg, material: material)) }
            }
        }
        if config.keys.isEmpty, config.jwksURL == nil { node.error("needs keys or jwks_url: the keys tokens are verified with") }
        return config
    }

    static func clientKeyGrant(_ node: ConfigNode) -> ClientKeyGrant? {
        guard let keys = node.object(allowed: ["routes", "scopes", "expires", "max_uses"]) else { return nil }
        guard let routes = keys["routes"]?.stringList(), !routes.isEmpty else {
            node.error("needs routes: the routes the handed-out keys may call")
            return nil
        }
        var grant = ClientKeyGrant(routes: routes, scopes: keys["scopes"]?.stringList() ?? [])
        grant.lifetime = keys["expires"]?.duration()
        grant.maxUses = keys["max_uses"]?.int(min: 1).map(Int64.init)
        if grant.lifetime == nil, grant.maxUses == nil { node.warning("handed-out keys never lapse: set expires or max_uses") }
        return grant
    }

    static func auth(_ node: ConfigNode) -> AuthConfig? {
        guard let keys = node.object(allowed: ["any_of", "key_from", "scopes", "roles", "identity_headers", "revoke_client_key_on_success"]) else { return nil }
        var methods: [Caller.Method] = []
        if let list = keys["any_of"]?.stringList() {
            for name in list {
                if let m = Caller.Method(rawValue: name), !methods.contains(m) { methods.append(m) } else {
                    keys["any_of"]?.error("\(name) is not one of \(Caller.Method.allCases.map(\.rawValue).joined(separator: ", ")) (or is listed twice)")
                }
            }
        }
        if methods.isEmpty {
            if keys["any_of"] == nil { node.error("needs any_of: the credentials the route accepts (api_key, client_key, jwt)") }
            return nil
        }
        var config = AuthConfig(anyOf: methods)
        if let list = keys["key_from"]?.stringList() {
            config.keySources = list.map { $0.lowercased() == "bearer" ? .bearer : .header($0.lowercased()) }
            if list.isEmpty { keys["key_from"]?.error("must list bearer and/or header names") }
            if !config.acceptsKeys { keys["key_from"]?.error("applies to api_key and client_key only") }
        }
        config.scopes = keys["scopes"]?.stringList() ?? []
        config.roles = keys["roles"]?.stringList() ?? []
        if let b = keys["identity_headers"]?.bool() { config.identityHeaders = b }
        if let b = keys["revoke_client_key_on_success"]?.bool() {
            config.revokeClientKeyOnSuccess = b
            if b, !methods.contains(.clientKey) { keys["revoke_client_key_on_success"]?.error("needs client_key in any_of") }
        }
        return config
    }

    static func owner(_ node: ConfigNode, params: [ParamSpec]) -> OwnerRule? {
        guard let keys = node.object(allowed: ["param", "equals", "unless_role"]) else { return nil }
        guard let param = keys["param"]?.nonEmptyString() else {
            if keys["param"] == nil { node.error("needs param: the declared parameter holding the object's owner") }
            return nil
        }
        if !params.contains(where: { $0.name == param }) { keys["param"]?.error("\(param) is not declared under params") }
        var source = OwnerRule.Source.subject
        if let text = keys["equals"]?.string() {
            if text == "subject" {
                source = .subject
            } else if text.hasPrefix("claim."), text.count > 6 {
                source = .claim(String(text.dropFirst(6)))
            } else {
                keys["equals"]?.error("must be subject or claim.NAME")
                return nil
            }
        }
        var roles: [String] = []
        if let n = keys["unless_role"] { roles = n.stringList() ?? n.string().map { [$0] } ?? [] }
        return OwnerRule(param: param, equals: source, unlessRoles: roles)
    }
}
