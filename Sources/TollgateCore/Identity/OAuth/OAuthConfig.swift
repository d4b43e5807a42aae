/// `identity.oauth`: Tollgate as an OAuth 2.0 authorization server for the client-credentials
/// grant (RFC 6749 §4.4). It issues short-lived JWTs signed with its own key and publishes the
/// public half as a JWKS, so upstreams can verify the tokens too.
public struct OAuthConfig: Sendable, Equatable {
    /// `iss` of issued tokens, checked when they come back.
    public var issuer = "tollgate"
    /// `aud` of issued tokens (none when nil).
    public var audience: String?
    public var tokenPath = "/oauth/token"
    public var jwksPath = "/.well-known/jwks.json"
    public var tokenLifetime: Duration = .seconds(300)
    /// Clock difference tolerated when issued tokens come back (gateways of a cluster share a clock
    /// only as well as NTP keeps them together).
    public var leeway: Duration = .seconds(5)
    /// Names the secret holding the PEM private signing key (Ed25519 for EdDSA, P-256 for ES256).
    public var signingKeySecret: String
    public var algorithm = "EdDSA"
    public var keyID = "tollgate-1"
    /// Token requests per client id, and per address, before 429.
    public var perClient = Rate("10/min")!
    public var perAddress = Rate("30/min")!

    public init(signingKeySecret: String) {
        self.signingKeySecret = signingKeySecret
    }
}
