import Foundation

/// Reads the spend-control parts of a config: route `cost` and `cache`, top-level `budgets`,
/// `alerts` and `store`.
enum SpendReader {
    static func cost(_ node: ConfigNode) -> CostConfig? {
        if case .scalar = node.node {
            guard let text = node.string() else { return nil }
            guard let money = Money(text) else { node.error("must be an amount such as 0.005 USD"); return nil }
            return CostConfig(perCall: money, unitsHeader: nil, unitPrice: nil, max: money, releaseOn: [.unreachable])
        }
        guard let keys = node.object(allowed: ["per_call", "units_header", "unit_price", "max", "release_on"]) else { return nil }
        let perCall = keys["per_call"].flatMap { money($0) }
        let unitPrice = keys["unit_price"].flatMap { money($0) }
        let max = keys["max"].flatMap { money($0) }
        let header = keys["units_header"]?.nonEmptyString()?.lowercased()
        if keys["per_call"] == nil, keys["units_header"] == nil { node.error("needs per_call, or units_header with unit_price and max") }
        if header != nil, unitPrice == nil || max == nil { node.error("units_header needs unit_price and max (what is reserved before the call)") }
        var releaseOn: Set<CostConfig.ReleaseRule> = [.unreachable]
        if let r = keys["release_on"], let list = r.stringList() {
            releaseOn = []
            for item in list {
                if let rule = CostConfig.ReleaseRule(rawValue: item) { releaseOn.insert(rule) } else { r.error("must list unreachable, 5xx or 429") }
            }
        }
        let currency = (perCall ?? unitPrice ?? max)?.currency ?? "USD"
        let base = perCall ?? .zero(currency)
        let cap = max ?? base
        if cap < base { keys["max"]?.error("must be ≥ per_call") }
        for m in [perCall, unitPrice, max].compactMap({ $0 }) where m.currency != currency {
            node.error("mixes currencies (\(m.currency) and \(currency))")
            return nil
        }
        return CostConfig(perCall: base, unitsHeader: header, unitPrice: unitPrice, max: cap, releaseOn: releaseOn)
    }

    static func money(_ node: ConfigNode) -> Money? {
        guard let text = node.string() else { return nil }
        guard let m = Money(text) else { node.error("must be an amount such as 0.005 USD (at most 6 decimals)"); return nil }
        return m
    }

    static let budgetKeys: Set<String> = ["name", "scope", "routes", "limit", "period", "timezone", "alert_at", "status",
                                          "on_store_error"]

    static func budgets(_ node: ConfigNode) -> [BudgetConfig] {
        guard let items = node.sequence() else { return [] }
        var out: [BudgetConfig] = []
        for item in items {
            guard let keys = item.object(allowed: budgetKeys) else { continue }
            guard let name = keys["name"]?.nonEmptyString() else { item.error("needs a name"); continue }
            var scope = BudgetConfig.Scope.global
            if let s = keys["scope"] {
                guard let parsed = s.oneOf(BudgetConfig.Scope.self) else { continue }
                scope = parsed
            }
            guard let limitNode = keys["limit"], let limit = money(limitNode) else {
                if keys["limit"] == nil { item.error("needs limit, e.g. 200 USD") }
                continue
            }
            var period = BudgetPeriod.month
            if let p = keys["period"], let text = p.string() {
                guard let parsed = BudgetPeriod(text) else { p.error("must be hour, day, month or rolling:DURATION (at least 1m)"); continue }
                period = parsed
            }
            var zone = TimeZone(identifier: "UTC")!
            if let z = keys["timezone"], let text = z.string() {
                guard let parsed = TimeZone(identifier: text) else { z.error("is not a known time zone (e.g. Europe/London)"); continue }
                zone = parsed
            }
            var alerts: [Int] = []
            if let a = keys["alert_at"], let list = a.stringList() {
                for entry in list {
                    guard entry.hasSuffix("%"), let n = Int(entry.dropLast()), (1...100).contains(n) else {
                        a.error("must list percentages such as 50%, 80%, 100%")
                        continue
                    }
                    alerts.append(n)
                }
            }
            var status = 402
            if let s = keys["status"], let n = s.int() {
                if n == 402 || n == 429 { status = n } else { s.error("must be 402 or 429") }
            }
            let routes = keys["routes"].flatMap { $0.stringList() }
            var budget = BudgetConfig(name: name, scope: scope, routes: routes, limit: limit, period: period, timeZone: zone,
                                      alertAt: alerts.sorted(), status: status)
            if let o = keys["on_store_error"], let mode = o.oneOf(OnStoreError.self) { budget.onStoreError = mode }
            out.append(budget)
        }
        return out
    }

    static func alerts(_ node: ConfigNode, secrets: [String: SecretReference]) -> AlertConfig {
        var config = AlertConfig(webhookURL: nil, secret: nil)
        guard let keys = node.object(allowed: ["webhook", "rules", "interval"]) else { return config }
        if let rules = keys["rules"] { config.rules = AlertRuleReader.rules(rules) }
        if let i = keys["interval"], let d = i.duration() {
            if d < .seconds(1) || d > .seconds(60) { i.error("must be from 1s to 60s") } else { config.interval = d }
        }
        guard let hook = keys["webhook"], let w = hook.object(allowed: ["url", "secret"]) else { return config }
        if let u = w["url"] { config.webhookURL = u.url() } else { hook.error("needs url") }
        if let name = w["secret"]?.secretName(in: secrets), secrets[name] != nil { config.secret = name }
        return config
    }

    static func store(_ node: ConfigNode?, baseDirectory: String, secrets: [String: SecretReference]) -> StoreConfig {
        guard let node else { return .sqlite(path: baseDirectory + "/tollgate.db") }
        if case .mapping = node.node { return postgres(node, secrets: secrets, baseDirectory: baseDirectory) }
        guard let text = node.string() else { return .memory }
        if text == "memory" { return .memory }
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst(7))
            guard !path.isEmpty else { node.error("needs a file path, e.g. sqlite:./tollgate.db"); return .memory }
            return .sqlite(path: path.hasPrefix("/") ? path : baseDirectory + "/" + path)
        }
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            return postgresURL(text, node: node).map { .postgres($0) } ?? .memory
        }
        node.error("must be memory, sqlite:PATH, postgres://USER@HOST:PORT/DATABASE or a map with url")
        return .memory
    }

    /// `{ url, password, tls, ca_file, connections, query_timeout, sync_interval, budget_lease }`.
    private static func postgres(_ node: ConfigNode, secrets: [String: SecretReference], baseDirectory: String) -> StoreConfig {
        guard let keys = node.object(allowed: ["url", "password", "tls", "ca_file", "connections", "query_timeout",
                                                         "sync_interval", "budget_lease"]) else { return .memory }
        guard let urlNode = keys["url"], let text = urlNode.string() else { node.error("needs url: postgres://USER@HOST:PORT/DATABASE"); return .memory }
        guard var pg = postgresURL(text, node: urlNode) else { return .memory }
        if let p = keys["password"] { pg.passwordSecret = p.secretName(in: secrets) }
        if let t = keys["tls"], let word = t.string() {
            if let tls = PostgresStoreConfig.TLS(rawValue: word) { pg.tls = tls } else { t.error("must be verify, require or disable") }
        }
        if pg.tls == .disable, !PostgresStoreConfig.isLoopback(pg.host) {
            (keys["tls"] ?? urlNode).error("disable sends the password and every query in clear: allowed only to a loopback host")
        }
        if let f = keys["ca_file"], let path = f.string() { pg.caFile = path.hasPrefix("/") ? path : baseDirectory + "/" + path }
        if let n = keys["connections"]?.int(min: 1) {
            if n > 64 { keys["connections"]?.error("must be at most 64") } else { pg.connections = n }
        }
        if let t = keys["query_timeout"], let d = t.duration() {
            if d < .milliseconds(100) || d > .seconds(60) { t.error("must be from 100ms to 60s") } else { pg.queryTimeout = d }
        }
        if let t = keys["sync_interval"], let d = t.duration() {
            if d < .milliseconds(20) || d > .seconds(10) { t.error("must be from 20ms to 10s") } else { pg.syncInterval = d }
        }
        if let t = keys["budget_lease"] {
            if t.string() == "off" {
                pg.budgetLease = .zero
            } else if let d = t.duration() {
                if d != .zero && (d < .milliseconds(500) || d > .seconds(600)) { t.error("must be off, 0s, or from 500ms to 10m") } else { pg.budgetLease = d }
            }
        }
        return .postgres(pg)
    }

    /// `postgres://USER@HOST[:PORT]/DATABASE`; a password in it is refused (it belongs under secrets:).
    private static func postgresURL(_ text: String, node: ConfigNode) -> PostgresStoreConfig? {
        guard let url = URLComponents(string: text), let host = url.host, !host.isEmpty else {
            node.error("must be postgres://USER@HOST:PORT/DATABASE")
            return nil
        }
        if url.password != nil {
            node.error("must not carry the password: declare it under secrets: and name it as store.password")
            return nil
        }
        guard let user = url.user, !user.isEmpty else { node.error("needs a user: postgres://USER@HOST/DATABASE"); return nil }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { node.error("needs a database name: postgres://USER@HOST/DATABASE"); return nil }
        if url.query != nil { node.error("takes no query parameters: use the map form (url, password, tls, ca_file)"); return nil }
        let port = url.port ?? 5432
        guard (1...65535).contains(port) else { node.error("has a port out of range"); return nil }
        return PostgresStoreConfig(host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port, user: user,
                                   database: database)
    }}
