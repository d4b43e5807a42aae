import Foundation
import Yams

/// Reads a YAML config into a validated ``GatewayConfig``, reporting every problem with its path.
public enum ConfigLoader {
    public struct Loaded: Sendable {
        public var config: GatewayConfig
        /// Findings that do not stop the gateway (e.g. a forwarded credential header).
        public var warnings: [ConfigIssue]
    }

    /// Loads and validates the file at `path`. Throws ``ConfigError`` with every error found.
    public static func load(path: String) throws(ConfigError) -> Loaded {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(issues: [ConfigIssue(severity: .error, path: "", line: nil, message: "cannot read config file \(path)")])
        }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let base = (absolute as NSString).deletingLastPathComponent
        return try load(yaml: text, baseDirectory: base)
    }

    /// Loads and validates YAML text; relative paths in it resolve against `baseDirectory`.
    public static func load(yaml: String, baseDirectory: String) throws(ConfigError) -> Loaded {
        let node: Node?
        do {
            node = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(issues: [ConfigIssue(severity: .error, path: "", line: nil, message: "not valid YAML: \(error)")])
        }
        guard let node else {
            throw ConfigError(issues: [ConfigIssue(severity: .error, path: "", line: nil, message: "the config is empty")])
        }
        let diagnostics = ConfigDiagnostics()
        let root = ConfigNode(node: node, path: "", diagnostics: diagnostics)
        let config = readRoot(root, baseDirectory: baseDirectory)
        if diagnostics.hasErrors || config == nil {
            throw ConfigError(issues: diagnostics.issues)
        }
        return Loaded(config: config!, warnings: diagnostics.issues.filter { $0.severity == .warning })
    }

    static let rootKeys: Set<String> = ["listen", "tls", "trusted_proxies", "secrets", "access_log",
                                        "shutdown_grace", "idle_timeout", "request_head_timeout", "min_body_rate", "upstream_pool", "routes", "client_ip", "rate_limit", "workers",
                                        "budgets", "alerts", "store", "cache", "page_tokens", "challenge", "captcha", "admin",
                                        "max_connections", "max_connections_per_client", "close_after_refusals", "delay_after_refusals", "refusal_delay", "identity",
                                        "addresses", "auto_bans", "geo", "verification", "mail"]

    private static func readRoot(_ root: ConfigNode, baseDirectory: String) -> GatewayConfig? {
        guard let keys = root.object(allowed: rootKeys) else { return nil }

        var listen = HostPort(host: "127.0.0.1", port: 8080)
        if let node = keys["listen"], let text = node.string() {
            if let hp = HostPort(text) { listen = hp } else { node.error("must be host:port, e.g. 0.0.0.0:8080") }
        }

        var tls: TLSFiles?
        if let node = keys["tls"], let tlsKeys = node.object(allowed: ["cert", "key", "hsts", "redirect_http", "http2"]) {
            let cert = tlsKeys["cert"].flatMap { file($0, base: baseDirectory) }
            let key = tlsKeys["key"].flatMap { file($0, base: baseDirectory) }
            if tlsKeys["cert"] == nil { node.error("needs cert (a PEM certificate chain file)") }
            if tlsKeys["key"] == nil { node.error("needs key (a PEM private key file)") }
            let hsts: HSTS? = tlsKeys["hsts"].map { TLSReader.hsts($0) ?? nil } ?? .standard
            let redirect = tlsKeys["redirect_http"].flatMap { TLSReader.listener($0) }
            let http2: HTTP2Limits? = tlsKeys["http2"].map { TLSReader.http2($0) ?? nil } ?? HTTP2Limits()
            if let cert, let key { tls = TLSFiles(certificate: cert, privateKey: key, hsts: hsts, redirectHTTP: redirect, http2: http2) }
        }

        var trusted: [CIDR] = []
        if let node = keys["trusted_proxies"], let items = node.sequence() {
            for item in items {
                guard let text = item.string() else { continue }
                if let cidr = CIDR(text) { trusted.append(cidr) } else { item.error("must be an IP address or CIDR range, e.g. 10.0.0.0/8") }
            }
        }

        var secrets: [String: SecretReference] = [:]
        if let node = keys["secrets"], let members = node.mapping() {
            for (name, value) in members {
                guard let text = value.string() else { continue }
                if let ref = SecretReference(text) {
                    secrets[name] = ref
                } else if SecretHeuristics.looksLikeLiteralSecret(text) {
                    value.error("looks like a literal secret; the config must hold a reference (env:NAME or file:/path), never the value")
                } else {
                    value.error("must be a reference: env:NAME or file:/path")
                }
            }
        }

        let accessLog: AccessLogTarget = keys["access_log"].flatMap { $0.choice(["stdout", "off"]) } == "off" ? .off : .stdout

        var forwardingHeader = ClientIdentity.ForwardingHeader.xForwardedFor
        var ipv4Prefix = 32
        var ipv6Prefix = 64
        if let node = keys["client_ip"], let c = node.object(allowed: ["header", "ipv4_prefix", "ipv6_prefix"]) {
            if let parsed = c["header"]?.oneOf(ClientIdentity.ForwardingHeader.self, lowercased: true) { forwardingHeader = parsed }
            if let p = c["ipv4_prefix"]?.int(min: 8) { if p <= 32 { ipv4Prefix = p } else { c["ipv4_prefix"]?.error("must be ≤ 32") } }
            if let p = c["ipv6_prefix"]?.int(min: 16) { if p <= 128 { ipv6Prefix = p } else { c["ipv6_prefix"]?.error("must be ≤ 128") } }
        }
        var maxKeys = 1_000_000
        if let node = keys["rate_limit"], let r = node.object(allowed: ["max_keys"]) {
            if let n = r["max_keys"]?.int(min: 64) { maxKeys = n }
        }
        let workers = keys["workers"].flatMap { $0.int(min: 1) }

        let shutdownGrace = keys["shutdown_grace"].flatMap { $0.duration() } ?? .seconds(10)
        let idleTimeout = keys["idle_timeout"].flatMap { $0.duration() } ?? .seconds(60)

        var routes: [RouteConfig] = []
        /// The node each route in `routes` was read from (routes that failed to read are left out of both).
        var items: [ConfigNode] = []
        if let node = keys["routes"], let all = node.sequence() {
            let reader = RouteReader(baseDirectory: baseDirectory, secrets: secrets)
            for item in all {
                guard let route = reader.read(item) else { continue }
                routes.append(route)
                items.append(item)
            }
            var sharedLimits: [String: LimitConfig] = [:]
            for (i, route) in routes.enumerated() {
                for limit in route.limits where limit.shared {
                    var comparable = limit
                    comparable.weight = 1
                    comparable.skipSuccessful = false
                    if let first = sharedLimits[limit.name] {
                        var other = first
                        other.weight = 1
                        other.skipSuccessful = false
                        if other != comparable { items[i].error("limit \(limit.name) is shared by name but defined differently elsewhere") }
                    } else {
                        sharedLimits[limit.name] = limit
                    }
                }
            }
            var seenNames = Set<String>()
            var seenMatches = Set<String>()
            for (i, route) in routes.enumerated() {
                if !seenNames.insert(route.name).inserted { items[i].error("route name \(route.name) is used twice") }
                if !seenMatches.insert("\(route.method) \(route.path)").inserted {
                    items[i].error("another route already matches \(route.method) \(route.path)")
                }
            }
        } else if keys["routes"] == nil {
            root.error("needs routes: a list of at least one route")
        }

        if tls == nil, !["127.0.0.1", "::1", "localhost"].contains(listen.host) {
            keys["listen"]?.warning("serves plain HTTP on a non-loopback address: add tls (cert, key, and redirect_http for port 80), or make sure a proxy in front terminates TLS")
        }
        if trusted.isEmpty, !["127.0.0.1", "::1", "localhost"].contains(listen.host) {
            keys["listen"]?.warning("trusted_proxies is empty and the listener is not on loopback: if a proxy or load balancer sits in front, every client will look like it")
        }

        let budgets = keys["budgets"].map { SpendReader.budgets($0) } ?? []
        let alerts = keys["alerts"].map { SpendReader.alerts($0, secrets: secrets) } ?? AlertConfig(webhookURL: nil, secret: nil)
        let store = SpendReader.store(keys["store"], baseDirectory: baseDirectory, secrets: secrets)
        var cacheMax = 64 << 20
        if let c = keys["cache"], let ck = c.object(allowed: ["max_bytes"]), let n = ck["max_bytes"]?.byteSize() { cacheMax = n }
        checkSpend(budgets: budgets, routes: routes, node: keys["budgets"] ?? root)

        var config = GatewayConfig(listen: listen, tls: tls, trustedProxies: trusted, secrets: secrets, accessLog: accessLog,
                             shutdownGrace: shutdownGrace, idleTimeout: idleTimeout, routes: routes,
                             clientIdentity: ClientIdentity(trustedProxies: trusted, header: forwardingHeader,
                                                            ipv4Prefix: ipv4Prefix, ipv6Prefix: ipv6Prefix),
                             rateLimitMaxKeys: maxKeys, workers: workers, baseDirectory: baseDirectory)
        if let n = keys["max_connections"]?.int(min: 1) { config.maxConnections = n }
        if let n = keys["max_connections_per_client"]?.int(min: 1) { config.maxConnectionsPerClient = n }
        if let n = keys["close_after_refusals"]?.int(min: 0) { config.closeAfterRefusals = n }
        if let n = keys["delay_after_refusals"]?.int(min: 0) { config.delayAfterRefusals = n }
        if let node = keys["refusal_delay"], let d = node.duration() {
            if d > .seconds(10) { node.error("must be at most 10s") } else { config.refusalDelay = d }
        }
        if let node = keys["request_head_timeout"], let d = node.duration() {
            if d < .milliseconds(100) { node.error("must be at least 100ms") } else { config.requestHeadTimeout = d }
        }
        if let n = keys["min_body_rate"]?.byteSize() { config.minBodyRate = n }
        if let node = keys["upstream_pool"], let pool = node.object(allowed: ["max_connections", "max_waiting", "idle_timeout"]) {
            if let n = pool["max_connections"]?.int(min: 1) { config.upstreamMaxConnections = n }
            if let n = pool["max_waiting"]?.int(min: 0) { config.upstreamMaxWaiting = n }
            if let node = pool["idle_timeout"], let d = node.duration() {
                if d < .milliseconds(100) { node.error("must be at least 100ms") } else { config.upstreamIdleTimeout = d }
            }
        }
        config.budgets = budgets
        config.alerts = alerts
        config.store = store
        config.cacheMaxBytes = cacheMax
        if let node = keys["admin"], let text = node.string() {
            if let hp = HostPort(text) {
                config.admin = hp
                if hp == listen { node.error("must differ from listen: operator endpoints never share the public listener") }
                if !["127.0.0.1", "::1", "localhost"].contains(hp.host) { node.warning("the admin listener is not on loopback: firewall it") }
            } else {
                node.error("must be host:port, e.g. 127.0.0.1:9090")
            }
        }
        config.pageTokens = keys["page_tokens"].flatMap { PageTokensReader.read($0, secrets: secrets) }
        config.challenge = keys["challenge"].flatMap { ChallengeReader.gateway($0, secrets: secrets) }
        config.captcha = keys["captcha"].flatMap { CaptchaReader.read($0, secrets: secrets) }
        config.identity = keys["identity"].flatMap { IdentityReader.gateway($0, secrets: secrets, baseDirectory: baseDirectory) }
        config.addresses = keys["addresses"].flatMap { AccessReader.addresses($0) } ?? AddressRules()
        config.autoBans = keys["auto_bans"].map { AccessReader.autoBans($0) } ?? []
        config.geo = keys["geo"].flatMap { AccessReader.geo($0, baseDirectory: baseDirectory) }
        config.verification = keys["verification"].flatMap { VerificationReader.verification($0, secrets: secrets, base: baseDirectory) }
        config.mail = keys["mail"].flatMap { VerificationReader.mail($0, secrets: secrets, base: baseDirectory) }
        VerificationReader.checkRoutes(config, keys: keys, items: items, root: root)
        let routeNames = Set(routes.map(\.name))
        for rule in config.alerts.rules {
            if let route = rule.route, !routeNames.contains(route) { (keys["alerts"] ?? root).error("alert rule \(rule.name) names unknown route \(route)") }
        }
        for (i, route) in routes.enumerated() {
            let node = items[i]
            if case .issueClientKey(let grant) = route.target {
                if config.identity?.keyHashSecret == nil { node.error("issues client keys but there is no identity.key_hash_secret") }
                for name in grant.routes {
                    if !routeNames.contains(name) { node.error("issue_client_key names unknown route \(name)") }
                    else if routes.first(where: { $0.name == name })?.auth?.anyOf.contains(.clientKey) != true {
                        node.warning("issue_client_key names route \(name), whose auth does not accept client_key")
                    }
                }
            }
            if let auth = route.auth {
                if auth.acceptsKeys, config.identity?.keyHashSecret == nil {
                    node.error("accepts keys but there is no identity.key_hash_secret")
                }
                if auth.anyOf.contains(.jwt), config.identity?.jwt == nil, config.identity?.oauth == nil {
                    node.error("accepts jwt but there is no identity.jwt (an identity provider's keys) or identity.oauth (Tollgate's own tokens)")
                }
            }
            if route.requiresPageToken, config.pageTokens == nil { node.error("requires page_token but there is no top-level page_tokens") }
            if route.challenge != nil, config.challenge == nil { node.error("requires challenge but there is no top-level challenge") }
            if route.countries != nil, config.geo == nil, keys["geo"] == nil { node.error("has countries rules but there is no top-level geo database") }
            if route.requiresCaptcha, config.captcha == nil { node.error("requires captcha but there is no top-level captcha") }
        }
        checkClientChosenKeys(config, routeNodes: items, budgetsNode: keys["budgets"] ?? root)
        return config
    }

    /// Warns where a limit or budget is keyed by a value the client chooses: an invented value
    /// would get a fresh bucket or total. The page-token session cookie is the exception — the
    /// gateway signs it, and counts unsigned values in one shared bucket.
    private static func checkClientChosenKeys(_ config: GatewayConfig, routeNodes: [ConfigNode], budgetsNode: ConfigNode) {
        let sessionCookie = config.pageTokens?.cookie
        for (i, route) in config.routes.enumerated() {
            for limit in route.limits {
                switch limit.scope {
                case .header(let name):
                    routeNodes[i].warning("limit \(limit.name) counts per \(name) header, whose value the client chooses: a new value gets a fresh bucket; pair it with a per: ip limit")
                case .cookie(let name) where name != sessionCookie:
                    let hint = sessionCookie.map { "count per: cookie:\($0) (the page-token session, which the gateway verifies)" } ?? "configure page_tokens and count per its session cookie"
                    routeNodes[i].warning("limit \(limit.name) counts per cookie \(name), whose value the client chooses: a new value gets a fresh bucket; \(hint), or pair it with a per: ip limit")
                default:
                    break
                }
            }
        }
        if config.pageTokens == nil {
            for budget in config.budgets where budget.scope == .session {
                budgetsNode.warning("budget \(budget.name) is per session, but without page_tokens no session can be verified: every call counts in one shared total")
            }
        }
    }

    /// Budgets must name existing routes, and all money must be in one currency.
    private static func checkSpend(budgets: [BudgetConfig], routes: [RouteConfig], node: ConfigNode) {
        let names = Set(routes.map(\.name))
        let currencies = Set(budgets.map(\.limit.currency) + routes.compactMap { $0.cost?.perCall.currency })
        if currencies.count > 1 { node.error("budgets and costs must use one currency (found \(currencies.sorted().joined(separator: ", ")))") }
        var seen = Set<String>()
        for budget in budgets {
            if !seen.insert(budget.name).inserted { node.error("budget name \(budget.name) is used twice") }
            for route in budget.routes ?? [] where !names.contains(route) { node.error("budget \(budget.name) names unknown route \(route)") }
            let covered = routes.filter { budget.covers($0.name) && $0.upstream != nil }
            if !covered.isEmpty, covered.allSatisfy({ $0.cost == nil }) {
                node.warning("budget \(budget.name) covers only routes without a cost; it will never count anything")
            }
        }
    }

    /// A path to an existing file, resolved against the config's directory.
    static func file(_ node: ConfigNode, base: String) -> String? {
        guard let text = node.nonEmptyString() else { return nil }
        let full = text.hasPrefix("/") ? text : base + "/" + text
        guard FileManager.default.isReadableFile(atPath: full) else {
            node.error("file \(text) does not exist or cannot be read")
            return nil
        }
        return full
    }
}
