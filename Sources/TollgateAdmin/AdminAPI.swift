import Foundation
import HTTPTypes
import Hummingbird
import Logging
import TollgateCore
import TollgateStore

/// What the admin API reads from the running gateway (everything durable it reads from the store).
public protocol LiveGateway: Sendable {
    /// The Prometheus text of `/metrics`.
    func metricsText() async -> String
    /// The budgets' running totals.
    var spendBook: SpendBook { get }
    /// True once the public listener is bound (`/readyz`).
    var isListening: Bool { get }
    /// Bans changed in the store: apply them now rather than at the next poll.
    func bansChanged()
    /// The config in force (it changes with each reload).
    var config: GatewayConfig { get }
    /// Reads the config file again and applies it, or says why not (nothing changed then).
    func reload() async -> ReloadOutcome
    /// The last hour as the console shows it (answers by decision, countries, recent refusals).
    func console() async -> ConsoleSnapshot
    /// Counts sign-ups the application reports.
    func recordSignups(_ count: Int) async
}

/// The admin API on the `admin:` listener: JSON resources for routes, budgets, usage, keys, OAuth
/// clients and the audit log, behind scoped admin tokens; `/livez`, `/readyz` and `/metrics`
/// without a token (keep the listener on loopback or firewalled); the OpenAPI document at
/// `/openapi.json`. Every write goes to the same store operations as the CLI and is recorded in
/// the audit log; a running gateway picks it up within a second.
public struct AdminAPI: Sendable {
    /// The config in force now.
    var config: GatewayConfig { live.config }
    /// The gateway's own store (nil with `store: memory`: `/v1` answers 503).
    let store: (any DurableStore)?
    let hasher: APIKeyHasher?
    let live: any LiveGateway
    let logger: Logger
    /// Console log-ins (cookie sessions).
    let sessions = ConsoleSessions()

    public init(config: GatewayConfig, store: (any DurableStore)?, secrets: [String: String], live: any LiveGateway, logger: Logger) {
        self.store = store
        self.hasher = config.identity?.keyHashSecret.flatMap { secrets[$0] }.map { APIKeyHasher(secret: $0) }
        self.live = live
        self.logger = logger
    }

    /// The Hummingbird application, a service to run beside the gateway.
    public func application(at address: HostPort) -> some ApplicationProtocol {
        Application(router: router(), configuration: .init(address: .hostname(address.host, port: address.port), serverName: nil),
                    logger: logger)
    }

    func router() -> Router<AdminRequestContext> {
        let router = Router(context: AdminRequestContext.self)
        router.add(middleware: AdminErrorMiddleware())
        router.get("/livez") { _, _ in json(.object([JSONMember("status", .string("ok"))])) }
        router.get("/readyz") { _, _ in
            guard live.isListening else { throw AdminProblem(status: .serviceUnavailable, code: "not-ready", detail: "Not listening yet.") }
            return json(.object([JSONMember("status", .string("ready"))]))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: await live.metricsText())))
        }
        router.get("/openapi.json") { _, _ in
            let document = AdminOpenAPI.document(routes: config.routes.map(\.name))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: document)))
        }
        addConsoleRoutes(router)
        let v1 = router.group("v1").add(middleware: AdminAuthMiddleware(store: store))
        v1.get("routes") { _, context in
            try context.require(.read)
            return json(.object([JSONMember("routes", .array(try routes()))]))
        }
        v1.post("routes/:name/pause") { _, context in try setPaused(context, true) }
        v1.post("routes/:name/resume") { _, context in try setPaused(context, false) }
        v1.get("budgets") { _, context in
            try context.require(.read)
            return json(.object([JSONMember("budgets", .array(budgets()))]))
        }
        v1.get("usage") { request, context in
            try context.require(.read)
            return try usage(request)
        }
        v1.get("keys") { _, context in
            try context.require(.read)
            let now = Int64(Date().timeIntervalSince1970)
            return json(.object([JSONMember("keys", .array(try storeCall { try db().keys() }.map { KeyOperations.describe($0, now: now) }))]))
        }
        v1.get("keys/:id") { _, context in
            try context.require(.read)
            let id = try context.parameters.require("id")
            guard let record = try storeCall({ try db().key(id: id) }) else { throw AdminProblem.notFound("key") }
            return json(KeyOperations.describe(record, now: Int64(Date().timeIntervalSince1970)))
        }
        v1.post("keys") { request, context in try await createKey(request, context) }
        v1.post("keys/:id/revoke") { _, context in
            try keyChange(context, "keys.revoke") { id, now in try KeyOperations.revoke(db(), id: id, now: now) }
        }
        v1.post("keys/:id/reactivate") { _, context in
            try keyChange(context, "keys.reactivate") { id, now in
                try KeyOperations.reactivate(db(), id: id, lifetime: nil, addUses: nil, now: now)
            }
        }
        v1.get("clients") { _, context in
            try context.require(.read)
            return json(.object([JSONMember("clients", .array(try storeCall { try db().clients() }.map(KeyOperations.describe)))]))
        }
        v1.post("clients") { request, context in try await createClient(request, context) }
        v1.post("clients/:id/revoke") { _, context in
            try context.require(.keys)
            let id = try context.parameters.require("id")
            guard try storeCall({ try db().revokeClient(id: id, at: Int64(Date().timeIntervalSince1970)) }) else {
                throw AdminProblem.notFound("active client")
            }
            audit(context, "clients.revoke", id)
            return json(.object([JSONMember("client_id", .string(id)), JSONMember("revoked", .bool(true))]))
        }
        addBanRoutes(v1)
        addConfigRoutes(v1)
        addSignupRoutes(v1)
        addRotateRoute(v1)
        v1.get("audit") { request, context in
            try context.require(.read)
            var limit = 100
            if let text = request.uri.queryParameters.get("limit") {
                guard let n = Int(text), (1...1000).contains(n) else { throw AdminProblem.invalid([("limit", "must be an integer from 1 to 1000")]) }
                limit = n
            }
            let entries = try storeCall { try db().audit(limit: limit) }
            return json(.object([JSONMember("entries", .array(entries.map { e in
                .object([JSONMember("at", .string(SpendControl.iso8601(e.at))), JSONMember("actor", .string(e.actor)),
                         JSONMember("action", .string(e.action)), JSONMember("target", .string(e.target)),
                         JSONMember("address", .string(e.address)), JSONMember("outcome", .string(e.outcome))])
            }))]))
        }
        return router
    }

    // MARK: Resources

    func routes() throws -> [JSONValue] {
        let paused = try storeCall { try db().pausedRoutes() }
        return config.routes.map { r in
            var kind = "upstream"
            if case .file = r.target { kind = "file" }
            if case .issueClientKey = r.target { kind = "issue_client_key" }
            if case .sendVerification = r.target { kind = "send_verification" }
            return .object([
                JSONMember("name", .string(r.name)), JSONMember("method", .string(r.method)), JSONMember("path", .string("\(r.path)")),
                JSONMember("kind", .string(kind)), JSONMember("upstream_host", r.upstream.map { .string($0.url.hostHeader) } ?? .null),
                JSONMember("auth", .array((r.auth?.anyOf ?? []).map { .string($0.rawValue) })),
                JSONMember("policies", .array(r.policyOrder.map { .string($0.rawValue) })),
                JSONMember("paused", .bool(paused.contains(r.name) || paused.contains("*"))),
            ])
        }
    }

    func budgets() -> [JSONValue] {
        let now = Int64(Date().timeIntervalSince1970)
        let book = live.spendBook
        let snapshot = book.snapshot(now: now)
        return book.budgets.enumerated().map { i, budget in
            let totals = snapshot.filter { $0.key.budget == i }
            let top = totals.sorted { $0.spent > $1.spent }.prefix(20)
            let (_, end) = budget.period.bounds(containing: now, in: budget.timeZone)
            return .object([
                JSONMember("name", .string(budget.name)), JSONMember("scope", .string(budget.scope.rawValue)),
                JSONMember("period", .string(budget.period.description)), JSONMember("limit", .string(budget.limit.description)),
                JSONMember("resets_at", .string(SpendControl.iso8601(end))),
                JSONMember("totals", .array(top.map { t in
                    .object([JSONMember("key", .string(t.key.scope)),
                             JSONMember("used", .string(Money(micros: t.spent, currency: budget.limit.currency).description)),
                             JSONMember("remaining", .string(Money(micros: max(0, budget.limit.micros - t.spent),
                                                                   currency: budget.limit.currency).description))])
                })),
            ])
        }
    }

    func usage(_ request: Request) throws -> Response {
        let by = request.uri.queryParameters.get("by") ?? "route"
        guard let grouping = UsageReport.Grouping(rawValue: by) else {
            throw AdminProblem.invalid([("by", "must be one of \(UsageReport.Grouping.allCases.map(\.rawValue).joined(separator: ", "))")])
        }
        let sinceText = request.uri.queryParameters.get("since") ?? "30d"
        guard let since = Self.duration(sinceText) else { throw AdminProblem.invalid([("since", "must be a duration such as 7d")]) }
        let start = Int64(Date().timeIntervalSince1970) - since.components.seconds
        let store = try db()
        let lines = try storeCall { try UsageReport(store).lines(since: start, by: grouping) }
        return json(.object([JSONMember("by", .string(by)), JSONMember("since", .string(SpendControl.iso8601(start))),
                             JSONMember("lines", .array(lines.map { l in
                                 .object([JSONMember("key", .string(l.key)), JSONMember("calls", .number(String(l.calls))),
                                          JSONMember("spent_micros", .number(String(l.spentMicros + l.openMicros))),
                                          JSONMember("cache_hits", .number(String(l.cacheHits))),
                                          JSONMember("refusals", .number(String(l.refusals))),
                                          JSONMember("uses", l.uses.map { .number(String($0)) } ?? .null),
                                          JSONMember("verification", l.verification.map { v in .object([
                                              JSONMember("requested", .number(String(v.requested))),
                                              JSONMember("confirmed", .number(String(v.confirmed))),
                                              JSONMember("addresses", .number(String(v.addresses))),
                                              JSONMember("blocked_until", v.blockedUntil.map {
                                                  .string($0 == 0 ? "until removed" : SpendControl.iso8601($0))
                                              } ?? .null),
                                          ]) } ?? .null)])
                             }))]))
    }

    // MARK: Writes

    func setPaused(_ context: AdminRequestContext, _ paused: Bool) throws -> Response {
        try context.require(.write)
        let name = try context.parameters.require("name")
        let target = name == "all" ? "*" : name
        guard target == "*" || config.routes.contains(where: { $0.name == target }) else { throw AdminProblem.notFound("route") }
        try storeCall { try db().setPaused(target, paused: paused, at: Int64(Date().timeIntervalSince1970)) }
        audit(context, paused ? "routes.pause" : "routes.resume", name)
        return json(.object([JSONMember("route", .string(name)), JSONMember("paused", .bool(paused))]))
    }

    func createKey(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        try context.require(.keys)
        guard let hasher else { throw AdminProblem(status: .conflict, code: "no-identity", detail: "The config has no identity.key_hash_secret.") }
        let body = try await object(request, allowed: ["name", "owner", "scopes", "routes", "expires", "max_uses", "kind"])
        var errors: [(String, String)] = []
        let name = Self.text(body["name"], max: 100)
        if name == nil { errors.append(("name", "required: a string of 1 to 100 characters")) }
        let owner = Self.text(body["owner"], max: 200) ?? ""
        if body["owner"] != nil, owner.isEmpty { errors.append(("owner", "must be a string of 1 to 200 characters")) }
        let scopes = strings(body["scopes"], "scopes", &errors)
        let routes = strings(body["routes"], "routes", &errors)
        for r in routes where !config.routes.contains(where: { $0.name == r }) { errors.append(("routes", "no route named \(r)")) }
        var lifetime: Duration?
        if let e = body["expires"] {
            if case .string(let s) = e, let d = Self.duration(s) { lifetime = d } else { errors.append(("expires", "must be a duration such as 90d")) }
        }
        var maxUses: Int64?
        if let m = body["max_uses"] {
            // JSON Schema's integer: any number with no fraction (3, 3.0, 3e0).
            if case .number(let n) = m, let d = Double(n), d == d.rounded(), d >= 1, d <= 1e12 { maxUses = Int64(d) } else {
                errors.append(("max_uses", "must be an integer from 1 to 10^12"))
            }
        }
        var kind = APIKeyText.Kind.api
        if let k = body["kind"] {
            if case .string(let s) = k, s == "api" || s == "install", let parsed = APIKeyText.Kind(rawValue: s) { kind = parsed }
            else { errors.append(("kind", "must be api or install")) }
        }
        guard errors.isEmpty, let name else { throw AdminProblem.invalid(errors) }
        let (record, key) = try storeCall {
            try KeyOperations.create(db(), hasher: hasher, kind: kind, name: name, owner: owner, scopes: scopes, routes: routes,
                                     lifetime: lifetime, maxUses: maxUses, now: Int64(Date().timeIntervalSince1970))
        }
        audit(context, "keys.create", record.id)
        guard case .object(var members) = KeyOperations.describe(record, now: record.createdAt) else { throw AdminProblem.unavailable }
        members.insert(JSONMember("key", .string(key)), at: 1)
        return json(.object(members), status: .created)
    }

    func keyChange(_ context: AdminRequestContext, _ action: String,
                   _ change: (String, Int64) throws -> APIKeyRecord) throws -> Response {
        try context.require(.keys)
        let id = try context.parameters.require("id")
        let now = Int64(Date().timeIntervalSince1970)
        do {
            let record = try change(id, now)
            audit(context, action, id)
            return json(KeyOperations.describe(record, now: now))
        } catch let failure as KeyOperations.Failure where failure.notFound {
            throw AdminProblem.notFound("key")
        } catch let failure as KeyOperations.Failure {
            throw AdminProblem(status: .conflict, code: "conflict", detail: failure.description)
        } catch {
            logger.error("admin store failure", metadata: ["error": "\(error)"])
            throw AdminProblem.unavailable
        }
    }

    func createClient(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        try context.require(.keys)
        guard let hasher else { throw AdminProblem(status: .conflict, code: "no-identity", detail: "The config has no identity.key_hash_secret.") }
        let body = try await object(request, allowed: ["name", "scopes"])
        var errors: [(String, String)] = []
        let name = Self.text(body["name"], max: 100)
        if name == nil { errors.append(("name", "required: a string of 1 to 100 characters")) }
        let scopes = strings(body["scopes"], "scopes", &errors)
        guard errors.isEmpty, let name else { throw AdminProblem.invalid(errors) }
        let (id, secret) = try storeCall {
            try KeyOperations.createClient(db(), hasher: hasher, name: name, scopes: scopes, now: Int64(Date().timeIntervalSince1970))
        }
        audit(context, "clients.create", id)
        return json(.object([JSONMember("client_id", .string(id)), JSONMember("client_secret", .string(secret)),
                             JSONMember("scopes", .array(scopes.map { .string($0) }))]), status: .created)
    }

    // MARK: Helpers

    /// The request body as a JSON object with only `allowed` members (422 otherwise).
    func object(_ request: Request, allowed: Set<String>) async throws -> JSONValue {
        var request = request
        let buffer = try await request.collectBody(upTo: 16 * 1024)
        guard let value = try? JSONParser.parse(Array(buffer.readableBytesView)), case .object(let members) = value else {
            throw AdminProblem.invalid([("body", "must be a JSON object")])
        }
        let unknown = members.map(\.key).filter { !allowed.contains($0) }
        if !unknown.isEmpty { throw AdminProblem.invalid(unknown.map { ($0, "is not a known field") }) }
        var seen = Set<String>()
        for m in members where !seen.insert(m.key).inserted { throw AdminProblem.invalid([(m.key, "is repeated")]) }
        return value
    }

    func strings(_ value: JSONValue?, _ field: String, _ errors: inout [(String, String)]) -> [String] {
        guard let value else { return [] }
        guard case .array(let items) = value else {
            errors.append((field, "must be an array of strings"))
            return []
        }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item, !s.isEmpty, s.unicodeScalars.count <= 100, !s.contains(" ") else {
                errors.append((field, "must be an array of non-empty strings without spaces"))
                return []
            }
            out.append(s)
        }
        return out
    }

    /// A string of 1 to `max` code points (JSON Schema counts code points, not characters).
    static func text(_ value: JSONValue?, max: Int) -> String? {
        guard case .string(let s)? = value, !s.isEmpty, s.unicodeScalars.count <= max else { return nil }
        return s
    }

    /// A whole number of a unit, as the OpenAPI document says: `^[1-9][0-9]{0,8}(ms|s|m|h|d)$`.
    static func duration(_ text: String) -> Duration? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text.dropFirst(digits.count)
        guard (1...9).contains(digits.count), digits.first != "0", ["ms", "s", "m", "h", "d"].contains(unit) else { return nil }
        return Units.parseDuration(text)
    }

    func db() throws -> any DurableStore {
        guard let store else { throw AdminProblem.unavailable }
        return store
    }

    func storeCall<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let problem as AdminProblem {
            throw problem
        } catch let failure as KeyOperations.Failure {
            throw failure.notFound ? AdminProblem.notFound("key") : AdminProblem(status: .conflict, code: "conflict", detail: failure.description)
        } catch {
            logger.error("admin store failure", metadata: ["error": "\(error)"])
            throw AdminProblem.unavailable
        }
    }

    func audit(_ context: AdminRequestContext, _ action: String, _ target: String) {
        let actor = context.token.map { "\($0.id) (\($0.name))" } ?? "-"
        do {
            try db().appendAudit(AuditEntry(at: Int64(Date().timeIntervalSince1970), actor: actor, action: action, target: target,
                                             address: context.remoteAddress, outcome: "ok"))
        } catch {
            logger.error("audit entry not written", metadata: ["action": "\(action)", "error": "\(error)"])
        }
        logger.notice("admin write", metadata: ["actor": "\(actor)", "action": "\(action)", "target": "\(target)",
                                                "address": "\(context.remoteAddress)", "request_id": "\(context.requestID)"])
    }
}

func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
    var headers = headers
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: value.serialized)))
}
