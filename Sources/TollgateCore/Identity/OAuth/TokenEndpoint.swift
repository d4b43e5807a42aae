/// The token endpoint's logic (RFC 6749 §4.4 and §5): reads a form-encoded request, authenticates
/// the client (HTTP Basic or body, not both), grants the requested scopes if the client has all of
/// them (all its scopes when none are asked), and returns the claims of the token to sign. Pure:
/// the data plane reads the body, signs, and writes the answer.
public struct TokenEndpoint: Sendable {
    public let config: OAuthConfig
    public let clients: OAuthClientIndex
    public let hasher: APIKeyHasher

    public init(config: OAuthConfig, clients: OAuthClientIndex, hasher: APIKeyHasher) {
        self.config = config
        self.clients = clients
        self.hasher = hasher
    }

    /// An error response of §5.2.
    public struct Refusal: Error, Sendable, Equatable {
        public var status: Int
        public var error: String
        public var description: String
        /// Set for `invalid_client` when the client tried HTTP Basic (§5.2: 401 with a challenge).
        public var basicChallenge = false
        /// The client id the request named, for per-client limits and the log (never a secret).
        public var clientID: String?

        public var json: String {
            JSONValue.object([JSONMember("error", .string(error)), JSONMember("error_description", .string(description))]).serialized
        }
    }

    public struct Grant: Sendable, Equatable {
        public var clientID: String
        public var scopes: [String]
        public var claims: JSONValue
        public var expiresIn: Int64
    }

    /// The client id a request names (before authenticating it), for rate limiting.
    public static func namedClient(form: [(String, String)], authorization: String?) -> String? {
        if let basic = basicCredentials(authorization) { return basic.id }
        return form.first(where: { $0.0 == "client_id" })?.1
    }

    public func grant(form body: [UInt8], contentType: String?, authorization: String?, now: Int64, tokenID: String) -> Result<Grant, Refusal> {
        guard let type = contentType?.split(separator: ";").first?.trimmingWhitespace().lowercased(),
              type == "application/x-www-form-urlencoded" else {
            return .failure(Refusal(status: 400, error: "invalid_request", description: "The body must be application/x-www-form-urlencoded."))
        }
        guard let form = FormBody.parse(body) else {
            return .failure(Refusal(status: 400, error: "invalid_request", description: "The form body cannot be read."))
        }
        var seen = Set<String>()
        for (name, _) in form where !seen.insert(name).inserted {
            return .failure(Refusal(status: 400, error: "invalid_request", description: "A parameter is repeated."))
        }
        let value = { (name: String) in form.first(where: { $0.0 == name })?.1 }
        guard let grantType = value("grant_type") else {
            return .failure(Refusal(status: 400, error: "invalid_request", description: "grant_type is missing."))
        }
        guard grantType == "client_credentials" else {
            return .failure(Refusal(status: 400, error: "unsupported_grant_type", description: "Only client_credentials is supported."))
        }
        let basic = Self.basicCredentials(authorization)
        if authorization != nil, basic == nil {
            return .failure(Refusal(status: 401, error: "invalid_client", description: "Client authentication failed.", basicChallenge: true))
        }
        if basic != nil, value("client_secret") != nil {
            return .failure(Refusal(status: 400, error: "invalid_request", description: "Use one client authentication method."))
        }
        guard let id = basic?.id ?? value("client_id"), let secret = basic?.secret ?? value("client_secret") else {
            return .failure(Refusal(status: 401, error: "invalid_client", description: "Client authentication failed.", basicChallenge: basic != nil))
        }
        let failed = Refusal(status: 401, error: "invalid_client", description: "Client authentication failed.",
                             basicChallenge: basic != nil, clientID: id)
        // Hash even for an unknown id, so the answer takes as long either way.
        let record = clients.client(id)
        let matches = hasher.matches(secret, record?.secretHash ?? [])
        guard let record, matches, record.revokedAt == nil else { return .failure(failed) }
        var scopes = record.scopes
        if let asked = value("scope") {
            let list = asked.split(separator: " ").map(String.init)
            guard !list.isEmpty, list.allSatisfy(record.scopes.contains) else {
                var r = Refusal(status: 400, error: "invalid_scope", description: "The requested scope is not granted to this client.")
                r.clientID = id
                return .failure(r)
            }
            scopes = list
        }
        let lifetime = config.tokenLifetime.nanoseconds / 1_000_000_000
        var members = [JSONMember("iss", .string(config.issuer)), JSONMember("sub", .string(id)),
                       JSONMember("client_id", .string(id))]
        if let aud = config.audience { members.append(JSONMember("aud", .string(aud))) }
        members += [JSONMember("scope", .string(scopes.joined(separator: " "))), JSONMember("iat", .number(String(now))),
                    JSONMember("exp", .number(String(now + lifetime))), JSONMember("jti", .string(tokenID))]
        return .success(Grant(clientID: id, scopes: scopes, claims: .object(members), expiresIn: lifetime))
    }

    static func basicCredentials(_ authorization: String?) -> (id: String, secret: String)? {
        guard let authorization, authorization.count > 6, authorization.prefix(6).lowercased() == "basic " else { return nil }
        guard let decoded = Base64.decode(String(authorization.dropFirst(6)).trimmingWhitespace()),
              let text = String(validating: decoded, as: UTF8.self), let colon = text.firstIndex(of: ":") else { return nil }
        // RFC 6749 §2.3.1: both parts are form-encoded before base64.
        guard let id = FormBody.decode(Substring(text[..<colon])), let secret = FormBody.decode(Substring(text[text.index(after: colon)...])),
              !id.isEmpty else { return nil }
        return (id, secret)
    }
}

/// `application/x-www-form-urlencoded` bodies.
public enum FormBody {
    /// Name/value pairs in order; nil when an escape is malformed or text is not UTF-8.
    public static func parse(_ body: [UInt8]) -> [(String, String)]? {
        var out: [(String, String)] = []
        for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(Substring(decoding: parts[0], as: UTF8.self)),
                  let value = decode(Substring(decoding: parts.count > 1 ? parts[1] : [], as: UTF8.self)) else { return nil }
            out.append((name, value))
        }
        return out
    }

    /// `+` is a space, `%XX` a byte; nil when an escape is malformed or the bytes are not UTF-8.
    public static func decode(_ text: Substring) -> String? {
        PercentEncoding.decode(text, plusIsSpace: true)
    }
}
