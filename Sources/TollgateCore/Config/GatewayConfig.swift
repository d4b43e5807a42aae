/// The validated configuration of one gateway. Everything here has been checked at load time:
/// the data plane never meets an invalid value.
public struct GatewayConfig: Sendable {
    public var listen: HostPort
    /// Serve clients over TLS with these PEM files.
    public var tls: TLSFiles?
    /// Peers allowed to tell the gateway the client's address and scheme (X-Forwarded-*, Forwarded).
    public var trustedProxies: [CIDR]
    public var secrets: [String: SecretReference]
    public var accessLog: AccessLogTarget
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    public var shutdownGrace: Duration
    /// Idle keep-alive connections are closed after this long.
    public var idleTimeout: Duration
    /// A request head that has begun must be complete within this long (408, then the connection
    /// closes): a client trickling header bytes cannot hold a connection for the idle timeout.
    public var requestHeadTimeout: Duration = .seconds(10)
    /// Per event loop and upstream endpoint: connections busy at most, and calls that may wait for
    /// one (beyond: 503 `upstream-busy`, nothing sent).
    public var upstreamMaxConnections = 256
    public var upstreamMaxWaiting = 1024
    /// A kept upstream connection unused this long is closed (within its last half second, or last
    /// quarter when shorter than 1 s; sooner when the upstream's `Keep-Alive: timeout` says so):
    /// below the upstream's own keep-alive timeout, a request never meets a connection the
    /// upstream is closing.
    public var upstreamIdleTimeout: Duration = .seconds(10)
    /// A request body must keep arriving at this many bytes per second on average, after a grace of
    /// `requestHeadTimeout` (0: no minimum).
    public var minBodyRate = 1024
    /// Open client connections at most, in all and per client address (trusted proxies excepted).
    public var maxConnections = 10_000
    public var maxConnectionsPerClient = 256
    /// A connection whose client was refused this many times in a row is closed after the last
    /// answer (0: never), so a flood must pay for new connections, which the caps above bound.
    public var closeAfterRefusals = 100
    /// After this many refusals in a row on a connection, each further refusal is answered only
    /// after `refusalDelay` (0: never), so a client that floods refused requests sends few of them.
    public var delayAfterRefusals = 10
    public var refusalDelay: Duration = .milliseconds(250)
    public var routes: [RouteConfig]
    /// How the client address is found and grouped.
    public var clientIdentity: ClientIdentity
    /// Most keys one limit tracks (memory bound of rate limiting).
    public var rateLimitMaxKeys: Int
    /// Event loop threads; defaults to the number of cores.
    public var workers: Int?
    /// Listener for operators (`/metrics`), never the public one.
    public var admin: HostPort?
    /// Spend caps.
    public var budgets: [BudgetConfig] = []
    public var alerts = AlertConfig(webhookURL: nil, secret: nil)
    /// Where the usage ledger and operator switches live.
    public var store: StoreConfig = .memory
    /// Total size of the response cache.
    public var cacheMaxBytes: Int = 64 << 20
    /// Page-load tokens (`page_tokens`), needed by routes that require them.
    public var pageTokens: PageTokens.Config?
    /// Proof-of-work challenges (`challenge`), needed by routes that require them.
    public var challenge: ProofOfWork.Config?
    /// CAPTCHA verification (`captcha`), needed by routes that require it.
    public var captcha: CaptchaPolicy.Config?
    /// API keys, JWT verification (`identity`), needed by routes with `auth`.
    public var identity: IdentityConfig?
    /// Client networks the gateway serves at all (checked before anything else).
    public var addresses = AddressRules()
    /// Rules that ban a network refused too often.
    public var autoBans: [AutoBanRule] = []
    /// The country database for `countries` rules and the access log.
    public var geo: GeoConfig?
    /// The two-step sign-up (`verification`), needed by `send_verification` and `verified_email` routes.
    public var verification: VerificationConfig?
    /// How verification messages are sent (`mail`).
    public var mail: MailConfig?
    /// Directory of the config file; relative paths in the config are resolved against it.
    public var baseDirectory: String
}

public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `host:port`, `[v6]:port` or `:port` (all interfaces).
    public init?(_ text: String) {
        let s = text.trimmingWhitespace()
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

public struct TLSFiles: Sendable, Equatable {
    public var certificate: String
    public var privateKey: String
    /// `Strict-Transport-Security` on every secure response (nil: switched off with `hsts: false`).
    public var hsts: HSTS?
    /// A plain-HTTP listener that answers every request with a 308 to the same URL over HTTPS.
    public var redirectHTTP: HostPort?
    /// HTTP/2 offered by ALPN beside HTTP/1.1, with these limits (nil: `http2: false`, HTTP/1.1 only).
    public var http2: HTTP2Limits?

    public init(certificate: String, privateKey: String, hsts: HSTS? = .standard, redirectHTTP: HostPort? = nil,
                http2: HTTP2Limits? = HTTP2Limits()) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.hsts = hsts
        self.redirectHTTP = redirectHTTP
        self.http2 = http2
    }
}

/// `tls.http2`: what one HTTP/2 connection may hold. Streams over `maxConcurrentStreams` are
/// refused (`REFUSED_STREAM`); a header block over `maxHeaderListSize` (decoded, RFC 9113 §6.5.2's
/// accounting) ends the connection. The floods HTTP/2 allows (rapid reset, SETTINGS, PING,
/// CONTINUATION) have fixed bounds; docs/configuration.md lists them.
public struct HTTP2Limits: Sendable, Equatable {
    public var maxConcurrentStreams: Int
    public var maxHeaderListSize: Int

    public init(maxConcurrentStreams: Int = 100, maxHeaderListSize: Int = 16 * 1024) {
        self.maxConcurrentStreams = maxConcurrentStreams
        self.maxHeaderListSize = maxHeaderListSize
    }
}

/// `tls.hsts`: tells browsers to use HTTPS only, for `maxAge`.
public struct HSTS: Sendable, Equatable {
    public var maxAge: Duration
    public var includeSubdomains: Bool
    public var preload: Bool

    /// One year, subdomains included, not preloaded: what is sent unless `tls.hsts` says otherwise.
    public static let standard = HSTS(maxAge: .seconds(365 * 86_400), includeSubdomains: true, preload: false)

    /// The header's value, e.g. `max-age=31536000; includeSubDomains`.
    public var headerValue: String {
        var v = "max-age=\(maxAge.components.seconds)"
        if includeSubdomains { v += "; includeSubDomains" }
        if preload { v += "; preload" }
        return v
    }
}

public enum AccessLogTarget: Sendable, Equatable {
    case stdout
    case off
}

/// One route: what requests it matches, what they may contain, and where they go.
public struct RouteConfig: Sendable {
    public var name: String
    public var method: String
    public var path: PathPattern
    public var target: Target
    public var params: [ParamSpec]
    /// Server-filled parameters added to the upstream query; the client cannot set or override them.
    public var fixedQuery: [(name: String, value: String)]
    /// Server-filled members added to the upstream JSON body.
    public var fixedBody: [JSONMember]
    /// Client headers passed upstream (lower-cased names); nothing else is forwarded.
    public var forwardHeaders: [String]
    public var response: ResponseConfig
    public var maxBodyBytes: Int
    public var limits: [LimitConfig] = []
    /// What one upstream call costs; routes without it are not counted in budgets.
    public var cost: CostConfig?
    /// Serve identical validated requests from a cache.
    public var cache: CacheConfig?
    /// Browser origin checks.
    public var origin: OriginPolicy.Config?
    public var cors: CORSConfig?
    /// Page-load token required.
    public var requiresPageToken = false
    /// CAPTCHA required.
    public var requiresCaptcha = false
    /// A page session verified by an emailed link required (`require: [verified_email]`).
    public var requiresVerifiedEmail = false
    /// Proof of work required, always or over a soft rate.
    public var challenge: (when: ChallengePolicy.When, softRate: Rate)?
    /// Policies that only log what they would refuse.
    public var shadow: Set<PolicyKind> = []
    /// Stages outside the policy chain that only log what they would refuse.
    public var shadowStages: Set<ShadowStage> = []

    /// Stages outside the policy chain that can run in shadow mode.
    public enum ShadowStage: String, Sendable, CaseIterable {
        /// A cross-origin call from an origin (or with a method or headers) the CORS rules refuse is
        /// granted as asked, and noted.
        case cors
        /// A call that would pass a budget's cap is reserved and made anyway, and noted; the kill
        /// switch (`budgets pause`) is an operator's order and is never shadowed.
        case budget
    }
    /// Who may call the route (nil: anyone).
    public var auth: AuthConfig?
    /// The object-level check (needs `auth`).
    public var owner: OwnerRule?
    /// A 2xx answer of this route is a completed sign-up (`counts_signup: true`), counted for the
    /// console's calls-per-sign-up ratio and its alert.
    public var countsSignup = false
    /// Which client networks may call the route (nil: any the gateway admits).
    public var addresses: AddressRules?
    /// Which countries may call the route (needs `geo`).
    public var countries: CountryRules?
    /// The order policies run in (data, not code).
    public var policyOrder: [PolicyKind] = PolicyKind.defaultOrder

    /// The policies a route can have, by config name.
    public enum PolicyKind: String, Sendable, CaseIterable {
        case origin
        case pageToken = "page_token"
        case challenge
        case captcha
        case auth
        case rateLimit = "rate_limit"
        case validation
        case owner
        /// The address a `send_verification` route was sent (added to such routes by the loader).
        case emailAddress = "email_address"
        /// `require: [verified_email]`: the page session opened a verification link.
        case verifiedEmail = "verified_email"
        /// Cheap browser checks first, then proof of the page and of work, then who is calling (so
        /// limits can count per caller or per address), then limits (so that invalid requests are
        /// counted too), then validation, then the object-level check on the validated parameters.
        public static let defaultOrder: [PolicyKind] = [.origin, .pageToken, .challenge, .captcha, .auth, .emailAddress,
                                                        .verifiedEmail, .rateLimit, .validation, .owner]
    }

    public enum Target: Sendable {
        case upstream(UpstreamConfig)
        /// A file served as is (e.g. the page that calls the API), with its media type.
        case file(path: String, contentType: String)
        /// Hands each caller (an installation, a page) a fresh per-install client key.
        case issueClientKey(ClientKeyGrant)
        /// Sends a verification link to the address in the body (`send_verification`), answering 202.
        case sendVerification
    }

    public var upstream: UpstreamConfig? {
        if case .upstream(let u) = target { u } else { nil }
    }
}

public struct ResponseConfig: Sendable {
    /// Keep only these JSON fields (dotted paths for nested objects); nil keeps the whole body.
    public var fields: [String]?
    /// `Cache-Control` for successful responses; `no-store` when not set.
    public var cacheControl: String
    /// Upstream response headers passed to the client besides `Content-Type` (lower-cased).
    public var passHeaders: [String]
    /// Upstream error statuses passed to the client as they are (e.g. 404); others become 502.
    public var passStatuses: [Int]
}

public struct UpstreamConfig: Sendable {
    public var url: UpstreamURL
    public var method: String
    public var auth: UpstreamAuth?
    /// Whole-request deadline, from sending the request to the last byte of the response.
    public var timeout: Duration
    public var connectTimeout: Duration
    public var maxResponseBytes: Int
    /// Extra PEM trust roots for an HTTPS upstream (e.g. a private CA); system roots are used too.
    public var caFile: String?
}

/// How the secret is put on the upstream request.
public enum UpstreamAuth: Sendable, Equatable {
    case header(name: String, secret: String)
    case query(name: String, secret: String)
    case bearer(secret: String)
    case basic(user: String, secret: String)

    public var secretName: String {
        switch self {
        case .header(_, let s), .query(_, let s), .bearer(let s), .basic(_, let s): s
        }
    }
}
