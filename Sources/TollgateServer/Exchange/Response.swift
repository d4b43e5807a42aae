import NIOCore
import TollgateCore

/// One answer to one client request, as a value. Every response — a proxied answer, a cached one, a
/// file, a built-in endpoint's, a problem — is one of these, and ``ResponseDelivery`` turns it into
/// bytes, the access-log line and the counters in one place.
struct Response {
    var status: Int
    var contentType: String?
    var cacheControl = "no-store"
    /// A page (file route, browser snippet): gets the page CSP instead of the API one.
    var isPage = false
    /// Headers of this answer (`Allow`, `Retry-After`, CORS, `RateLimit`, `Cache-Status`, passed
    /// upstream headers); the gateway's own headers are added when it is written.
    var headers: [(String, String)] = []
    /// `RateLimit-Policy` and `RateLimit`, written after `headers` (a passing request's limits).
    var rateLimit: RateLimitState?
    var body: ByteBuffer?
    /// A problem answer's document, rendered only when the response is written (into the loop's
    /// reused buffer: no string or buffer of its own); `body` is nil then.
    var problem: (document: Problem, requestID: String)?
    /// Refused (or failed) rather than served: `reject` in the access log.
    var refused: Bool
    /// The policy or stage that decided; nil when the upstream's answer (or a file) was served.
    var decidedBy: Decider?
    /// For the operator's log only: never sent to the client.
    var note: String?
    var upstreamStatus: Int?
    var upstreamMicros: Int64?
    /// Refusals shadow-mode policies and stages would have made (`name:code[:reason]`).
    var shadowed: [String] = []
    /// Close the connection after this response (unread body, unparseable input).
    var closeConnection = false

    /// A problem+json answer.
    static func problem(_ problem: Problem, requestID: String, by decider: Decider, note: String? = nil) -> Response {
        Response(status: problem.status, contentType: "application/problem+json", headers: problem.headers,
                 body: nil, problem: (problem, requestID), refused: true, decidedBy: decider, note: note)
    }

    /// A 200 (or other) answer that passed.
    static func served(_ status: Int, contentType: String?, body: ByteBuffer?, headers: [(String, String)] = [],
                       by decider: Decider? = nil) -> Response {
        Response(status: status, contentType: contentType, headers: headers, body: body, refused: false, decidedBy: decider)
    }

    /// Whether a header of exactly this name (as the gateway spells its own) is present.
    func hasHeader(_ name: String) -> Bool {
        headers.contains { $0.0 == name }
    }
}

/// Who decided a response: a policy of the route's chain or a named stage of the exchange. Its name
/// is the access log's `policy` and the reason refusals are counted under.
enum Decider: Hashable {
    case policy(RouteConfig.PolicyKind)
    case stage(Stage)

    var name: String {
        switch self {
        case .policy(let kind): kind.rawValue
        case .stage(let stage): stage.rawValue
        }
    }

    /// Whether a refusal by this decider is the client's request being refused (counted by reason),
    /// rather than the gateway or the upstream failing.
    var refusesClient: Bool {
        switch self {
        case .policy: true
        case .stage(let stage): stage.refusesClient
        }
    }
}

/// The stages of a request outside the policy chain, in the order they can decide.
enum Stage: String, CaseIterable {
    /// Unparseable request.
    case http
    /// No route, or the wrong method.
    case routing
    /// Arrived while the gateway shuts down.
    case shutdown
    /// A banned client (address, network, session).
    case ban
    /// Outside the gateway's or route's address or country rules.
    case access
    /// Body over the route's `max_body`.
    case bodyLimit = "body_limit"
    /// Cross-origin rules (preflights; headers on every response).
    case cors
    /// The page-token endpoint and its per-address limit.
    case pageTokenIssue = "page_token_issue"
    /// The OAuth token endpoint and its limits.
    case oauthToken = "oauth_token"
    /// An `issue_client_key` route handed out a key.
    case issueClientKey = "issue_client_key"
    /// The two-step sign-up: links sent (202), link pages, domain floods, a full mail queue.
    case verification
    /// Served from the response cache.
    case cache
    /// Budget caps.
    case budget
    /// The operator's kill switch.
    case paused
    /// The usage ledger could not record a reservation.
    case ledger
    /// The upstream failed or answered unusably.
    case upstream
    /// The gateway itself.
    case `internal`

    var refusesClient: Bool {
        switch self {
        case .bodyLimit, .cors, .pageTokenIssue, .oauthToken, .budget, .paused, .ban, .access, .verification: true
        case .http, .routing, .shutdown, .cache, .ledger, .upstream, .internal, .issueClientKey: false
        }
    }
}
