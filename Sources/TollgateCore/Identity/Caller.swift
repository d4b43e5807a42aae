/// Who is calling, once a route's `auth` accepted a credential: what limits, budgets, ownership
/// rules and the identity headers sent upstream are keyed by.
///
/// Everything here comes from the gateway's own records (an API key) or from a token whose
/// signature and claims were checked; nothing is taken from a header the client chose.
public struct Caller: Sendable, Equatable {
    /// How the caller proved who it is (its raw value names it in config, logs and headers).
    public enum Method: String, Sendable, CaseIterable {
        /// A key made by `tollgate keys create`.
        case apiKey = "api_key"
        /// A per-install key handed out by an `issue_client_key` route.
        case clientKey = "client_key"
        /// A bearer JWT signed by a configured key, a JWKS, or Tollgate's own OAuth token endpoint.
        case jwt
    }

    public var method: Method
    /// The key's owner (or its id when it has none), or the token's `sub`.
    public var subject: String
    /// The public id of the API or client key (never the key itself).
    public var keyID: String?
    /// The OAuth client the token was issued to (`client_id`, else `azp`).
    public var clientID: String?
    public var scopes: [String]
    public var roles: [String]
    /// The token's claims (JWT only), for `owner: { equals: claim.NAME }`.
    public var claims: JSONValue?

    public init(method: Method, subject: String, keyID: String? = nil, clientID: String? = nil,
                scopes: [String] = [], roles: [String] = [], claims: JSONValue? = nil) {
        self.method = method
        self.subject = subject
        self.keyID = keyID
        self.clientID = clientID
        self.scopes = scopes
        self.roles = roles
        self.claims = claims
    }

    /// A claim by dotted path (`sub`, `tenant.id`) as text: strings as they are, numbers as written.
    /// For key callers `sub` is the subject; other claims are absent.
    public func claim(_ path: String) -> String? {
        guard let claims else { return path == "sub" ? subject : nil }
        switch claims.at(path: path) {
        case .string(let s)?: return s
        case .number(let n)?: return n
        case .bool(let b)?: return b ? "true" : "false"
        default: return nil
        }
    }
}

extension JSONValue {
    /// The value at a dotted path of nested objects (`realm_access.roles`); a key containing dots
    /// is found too when it is a direct member.
    public func at(path: String) -> JSONValue? {
        if let direct = self[path] { return direct }
        var node: JSONValue? = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            node = node?[String(part)]
            if node == nil { return nil }
        }
        return node
    }

    /// Strings of an array of strings, or of one space-separated string (the `scope` claim's form).
    public var stringList: [String]? {
        switch self {
        case .string(let s): return s.split(separator: " ").map(String.init)
        case .array(let items):
            var out: [String] = []
            for item in items { if case .string(let s) = item { out.append(s) } else { return nil } }
            return out
        default: return nil
        }
    }
}
