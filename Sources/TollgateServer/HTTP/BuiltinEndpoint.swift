import NIOCore
import NIOHTTP1
import TollgateCore

/// Endpoints the gateway answers itself: the page-token endpoint, the browser snippet, and CORS
/// preflights for routes that allow cross-origin calls. Each answer is one ``Response``.
enum BuiltinEndpoint {
    case pageToken
    case clientScript
    case preflight(Route)
    case preflightRefused
    /// `identity.oauth.token_path` (POST) and `jwks_path` (GET).
    case oauthToken(IdentityRuntime)
    case ownJWKS(IdentityRuntime)
    /// `verification.link_path`: the confirmation page (GET) and the confirmation (POST).
    case verificationLink(VerificationRuntime)

    static let scriptPath = "/_tollgate/client.js"

    static func match(head: HTTPRequestHead, path: Substring, state: GatewayState) -> BuiltinEndpoint? {
        if head.method == .GET, let tokens = state.pageTokens {
            if path == tokens.config.path { return .pageToken }
            if path == scriptPath { return .clientScript }
        }
        if let identity = state.identity, let oauth = identity.tokenEndpoint?.config {
            if path == oauth.tokenPath { return head.method == .POST ? .oauthToken(identity) : nil }
            if path == oauth.jwksPath, head.method == .GET { return .ownJWKS(identity) }
        }
        if let verification = state.verification, path == verification.config.linkPath,
           head.method == .GET || head.method == .POST {
            return .verificationLink(verification)
        }
        if head.method == .OPTIONS, let asked = head.headers.first(name: "access-control-request-method") {
            if case .found(let route, _) = state.routes.match(method: asked.uppercased(), path: path), route.config.cors != nil {
                return .preflight(route)
            }
            return .preflightRefused
        }
        return nil
    }

    func answer(_ req: InboundRequest, state: GatewayState) -> Response {
        switch self {
        case .pageToken:
            return Self.issueToken(req, state: state)
        case .clientScript:
            var response = Response.served(200, contentType: "text/javascript; charset=utf-8",
                                           body: ByteBuffer(string: BrowserSnippet.source(tokenPath: state.pageTokens?.config.path ?? "")))
            response.cacheControl = "public, max-age=300"
            response.isPage = true
            return response
        case .preflight(let route):
            return Self.preflight(req, route: route)
        case .preflightRefused:
            return .problem(.corsRefused, requestID: req.requestID, by: .stage(.cors))
        case .oauthToken(let identity):
            return OAuthEndpoints.token(req, identity: identity)
        case .verificationLink(let runtime):
            return VerificationPages.answer(req, runtime: runtime)
        case .ownJWKS(let identity):
            var response = Response.served(200, contentType: "application/json", body: ByteBuffer(string: identity.ownJWKS))
            response.cacheControl = "public, max-age=300"
            return response
        }
    }

    /// A page token for the caller's session (a new signed session cookie unless it has one),
    /// within the per-address issue limit.
    private static func issueToken(_ req: InboundRequest, state: GatewayState) -> Response {
        guard let tokens = state.pageTokens else { return .problem(.notFound, requestID: req.requestID, by: .stage(.routing)) }
        if let limiter = state.tokenIssueLimiter {
            let outcome = limiter.acquire(BucketKey(req.client.key), now: Int64(NIODeadline.now().uptimeNanoseconds))
            if !outcome.allowed {
                let seconds = (outcome.retryAfterNanos + 999_999_999) / 1_000_000_000
                return .problem(Problem(status: 429, code: "rate-limited", title: "Too Many Requests",
                                        detail: "Too many page tokens for this client; try again later.",
                                        headers: [("Retry-After", String(seconds))]),
                                requestID: req.requestID, by: .stage(.pageTokenIssue))
            }
        }
        var headers: [(String, String)] = []
        var session = req.head.headers.cookie(tokens.config.cookie)
        if !tokens.isIssuedSession(session) {
            session = tokens.newSession()
            headers.append(("Set-Cookie", "\(tokens.config.cookie)=\(session!); Path=/; HttpOnly; Secure; SameSite=Strict"))
        }
        let token = tokens.issue(session: session!, address: req.client.key.description,
                                 userAgent: req.head.headers.first(name: "user-agent") ?? "", nowMillis: NIODeadline.wallClockMillis)
        let body = JSONValue.object([
            JSONMember("token", .string(token)),
            JSONMember("min_age_ms", .number(String(tokens.config.minAge.milliseconds))),
            JSONMember("expires_in", .number(String(tokens.config.maxAge.components.seconds))),
        ]).serialized
        return .served(200, contentType: "application/json", body: ByteBuffer(string: body), headers: headers,
                       by: .stage(.pageTokenIssue))
    }

    /// The grant for a preflight the route's CORS rules allow; in shadow mode also for one they
    /// refuse (noted).
    private static func preflight(_ req: InboundRequest, route: Route) -> Response {
        guard let cors = route.config.cors else { return .problem(.corsRefused, requestID: req.requestID, by: .stage(.cors)) }
        let h = req.head.headers
        let (origin, method, asked) = (h.first(name: "origin"), h.first(name: "access-control-request-method"),
                                       h.first(name: "access-control-request-headers"))
        if let allowed = cors.preflight(origin: origin, method: method, requestHeaders: asked) {
            return .served(204, contentType: nil, body: nil, headers: allowed, by: .stage(.cors))
        }
        var view = RequestView(method: "OPTIONS", path: req.path, query: "", fields: h, clientAddress: req.client.address,
                               clientKey: req.client.key)
        guard let origin, route.shadow.letsThrough(.corsRefused, at: .cors, on: &view) else {
            return .problem(.corsRefused, requestID: req.requestID, by: .stage(.cors))
        }
        var response = Response.served(204, contentType: nil, body: nil,
                                       headers: cors.grantAsAsked(origin: origin, method: method, requestHeaders: asked),
                                       by: .stage(.cors))
        response.shadowed = view.shadowed
        return response
    }
}

extension Problem {
    static let corsRefused = Problem(status: 403, code: "cors", title: "Forbidden",
                                     detail: "This origin may not call this API from a browser.")
}
