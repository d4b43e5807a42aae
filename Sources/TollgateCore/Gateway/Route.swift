/// A route ready to serve: its config, its policy chain in order, and what was precomputed from it.
public final class Route: Sendable {
    public let config: RouteConfig
    /// Where the route stands in its config's routes: per-route tables kept outside the core (the
    /// server's upstream plans) are arrays indexed by it.
    public let position: Int
    /// Policies in the order they run; the first that does not pass decides.
    public let policies: [any Policy]
    /// The policies that want to hear how a request ended (``Policy/observesCompletion``).
    private let completing: [any Policy]
    /// How the upstream request is rendered (nil for file routes).
    public let template: UpstreamRequestTemplate?
    /// Which JSON fields of the upstream response reach the client (nil keeps the body as is).
    public let projection: ResponseProjection?
    /// Reserves and settles this route's cost in the budgets (nil when the route has no cost).
    public let spend: SpendControl?
    /// The route's limits, also asked for `RateLimit` headers on responses they did not decide.
    public let rateLimits: RateLimitPolicy?
    /// Verifies the session cookie when something on this route counts per session.
    private let sessions: PageTokens?
    /// Which policies and stages only note what they would refuse.
    public let shadow: ShadowMode
    /// The forms of the secret this route injects, which no relayed response may carry (nil without auth).
    public let secretEcho: SecretEcho?

    /// What the chain decided. (The external check boxed, as in ``Decision``.)
    public enum ChainOutcome {
        case pass
        case reject(policy: RouteConfig.PolicyKind, problem: Problem)
        /// Wait, then resume the chain at policy index `resumeAt`.
        case delay(Duration, resumeAt: Int)
        /// Make this call, let it decide, then (if it passes) resume at `resumeAt`.
        indirect case external(ExternalCheck, policy: RouteConfig.PolicyKind, resumeAt: Int)
    }

    /// Shared, gateway-wide parts that policies of several routes use.
    public struct Shared: Sendable {
        public var limiters: LimiterRegistry
        public var book: SpendBook
        public var pageTokens: PageTokens?
        public var proofOfWork: ProofOfWork?
        public var captcha: (config: CaptchaPolicy.Config, secret: String, passes: CaptchaPasses)?
        /// Keys and token verification for `auth` routes.
        public var identity = IdentityServices()
        /// The two-step sign-up, for `send_verification` and `verified_email` routes.
        public var verification: VerificationServices?

        public init(limiters: LimiterRegistry, book: SpendBook = SpendBook(budgets: []), pageTokens: PageTokens? = nil,
                    proofOfWork: ProofOfWork? = nil) {
            self.limiters = limiters
            self.book = book
            self.pageTokens = pageTokens
            self.proofOfWork = proofOfWork
        }
    }

    public convenience init(config: RouteConfig, secrets: [String: String], limiters: LimiterRegistry,
                            book: SpendBook? = nil) throws(RouteWiringError) {
        try self.init(config: config, secrets: secrets, shared: Shared(limiters: limiters, book: book ?? SpendBook(budgets: [])))
    }

    /// Builds the route; throws when it requires a policy whose gateway-wide part is missing.
    public init(config: RouteConfig, secrets: [String: String], shared: Shared, position: Int = 0) throws(RouteWiringError) {
        self.config = config
        self.position = position
        self.policies = try PolicyRegistry.chain(for: config, shared: shared)
        self.completing = policies.filter(\.observesCompletion)
        self.shadow = ShadowMode(policies: config.shadow, stages: config.shadowStages)
        self.rateLimits = policies.lazy.compactMap { $0 as? RateLimitPolicy }.first
        let identityHeaders = config.auth?.identityHeaders == true
            ? IdentityHeaders(signingSecret: shared.identity.headerSigningSecret) : nil
        self.template = config.upstream.map {
            UpstreamRequestTemplate(route: config, upstream: $0, secrets: secrets, identityHeaders: identityHeaders)
        }
        self.projection = config.response.fields.map { ResponseProjection(fields: $0) }
        self.spend = config.cost.map { SpendControl(route: config.name, cost: $0, book: shared.book) }
        let budgetsPerSession = config.cost != nil && shared.book.budgets.contains { $0.scope == .session && $0.covers(config.name) }
        self.sessions = budgetsPerSession || rateLimits?.countsSessions == true ? shared.pageTokens : nil
        if let auth = config.upstream?.auth, let secret = secrets[auth.secretName], !secret.isEmpty {
            self.secretEcho = SecretEcho(secret: secret, auth: auth)
        } else {
            self.secretEcho = nil
        }
    }

    public var name: String { config.name }

    /// Runs the chain from policy `start`.
    public func evaluate(_ request: inout RequestView, from start: Int = 0) -> ChainOutcome {
        if start == 0, let sessions {
            let cookie = request.cookie(sessions.config.cookie)
            request.session = sessions.isIssuedSession(cookie) ? cookie : nil
        }
        var index = start
        while index < policies.count {
            let policy = policies[index]
            index += 1
            switch shadow.apply(policy.evaluate(&request), by: policy.kind, to: &request) {
            case .pass: continue
            case .reject(let problem): return .reject(policy: policy.kind, problem: problem)
            case .delay(let d): return .delay(d, resumeAt: index)
            case .external(let check): return .external(check, policy: policy.kind, resumeAt: index)
            }
        }
        return .pass
    }

    /// Lets the policy that asked for `check` decide on its answer (`status` nil: no usable answer),
    /// shadow mode applied as for the rest of the chain.
    public func decide(_ check: ExternalCheck, by kind: RouteConfig.PolicyKind, status: Int?, body: [UInt8]?,
                       request: inout RequestView) -> Decision {
        shadow.apply(check.decide(status, body), by: kind, to: &request)
    }

    /// `RateLimit-Policy` and `RateLimit` for a response of this route whose chain refused before
    /// its limits ran (or never ran): the buckets' state, nothing consumed. Empty without limits.
    public func limitHeaders(_ request: RequestView) -> [(String, String)] {
        rateLimits?.currentHeaders(request) ?? []
    }

    /// Whether any policy wants to hear how a request ended: when not, ``completed(_:status:)``
    /// need not be called.
    public var observesCompletion: Bool { !completing.isEmpty }

    /// Tells the policies that ran how the request ended.
    public func completed(_ request: RequestView, status: Int) {
        for policy in completing { policy.completed(request, status: status) }
    }
}

/// Builds the route table of a loaded config with its resolved secrets.
public enum GatewayRoutes {
    public static func table(config: GatewayConfig, secrets: [String: String],
                             shared: Route.Shared) throws(RouteWiringError) -> RouteTable<Route> {
        var entries: [(String, PathPattern, Route)] = []
        for (position, route) in config.routes.enumerated() {
            entries.append((route.method, route.path, try Route(config: route, secrets: secrets, shared: shared, position: position)))
        }
        return RouteTable(entries)
    }
}
