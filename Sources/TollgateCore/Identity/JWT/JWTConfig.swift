/// `identity.jwt`: which bearer JWTs the gateway accepts.
public struct JWTConfig: Sendable, Equatable {
    /// A key from the config: an HMAC secret, or a PEM public key (file or secret).
    public struct StaticKey: Sendable, Equatable {
        public enum Material: Sendable, Equatable {
            /// The named secret's value is the HMAC key (HS256/384/512).
            case hmacSecret(String)
            /// A PEM public key (RSA, EC or Ed25519), from a file or a named secret.
            case pemFile(String)
            case pemSecret(String)
            /// A JWK (or a JWKS) in a named secret.
            case jwkSecret(String)
        }

        public var keyID: String?
        public var algorithm: String
        public var material: Material
    }

    /// `iss` must equal this when set.
    public var issuer: String?
    /// `aud` (a string or an array) must contain this when set.
    public var audience: String?
    /// Clock difference tolerated on `exp`, `nbf` and `iat`.
    public var leeway: Duration = .seconds(30)
    public var maxTokenBytes = 8192
    /// Tokens without `exp` are refused unless this is false.
    public var requireExpiry = true
    /// Dotted path of the claim holding the caller's roles.
    public var rolesClaim = "roles"
    public var keys: [StaticKey] = []
    /// A JWKS to fetch keys from, refreshed every `jwksRefresh` and early (at most every
    /// `jwksMinInterval`) when a token names an unknown `kid`.
    public var jwksURL: UpstreamURL?
    public var jwksRefresh: Duration = .seconds(300)
    public var jwksMinInterval: Duration = .seconds(10)

    public static let algorithms: Set<String> = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384",
                                                 "PS512", "ES256", "ES384", "EdDSA"]

    public init() {}
}
