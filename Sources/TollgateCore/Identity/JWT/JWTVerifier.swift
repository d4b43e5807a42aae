import Synchronization

/// Verifies bearer JWTs and turns their claims into a ``Caller``.
///
/// Order: size bound and parse (``CompactJWT``), a key of exactly the token's `alg` (and `kid`),
/// the signature, then the claims — `exp` (required unless configured otherwise), `nbf` and `iat`
/// (not in the future), each with the leeway; `iss` and `aud` when configured. Any failure is one
/// ``Failure``; the caller answers all of them alike (401 `invalid_token`), the reason goes to the log.
///
/// Verified tokens are remembered (bounded, by the token text) until the earlier of their `exp` and
/// one minute, and forgotten when the key set changes, so repeated calls skip the signature check.
public final class JWTVerifier: Sendable {
    public let config: JWTConfig
    public let ring: JWTKeyRing
    private struct Cached {
        var caller: Caller
        var expires: Int64
        var generation: Int
    }
    private let cache = Mutex(BoundedTable<String, Cached>(capacity: 4096, sweepInterval: 1))
    static let cacheSeconds: Int64 = 60
    static let maxCachedBytes = 2048

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case malformed(CompactJWT.Failure)
        case noKey
        case badSignature
        case missingExpiry
        case expired
        case notYetValid
        case issuedInFuture
        case wrongIssuer
        case wrongAudience
        case badClaims

        public var description: String {
            switch self {
            case .malformed(let f): f.rawValue
            case .noKey: "no key for its alg and kid"
            case .badSignature: "signature does not verify"
            case .missingExpiry: "no exp"
            case .expired: "expired"
            case .notYetValid: "not yet valid (nbf)"
            case .issuedInFuture: "issued in the future (iat)"
            case .wrongIssuer: "wrong iss"
            case .wrongAudience: "wrong aud"
            case .badClaims: "claims of the wrong type"
            }
        }
    }

    public init(config: JWTConfig, ring: JWTKeyRing) {
        self.config = config
        self.ring = ring
    }

    /// The caller `token` proves, at `now` (Unix seconds).
    public func verify(_ token: Substring, now: Int64) -> Result<Caller, Failure> {
        let generation = ring.currentGeneration
        let cacheable = token.utf8.count <= Self.maxCachedBytes
        if cacheable, let hit = cache.withLock({ $0[String(token)] }), hit.generation == generation, hit.expires > now {
            return .success(hit.caller)
        }
        let jwt: CompactJWT
        do {
            jwt = try CompactJWT(token.utf8, maxBytes: config.maxTokenBytes)
        } catch {
            return .failure(.malformed(error))
        }
        let keys = ring.candidates(keyID: jwt.keyID, algorithm: jwt.algorithm)
        guard !keys.isEmpty else { return .failure(.noKey) }
        guard let key = keys.first(where: { $0.verify(jwt.signingInput, jwt.signature) }) else { return .failure(.badSignature) }
        let exp: Int64?
        let rules = key.issuer == nil ? (config.issuer, config.audience) : (key.issuer, key.audience)
        switch checkClaims(jwt.claims, now: now, issuer: rules.0, audience: rules.1, leeway: key.leeway ?? config.leeway) {
        case .failure(let f): return .failure(f)
        case .success(let e): exp = e
        }
        let caller = Self.caller(from: jwt.claims, rolesClaim: config.rolesClaim)
        if cacheable {
            let expires = min(exp ?? Int64.max, now + Self.cacheSeconds)
            let key = String(token)
            cache.withLock { table in
                _ = table.insert(key, Cached(caller: caller, expires: expires, generation: generation), now: now) { $0.expires }
            }
        }
        return .success(caller)
    }

    /// Checks the registered claims; returns `exp`.
    func checkClaims(_ claims: JSONValue, now: Int64, issuer: String?, audience: String?, leeway: Duration) -> Result<Int64?, Failure> {
        let leeway = leeway.nanoseconds / 1_000_000_000
        func time(_ name: String) -> Result<Int64?, Failure> {
            guard let value = claims[name] else { return .success(nil) }
            guard case .number(let text) = value, let seconds = Self.seconds(text) else { return .failure(.badClaims) }
            return .success(seconds)
        }
        let exp: Int64?
        switch (time("exp"), time("nbf"), time("iat")) {
        case (.success(let e), .success(let nbf), .success(let iat)):
            exp = e
            if let e, now >= e + leeway { return .failure(.expired) }
            if e == nil, config.requireExpiry { return .failure(.missingExpiry) }
            if let nbf, now + leeway < nbf { return .failure(.notYetValid) }
            if let iat, now + leeway < iat { return .failure(.issuedInFuture) }
        default:
            return .failure(.badClaims)
        }
        if let issuer {
            guard case .string(let iss)? = claims["iss"], iss == issuer else { return .failure(.wrongIssuer) }
        }
        if let audience {
            switch claims["aud"] {
            case .string(let aud)?: if aud != audience { return .failure(.wrongAudience) }
            case .array(let items)?: if !items.contains(.string(audience)) { return .failure(.wrongAudience) }
            default: return .failure(.wrongAudience)
            }
        }
        return .success(exp)
    }

    /// Whole seconds of a NumericDate (fractions are dropped; exponents and huge values refused).
    static func seconds(_ text: String) -> Int64? {
        let whole = text.split(separator: ".", maxSplits: 1).first.map(String.init) ?? text
        guard !whole.contains("e"), !whole.contains("E") else { return nil }
        return Int64(whole)
    }

    static func caller(from claims: JSONValue, rolesClaim: String) -> Caller {
        var subject = ""
        if case .string(let s)? = claims["sub"] { subject = s }
        let scopes = claims["scope"]?.stringList ?? claims["scp"]?.stringList ?? []
        let roles = claims.at(path: rolesClaim)?.stringList ?? []
        var clientID: String?
        if case .string(let c)? = claims["client_id"] { clientID = c } else if case .string(let c)? = claims["azp"] { clientID = c }
        return Caller(method: .jwt, subject: subject, clientID: clientID, scopes: scopes, roles: roles, claims: claims)
    }
}
