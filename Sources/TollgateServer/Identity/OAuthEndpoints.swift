import NIOCore
import TollgateCore

/// The token endpoint of the client-credentials grant, answered by the gateway itself.
///
/// Order: the per-address limit (before the body is looked at), then the per-client-id limit (on
/// the id the request names, before its secret is checked, so guessing one client's secret is
/// bounded however many addresses try), then ``TokenEndpoint``. Answers follow RFC 6749 §5: a token
/// as JSON with `Cache-Control: no-store`, or `{"error": …}` (401 `invalid_client` with a `Basic`
/// challenge when the client tried Basic). Limits answer 429 problem+json with `Retry-After`.
enum OAuthEndpoints {
    static func token(_ req: InboundRequest, identity: IdentityRuntime) -> Response {
        guard let endpoint = identity.tokenEndpoint else { return .problem(.notFound, requestID: req.requestID, by: .stage(.routing)) }
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        if let limiter = identity.perAddress, case let outcome = limiter.acquire(BucketKey(req.client.key), now: now), !outcome.allowed {
            return tooMany(req, retryAfterNanos: outcome.retryAfterNanos, note: "token requests per address")
        }
        let body = req.body.map { Array($0.readableBytesView) } ?? []
        let authorization = req.head.headers.first(name: "authorization")
        if let limiter = identity.perClient, let id = TokenEndpoint.namedClient(form: FormBody.parse(body) ?? [], authorization: authorization) {
            let outcome = limiter.acquire(RateLimitPolicy.hashed(id), now: now)
            if !outcome.allowed { return tooMany(req, retryAfterNanos: outcome.retryAfterNanos, note: "token requests per client") }
        }
        let wall = NIODeadline.wallClockSeconds
        switch endpoint.grant(form: body, contentType: req.head.headers.first(name: "content-type"), authorization: authorization,
                              now: Int64(wall), tokenID: req.requestID) {
        case .failure(let refusal):
            var headers = [("Cache-Control", "no-store")]
            if refusal.basicChallenge { headers.append(("WWW-Authenticate", "Basic realm=\"tollgate\"")) }
            return Response(status: refusal.status, contentType: "application/json", headers: headers,
                            body: ByteBuffer(string: refusal.json), refused: true, decidedBy: .stage(.oauthToken),
                            note: "token refused: \(refusal.error)" + (refusal.clientID.map { " client \($0)" } ?? ""))
        case .success(let grant):
            guard let token = identity.sign(grant.claims) else {
                return .problem(.internalError, requestID: req.requestID, by: .stage(.internal), note: "token signing failed")
            }
            let json = JSONValue.object([
                JSONMember("access_token", .string(token)), JSONMember("token_type", .string("Bearer")),
                JSONMember("expires_in", .number(String(grant.expiresIn))),
                JSONMember("scope", .string(grant.scopes.joined(separator: " "))),
            ]).serialized
            var response = Response.served(200, contentType: "application/json", body: ByteBuffer(string: json),
                                           headers: [("Pragma", "no-cache")], by: .stage(.oauthToken))
            response.cacheControl = "no-store"
            response.note = "token issued to \(grant.clientID)"
            return response
        }
    }

    private static func tooMany(_ req: InboundRequest, retryAfterNanos: Int64, note: String) -> Response {
        let seconds = max(1, (retryAfterNanos + 999_999_999) / 1_000_000_000)
        return .problem(Problem(status: 429, code: "rate-limited", title: "Too Many Requests",
                                detail: "Too many token requests; try again later.", headers: [("Retry-After", String(seconds))]),
                        requestID: req.requestID, by: .stage(.oauthToken), note: note)
    }
}
