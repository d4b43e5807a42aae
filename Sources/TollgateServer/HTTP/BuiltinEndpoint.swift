import NIOCore
import NIOHTTP1
import TollgateCore

/// Endpoints the gateway answers itself: the page-token endpoint, the browser snippet, and CORS
/// preflights for routes that allow cross-origin calls.
enum BuiltinEndpoint {
    case pageToken
    case clientScript
    case preflight(Route)
    case preflightRefused

    static let scriptPath = "/_tollgate/client.js"

    static func match(head: HTTPRequestHead, path: Substring, state: GatewayState) -> BuiltinEndpoint? {
        if head.method == .GET, let tokens = state.pageTokens {
            if path == tokens.config.path { return .pageToken }
            if path == scriptPath { return .clientScript }
        }
        if head.method == .OPTIONS, let asked = head.headers.first(name: "access-control-request-method") {
            if case .found(let route, _) = state.routes.match(method: asked.uppercased(), path: path), route.config.cors != nil {
                return .preflight(route)
            }
            return .preflightRefused
        }
        return nil
    }
}

extension ClientConnectionHandler {
    func answerBuiltin(_ endpoint: BuiltinEndpoint, req: InboundRequest) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 1024)
        switch endpoint {
        case .pageToken:
            guard let tokens = loop.state.pageTokens else { return }
            let clientKey = resolveClient(req.head.headers).key
            if let limiter = loop.state.tokenIssueLimiter {
                let outcome = limiter.acquire(BucketKey(clientKey), now: Int64(NIODeadline.now().uptimeNanoseconds))
                if !outcome.allowed {
                    let seconds = (outcome.retryAfterNanos + 999_999_999) / 1_000_000_000
                    respondWithProblem(Problem(status: 429, code: "rate-limited", title: "Too Many Requests",
                                               detail: "Too many page tokens for this client; try again later.",
                                               headers: [("Retry-After", String(seconds))]),
                                       requestID: req.requestID, decidedBy: "page_token_issue")
                    return
                }
            }
            var headers: [(String, String)] = []
            var session = req.head.headers.cookie(tokens.config.cookie)
            if !tokens.isIssuedSession(session) {
                session = tokens.newSession()
                headers.append(("Set-Cookie", "\(tokens.config.cookie)=\(session!); Path=/; HttpOnly; Secure; SameSite=Strict"))
            }
            let client = clientKey.description
            let token = tokens.issue(session: session!, address: client, userAgent: req.head.headers.first(name: "user-agent") ?? "",
                                     nowMillis: NIODeadline.wallClockMillis)
            let body = JSONValue.object([
                JSONMember("token", .string(token)),
                JSONMember("min_age_ms", .number(String(tokens.config.minAge.components.seconds * 1000 + tokens.config.minAge.components.attoseconds / 1_000_000_000_000_000))),
                JSONMember("expires_in", .number(String(tokens.config.maxAge.components.seconds))),
            ]).serialized
            let head = ResponseEncoder.Head(status: 200, contentType: "application/json", requestID: req.requestID,
                                            keepAlive: req.keepAlive, secure: req.secure, extraHeaders: headers)
            ResponseEncoder.write(head, body: ByteBuffer(string: body), into: &buffer)
            finishResponse(buffer, status: 200, decision: "pass", decidedBy: "page_token_issue")
        case .clientScript:
            let head = ResponseEncoder.Head(status: 200, contentType: "text/javascript; charset=utf-8", cacheControl: "public, max-age=300",
                                            isPage: true, requestID: req.requestID, keepAlive: req.keepAlive, secure: req.secure)
            ResponseEncoder.write(head, body: ByteBuffer(string: BrowserSnippet.source(tokenPath: loop.state.pageTokens?.config.path ?? "")),
                                  into: &buffer)
            finishResponse(buffer, status: 200, decision: "pass", decidedBy: nil)
        case .preflight(let route):
            let h = req.head.headers
            guard let cors = route.config.cors else { return }
            let (origin, method, asked) = (h.first(name: "origin"), h.first(name: "access-control-request-method"),
                                           h.first(name: "access-control-request-headers"))
            var note: String?
            var allowed = cors.preflight(origin: origin, method: method, requestHeaders: asked)
            if allowed == nil, let origin, route.config.shadowStages.contains(.cors) {
                allowed = cors.grantAsAsked(origin: origin, method: method, requestHeaders: asked)
                note = "shadow cors:cors"
                loop.state.ledger.countRefusal(route: route.name, client: req.client ?? resolveClient(h).address,
                                               reason: "shadow:cors", day: loop.today())
            }
            guard let allowed else {
                respondWithProblem(.corsRefused, requestID: req.requestID, decidedBy: "cors")
                return
            }
            let head = ResponseEncoder.Head(status: 204, contentType: nil, requestID: req.requestID, keepAlive: req.keepAlive,
                                            secure: req.secure, extraHeaders: allowed)
            ResponseEncoder.write(head, body: nil, into: &buffer)
            finishResponse(buffer, status: 204, decision: "pass", decidedBy: "cors", note: note)
        case .preflightRefused:
            respondWithProblem(.corsRefused, requestID: req.requestID, decidedBy: "cors")
        }
    }
}

extension Problem {
    static let corsRefused = Problem(status: 403, code: "cors", title: "Forbidden",
                                     detail: "This origin may not call this API from a browser.")
}
