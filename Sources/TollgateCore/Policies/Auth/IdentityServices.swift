/// What `auth` policies check credentials against, shared by every route: the key index and the
/// JWT verifier (nil when not configured), and the text a lapsed key's holder is shown.
public struct IdentityServices: Sendable {
    public var keys: APIKeyIndex?
    public var jwt: JWTVerifier?
    public var reactivationHelp: String?
    /// Signs the identity headers sent upstream (`identity.header_signing_secret`'s value).
    public var headerSigningSecret: String?
    /// Registered OAuth clients: a token of a client revoked since is refused before its `exp`.
    public var clients: OAuthClientIndex?
    /// Banned keys: a banned key is refused (403 `banned`) although it verifies.
    public var bans: BanBoard?

    public init(keys: APIKeyIndex? = nil, jwt: JWTVerifier? = nil, reactivationHelp: String? = nil,
                headerSigningSecret: String? = nil) {
        self.keys = keys
        self.jwt = jwt
        self.reactivationHelp = reactivationHelp
        self.headerSigningSecret = headerSigningSecret
    }
}
