import Foundation
import Logging
import NIOCore
import TollgateCore
import TollgateStore

/// Everything the data plane needs from one config: routes, upstream endpoints, file bodies, and
/// the shared parts they use. Immutable, shared by all event loops. A reload builds a new one from
/// the new config and the previous one (``init(config:secrets:logger:previous:)``), keeping what must
/// outlive a config — the store, open-connection counts, bans, and the counters of limits, budgets,
/// page tokens and identity whose definitions did not change — and each request keeps the
/// generation it started with to its end.
final class GatewayState: Sendable {
    let config: GatewayConfig
    let secrets: [String: String]
    let routes: RouteTable<Route>
    /// How each route calls its upstream, at the route's ``Route/position`` (nil: no upstream).
    private let upstreamPlans: [UpstreamPlan?]
    let files: [String: ByteBuffer]
    let accessLog: AccessLog
    let logger: Logger
    let limiters: LimiterRegistry
    let book: SpendBook
    let ledger: any SpendLedger
    /// Budget totals several gateways share (nil: this gateway's book is exact on its own).
    let sharedSpend: SharedSpend?
    let alerts: AlertSender
    let cache: ResponseCache
    let pageTokens: PageTokens?
    /// Tokens each client address may get from the token endpoint.
    let tokenIssueLimiter: RateLimiter?
    let proofOfWork: ProofOfWork?
    let captchaPasses: CaptchaPasses?
    /// Endpoints for policies' external checks (CAPTCHA siteverify), by URL.
    let checkEndpoints: [String: UpstreamEndpoint]
    /// The connection caps, checked at accept.
    let admission: ConnectionAdmission
    /// Keys, clients and token verification (nil without `identity`).
    let identity: IdentityRuntime?
    /// Bans and automatic bans.
    let access: AccessRuntime
    /// The country database (nil without `geo`).
    let geo: GeoDatabase?
    /// The `Strict-Transport-Security` line for secure requests (nil: off).
    let hstsLine: String?
    /// The same value alone, for HTTP/2 responses.
    let hstsValue: String?
    /// swift-metrics and its Prometheus registry (one per gateway, kept across reloads).
    let telemetry: Telemetry
    /// The two-step sign-up (nil without `verification`).
    let verification: VerificationRuntime?
    /// Routes whose refusal share an alert rule watches (counted per route by the console tally).
    let watchedRoutes: Set<String>

    init(config: GatewayConfig, secrets: [String: String], logger: Logger, previous old: GatewayState? = nil) throws {
        self.config = config
        self.secrets = secrets
        self.logger = logger
        self.hstsLine = ResponseEncoder.hstsLine(config)
        self.hstsValue = ResponseEncoder.hstsValue(config)
        self.telemetry = old?.telemetry ?? Telemetry()
        self.watchedRoutes = Set(config.alerts.rules.compactMap(\.route))
        func same(_ names: [String]) -> Bool { old.map { o in names.allSatisfy { o.secrets[$0] == secrets[$0] } } ?? false }
        if let old { ledger = old.ledger } else {
            ledger = try StoreOpener.open(config.store, secrets: secrets, logger: logger)
        }
        self.limiters = LimiterRegistry(maxKeys: config.rateLimitMaxKeys,
                                        previous: old?.config.rateLimitMaxKeys == config.rateLimitMaxKeys ? old?.limiters : nil,
                                        recordsUsage: ledger is any SharedRateUsage)
        let sharedBudgets = ledger as? any SharedBudgets
        if let old, old.config.budgets == config.budgets {
            book = old.book
            sharedSpend = old.sharedSpend
        } else {
            let fresh = SpendBook(budgets: config.budgets)
            book = fresh
            sharedSpend = sharedBudgets.map { SharedSpend(store: $0, book: fresh) }
            let seeded = try Self.seed(book, from: ledger, now: Int64(NIODeadline.wallClockSeconds))
            try sharedSpend?.raise(seeded)
        }
        book.setPaused(try ledger.pausedRoutes())
        self.alerts = try AlertSender(config: config, secrets: secrets, book: book, ledger: ledger, logger: logger)
        self.cache = ResponseCache(maxBytes: config.cacheMaxBytes)
        if let old {
            admission = old.admission
            admission.setCaps(maxConnections: config.maxConnections, maxPerClient: config.maxConnectionsPerClient)
        } else {
            admission = ConnectionAdmission(maxConnections: config.maxConnections, maxPerClient: config.maxConnectionsPerClient)
        }
        let nowMillis = NIODeadline.wallClockMillis
        let journal = ledger
        let samePageTokens = old?.config.pageTokens == config.pageTokens && same(config.pageTokens?.keys ?? [])
        self.tokenIssueLimiter = samePageTokens ? old?.tokenIssueLimiter : config.pageTokens.map {
            RateLimiter(rate: $0.issueRate, burst: $0.issueRate.count, maxKeys: config.rateLimitMaxKeys)
        }
        let clustered = ledger is any SharedRateUsage
        self.pageTokens = samePageTokens ? old?.pageTokens
            : config.pageTokens.map { PageTokens(config: $0, secrets: secrets, journal: journal, nowMillis: nowMillis,
                                                 shared: clustered ? SharedUses() : nil) }
        self.proofOfWork = old?.config.challenge == config.challenge && same([config.challenge?.key].compactMap { $0 }) ? old?.proofOfWork
            : config.challenge.flatMap { c in
                secrets[c.key].map { ProofOfWork(config: c, secret: $0, journal: journal, nowSeconds: nowMillis / 1000,
                                                 shared: clustered ? SharedUses() : nil) }
            }
        var shared = Route.Shared(limiters: limiters, book: book, pageTokens: pageTokens, proofOfWork: proofOfWork)
        if let captcha = config.captcha, let secret = secrets[captcha.secret] {
            let passes = old?.config.captcha == captcha && same([captcha.secret]) ? old?.captchaPasses : nil
            captchaPasses = passes ?? CaptchaPasses()
            shared.captcha = (captcha, secret, captchaPasses!)
        } else {
            captchaPasses = nil
        }
        let store = ledger
        if let old, let previous = old.identity, old.config.identity == config.identity,
           same(config.identity?.secretNames ?? []) {
            identity = previous
        } else {
            identity = try config.identity.map {
                try IdentityRuntime(config: $0, oauth: $0.oauth, secrets: secrets, store: store, maxKeys: config.rateLimitMaxKeys,
                                    logger: logger)
            }
        }
        if let old {
            access = old.access
            access.setRules(config.autoBans, maxKeys: config.rateLimitMaxKeys)
        } else {
            access = try AccessRuntime(rules: config.autoBans, store: ledger as? any BanStore, maxKeys: config.rateLimitMaxKeys,
                                       logger: logger)
        }
        if let old, let geo = old.geo, geo.path == config.geo?.database {
            self.geo = geo
        } else {
            self.geo = try config.geo.map { try GeoDatabase(path: $0.database, logger: logger) }
        }
        if let identity { shared.identity = identity.services }
        shared.identity.bans = access.board
        if let v = config.verification, let mail = config.mail, let pageTokens {
            let secretsSame = same(v.keys + [v.hashKey] + MailConfig.secretNames(mail)) && samePageTokens
            if let previous = old?.verification, previous.fits(v, mail, secretsSame: secretsSame) {
                verification = previous
            } else {
                verification = try VerificationRuntime(config: v, mail: mail, secrets: secrets, pageTokens: pageTokens, access: access,
                                                       journal: journal, maxKeys: config.rateLimitMaxKeys, logger: logger,
                                                       previous: old?.verification,
                                                       sameMailSecrets: same(MailConfig.secretNames(mail)),
                                                       followOthers: config.store.isShared)
            }
            shared.verification = verification?.services
        } else {
            old?.verification?.outbox.close()
            old?.verification?.feed?.stop()
            verification = nil
        }
        self.checkEndpoints = try config.captcha.map { [$0.siteverifyURL.description: try UpstreamEndpoint(url: $0.siteverifyURL, caFile: nil)] } ?? [:]
        self.routes = try GatewayRoutes.table(config: config, secrets: secrets, shared: shared)
        limiters.detachPrevious()
        self.upstreamPlans = try UpstreamPlan.forRoutes(config.routes, telemetry: telemetry)
        var files: [String: ByteBuffer] = [:]
        for route in config.routes {
            if case .file(let path, _) = route.target {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ConfigError(issues: [ConfigIssue(severity: .error, path: "routes.\(route.name).file", line: nil,
                                                           message: "cannot read \(path)")])
                }
                files[route.name] = ByteBuffer(bytes: data)
            }
        }
        self.files = files
        if let old, old.config.accessLog == config.accessLog {
            accessLog = old.accessLog
        } else {
            accessLog = AccessLog(sink: config.accessLog == .off ? nil : LogSink.standardOutput)
        }
    }

    /// How `route` (one of this generation's routes) calls its upstream; nil for routes without one.
    func upstreamPlan(for route: Route) -> UpstreamPlan? {
        upstreamPlans.indices.contains(route.position) ? upstreamPlans[route.position] : nil
    }

    /// Rebuilds budget totals from the ledger: every unreleased entry of the current periods counts,
    /// unsettled ones at their reserved amount.
    /// Returns what it counted, per key and entry.
    @discardableResult
    static func seed(_ book: SpendBook, from ledger: any SpendLedger, now: Int64) throws -> [(key: SpendBook.Key, at: Int64, micros: Int64)] {
        guard !book.budgets.isEmpty else { return [] }
        let since = book.budgets.map { $0.period.bounds(containing: now, in: $0.timeZone).start }.min() ?? now
        var seeded: [(key: SpendBook.Key, at: Int64, micros: Int64)] = []
        for row in try ledger.spend(since: since) {
            for key in book.keys(route: row.route, client: row.client, session: row.session, key: row.keyID, subject: row.subject, email: row.email) {
                book.seed(key, amount: row.micros, at: row.createdAt)
                seeded.append((key, row.createdAt, row.micros))
            }
        }
        return seeded
    }

    /// Whether `address` (bytes) is a configured trusted proxy.
    func isTrustedProxy(_ address: [UInt8]) -> Bool {
        config.clientIdentity.isTrusted(address)
    }
}

/// State owned by one event loop: its upstream pool, its id generator, its open client connections.
///
/// `@unchecked Sendable` because of one invariant: every mutable member is read and written only on
/// `eventLoop`. Other threads (shutdown, the metrics endpoint) hold the reference only to submit
/// work to that loop (`eventLoop.submit { … }`), never to touch the state themselves.
final class LoopContext: @unchecked Sendable {
    let eventLoop: EventLoop
    /// The config generation new requests get; replaced on this loop by a reload.
    var state: GatewayState
    let pool: UpstreamPool
    /// Makes the exchanges' upstream calls: the pool (a test may stand in a scripted caller).
    var upstream: any UpstreamCaller
    /// Refusals counted on this loop, handed to the ledger every 100 ms.
    let refusals = RefusalTally()
    /// This loop's access-log lines not yet handed to the writer.
    let accessLines: AccessLogBuffer
    /// Where this loop renders an upstream request head before it is copied into the buffer sent
    /// (its capacity is kept).
    var upstreamHead: [UInt8] = []
    /// Where this loop renders a problem document before it is copied into the response (its
    /// capacity is kept, so a refusal allocates no string for it).
    var problemText = ""
    /// The buffers this loop's HTTP/1.1 responses are rendered into, reused once written.
    let responseBuffers = BufferShelf(maxSpares: 2)
    var requestIDs = RequestIDGenerator()
    /// Open client connections, so shutdown can ask each to finish and close.
    var connections: [ObjectIdentifier: any ClientConnection] = [:]
    /// Requests whose response has not been written yet.
    var inFlight = 0
    /// Responses by status class (index 1…5 for 1xx…5xx), read by the metrics endpoint.
    var responses = [Int](repeating: 0, count: 6)
    /// Set at shutdown: connections close after their current response.
    var draining = false
    /// Connections closed because their client was refused `close_after_refusals` times in a row.
    var closedAfterRefusals = 0
    /// Refusals answered after `refusal_delay` because their connection kept being refused.
    var refusalsDelayed = 0
    /// Answers by decision, countries and recent refusals, for the console and rate alerts.
    let console = ConsoleTally()
    /// This loop's copy of the ban list and the board generation it was taken at.
    var bans: (generation: Int, list: BanList) = (-1, BanList())

    init(eventLoop: EventLoop, state: GatewayState) {
        self.eventLoop = eventLoop
        self.state = state
        self.accessLines = AccessLogBuffer(eventLoop: eventLoop)
        self.pool = UpstreamPool(eventLoop: eventLoop, maxConnections: state.config.upstreamMaxConnections,
                                 maxWaiting: state.config.upstreamMaxWaiting, idleTimeout: TimeAmount(state.config.upstreamIdleTimeout))
        self.upstream = pool
    }

    private var day: (end: Int, text: String) = (0, "")

    /// Today's date (UTC), for per-day counters; recomputed only when the day changes.
    func today() -> String {
        let now = NIODeadline.wallClockSeconds
        if now >= day.end {
            let start = now - now % 86_400
            day = (start + 86_400, UsageReport.day(Int64(start)))
        }
        return day.text
    }

    func beginDrain() {
        draining = true
        for handler in connections.values { handler.drain() }
    }
}
