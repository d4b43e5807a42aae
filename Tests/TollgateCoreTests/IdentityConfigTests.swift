import Foundation
import Testing
@testable import TollgateCore

@Suite struct IdentityConfigTests {
    let identity = """
      KEY_HASH: env:KEY_HASH
      HS: env:HS
    identity:
      key_hash_secret: KEY_HASH
      jwt:
        issuer: https://idp
        keys:
          - { kid: a, alg: HS256, secret: HS }
    """

    func load(route: String, identity: String? = nil) throws -> GatewayConfig {
        try ConfigLoader.load(yaml: configYAML(route: route, extraRoot: identity ?? self.identity), baseDirectory: "/tmp").config
    }

    @Test func authOwnerAndPerCallerLimitsAreRead() throws {
        let route = """
            params:
              user_id: { in: query, type: string, max_length: 20 }
            auth: { any_of: [api_key, jwt], scopes: [orders:read], roles: [support], key_from: [x-api-key] }
            owner: { param: user_id, equals: claim.sub, unless_role: admin }
            limits:
              - { per: key, rate: 10/min }
              - { per: subject, rate: 100/min }
        """
        let config = try load(route: route)
        let r = config.routes[0]
        #expect(r.auth?.anyOf == [.apiKey, .jwt] && r.auth?.scopes == ["orders:read"] && r.auth?.keySources == [.header("x-api-key")])
        #expect(r.owner == OwnerRule(param: "user_id", equals: .claim("sub"), unlessRoles: ["admin"]))
        #expect(r.limits.map(\.scope) == [.key, .subject])
        #expect(config.identity?.jwt?.keys == [.init(keyID: "a", algorithm: "HS256", material: .hmacSecret("HS"))])
    }

    @Test func mistakesAreConfigErrors() {
        func errors(_ route: String, identity: String? = nil) -> String {
            loadErrors(configYAML(route: route, extraRoot: identity ?? self.identity)).joined(separator: "\n")
        }
        #expect(errors("    auth: { any_of: [password] }").contains("password is not one of"))
        #expect(errors("    owner: { param: user_id }").contains("needs auth"))
        #expect(errors("    limits:\n      - { per: key, rate: 1/s }").contains("needs auth on the route"))
        #expect(errors("    auth: { any_of: [jwt] }", identity: "").contains("no identity.jwt"))
        #expect(errors("    auth: { any_of: [api_key] }", identity: "").contains("no identity.key_hash_secret"))
        #expect(errors("    forward_headers: [X-Tollgate-Subject]").contains("cannot be forwarded"))
        let badKey = identity.replacingOccurrences(of: "{ kid: a, alg: HS256, secret: HS }", with: "{ kid: a, alg: RS256, secret: HS }")
        #expect(errors("", identity: badKey).contains("PEM public key"))
        let none = identity.replacingOccurrences(of: "alg: HS256", with: "alg: none")
        #expect(errors("", identity: none).contains("alg: must be ES256"))
        #expect(errors("    auth: { any_of: [api_key] }\n    policy_order: [rate_limit, auth]\n    limits:\n      - { per: key, rate: 1/s }")
            .contains("rate_limit runs before auth"))
    }

    @Test func aPastedKeyIsRefusedAsALiteralSecret() {
        let key = APIKeyText.generate(.api).text
        #expect(SecretHeuristics.looksLikeLiteralSecret(key))
    }
}

@Suite struct TokenEndpointTests {
    let hasher = APIKeyHasher(secret: "pepper")
    let form = "application/x-www-form-urlencoded"

    func endpoint(scopes: [String] = ["a", "b"], revoked: Bool = false) -> TokenEndpoint {
        let client = OAuthClientRecord(id: "tgc_1", name: "c", secretHash: hasher.hash("s3cret"), scopes: scopes, createdAt: 0,
                                       revokedAt: revoked ? 1 : nil)
        return TokenEndpoint(config: OAuthConfig(signingKeySecret: "K"), clients: OAuthClientIndex(records: [client]), hasher: hasher)
    }

    func grant(_ body: String, auth: String? = nil, type: String? = nil, endpoint e: TokenEndpoint? = nil) -> Result<TokenEndpoint.Grant, TokenEndpoint.Refusal> {
        (e ?? endpoint()).grant(form: Array(body.utf8), contentType: type ?? form, authorization: auth, now: 1000, tokenID: "j")
    }

    func error(_ r: Result<TokenEndpoint.Grant, TokenEndpoint.Refusal>) -> String? {
        if case .failure(let f) = r { return "\(f.status) \(f.error)" }
        return nil
    }

    @Test func grantsASubsetOfTheClientsScopes() throws {
        let basic = "Basic " + Base64.encode(Array("tgc_1:s3cret".utf8))
        let g = try grant("grant_type=client_credentials&scope=b", auth: basic).get()
        #expect(g.scopes == ["b"] && g.expiresIn == 300)
        #expect(g.claims["sub"] == .string("tgc_1") && g.claims["exp"] == .number("1300") && g.claims["scope"] == .string("b"))
        #expect(try grant("grant_type=client_credentials&client_id=tgc_1&client_secret=s3cret").get().scopes == ["a", "b"])
    }

    @Test func errorsFollowRFC6749() {
        let basic = "Basic " + Base64.encode(Array("tgc_1:s3cret".utf8))
        #expect(error(grant("grant_type=client_credentials&scope=c", auth: basic)) == "400 invalid_scope")
        #expect(error(grant("grant_type=password", auth: basic)) == "400 unsupported_grant_type")
        #expect(error(grant("scope=a", auth: basic)) == "400 invalid_request")
        #expect(error(grant("grant_type=client_credentials&grant_type=client_credentials", auth: basic)) == "400 invalid_request")
        #expect(error(grant("grant_type=client_credentials", auth: basic, type: "application/json")) == "400 invalid_request")
        #expect(error(grant("grant_type=client_credentials&client_secret=s3cret", auth: basic)) == "400 invalid_request")
        #expect(error(grant("grant_type=client_credentials&client_id=tgc_1&client_secret=wrong")) == "401 invalid_client")
        #expect(error(grant("grant_type=client_credentials&client_id=tgc_2&client_secret=s3cret")) == "401 invalid_client")
        #expect(error(grant("grant_type=client_credentials", auth: "Bearer x")) == "401 invalid_client")
        #expect(error(grant("grant_type=client_credentials", auth: basic, endpoint: endpoint(revoked: true))) == "401 invalid_client")
        if case .failure(let f) = grant("grant_type=client_credentials", auth: "Basic " + Base64.encode(Array("tgc_1:no".utf8))) {
            #expect(f.basicChallenge && f.clientID == "tgc_1")
        }
    }
}
