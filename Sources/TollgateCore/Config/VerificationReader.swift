import Foundation

/// Reads top-level `verification` and `mail`, and checks the routes that use them.
enum VerificationReader {
    static let keys: Set<String> = ["keys", "hash_key", "link_base", "link_path", "link_ttl", "verified_for", "redirect",
                                    "refused_domains", "disposable_domains", "normalize", "domain_blocks", "message", "max_tracked"]

    static func verification(_ node: ConfigNode, secrets: [String: SecretReference], base: String) -> VerificationConfig? {
        guard let keys = node.object(allowed: keys) else { return nil }
        guard let keyNode = keys["keys"], let names = keyNode.stringList(), !names.isEmpty, names.count <= 2 else {
            node.error("needs keys: one or two secret names (the first signs links; both verify during a rotation)")
            return nil
        }
        for name in names where secrets[name] == nil { keyNode.error("\(name) names no entry under secrets") }
        let hashKey = keys["hash_key"].flatMap { $0.secretName(in: secrets) } ?? names[0]
        var linkBase: String?
        if let baseNode = keys["link_base"], let text = baseNode.nonEmptyString() {
            let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
            if let url = try? UpstreamURL(trimmed), url.pathTemplate == "/", url.staticQuery.isEmpty, !trimmed.contains("?") {
                linkBase = trimmed
                if !url.isTLS, !["127.0.0.1", "localhost", "::1"].contains(url.host) {
                    baseNode.warning("links over plain http can be read and used by anyone on the path: use https")
                }
            } else {
                baseNode.error("must be an http(s) origin without a path, e.g. https://signup.example.com")
            }
        } else if keys["link_base"] == nil {
            node.error("needs link_base: the scheme and host links point at, e.g. https://signup.example.com")
        }
        var config = VerificationConfig(keys: names, hashKey: hashKey, linkBase: linkBase ?? "",
                                        message: message(keys["message"], base: base))
        if let p = keys["link_path"]?.string() {
            if p.hasPrefix("/"), !p.contains("?") { config.linkPath = p } else { keys["link_path"]?.error("must be a path starting with /") }
        }
        if let d = keys["link_ttl"]?.duration() {
            if d < .seconds(60) || d > .seconds(7 * 86_400) { keys["link_ttl"]?.error("must be from 1m to 7d") } else { config.linkTTL = d }
        }
        if let d = keys["verified_for"]?.duration() {
            if d < .seconds(60) { keys["verified_for"]?.error("must be at least 1m") } else { config.verifiedFor = d }
        }
        if let r = keys["redirect"]?.string() {
            if r.hasPrefix("/"), !r.hasPrefix("//"), !r.contains("\\") { config.redirect = r }
            else { keys["redirect"]?.error("must be a path on this site, starting with / (an open redirect would help phishing)") }
        }
        if let n = keys["max_tracked"]?.int(min: 100) { config.maxTracked = n }
        if let list = keys["refused_domains"] { config.refusedDomains.formUnion(domains(list)) }
        if let fileNode = keys["disposable_domains"], let path = ConfigLoader.file(fileNode, base: base) {
            config.refusedDomains.formUnion(domainFile(path, node: fileNode))
        }
        if let n = keys["normalize"], let nk = n.object(allowed: ["plus_tags", "dots"]) {
            if let list = nk["plus_tags"] { config.normalization.plusTags = Set(domains(list)) }
            if let list = nk["dots"] { config.normalization.dots = Set(domains(list)) }
        }
        if let b = keys["domain_blocks"], let bk = b.object(allowed: ["requests", "within", "block_for"]) {
            let requests = bk["requests"]?.int(min: 1)
            let within = bk["within"]?.duration()
            let blockFor = bk["block_for"]?.duration()
            if let requests, let within, let blockFor {
                config.domainBlock = DomainBlockRule(requests: requests, within: within, blockFor: blockFor)
            } else if bk["requests"] == nil || bk["within"] == nil || bk["block_for"] == nil {
                b.error("needs requests, within and block_for, e.g. { requests: 50, within: 1h, block_for: 6h }")
            }
        }
        return linkBase == nil ? nil : config
    }

    /// `message: { subject, text: FILE, html: FILE }`; each file must contain `{{link}}`.
    static func message(_ node: ConfigNode?, base: String) -> MailTemplate {
        var template = MailTemplate.standard
        guard let node, let keys = node.object(allowed: ["subject", "text", "html"]) else { return template }
        if let s = keys["subject"]?.nonEmptyString() {
            if s.contains(where: { $0 == "\r" || $0 == "\n" }) || s.utf8.count > 200 {
                keys["subject"]?.error("must be one line of at most 200 bytes")
            } else {
                template.subject = s
            }
        }
        func body(_ key: String) -> String? {
            guard let n = keys[key], let path = ConfigLoader.file(n, base: base) else { return nil }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { n.error("is not UTF-8 text"); return nil }
            if !text.contains("{{link}}") { n.error("must contain {{link}}, where the link goes") }
            if text.utf8.count > 64 * 1024 { n.error("must be at most 64 KiB") }
            return text
        }
        if let text = body("text") { template.text = text }
        template.html = body("html")
        return template
    }

    static func domains(_ node: ConfigNode) -> [String] {
        guard let list = node.stringList() else { return [] }
        return list.compactMap { item in
            let d = item.lowercased()
            guard EmailAddress.isHostname(Array(d.utf8)) else { node.error("\(item) is not a domain name"); return nil }
            return d
        }
    }

    /// One domain per line; `#` comments and blank lines skipped (the format of the public
    /// disposable-email-domains lists).
    static func domainFile(_ path: String, node: ConfigNode) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { node.error("cannot be read as UTF-8 text"); return [] }
        var out: [String] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmingWhitespace().lowercased() ?? ""
            if line.isEmpty { continue }
            if EmailAddress.isHostname(Array(line.utf8)) { out.append(line) } else { node.error("line \(i + 1) is not a domain name: \(line.prefix(60))") }
        }
        return out
    }

    static let mailKeys: Set<String> = ["smtp", "webhook", "from", "timeout", "retries", "queue"]

    static func mail(_ node: ConfigNode, secrets: [String: SecretReference], base: String) -> MailConfig? {
        guard let keys = node.object(allowed: mailKeys) else { return nil }
        guard let fromNode = keys["from"], let from = fromNode.nonEmptyString() else {
            node.error("needs from: the sender, e.g. \"Sign-up <noreply@example.com>\"")
            return nil
        }
        if MailConfig.bareAddress(from) == nil { fromNode.error("must be an address or \"Name <address>\" on one line") }
        var transport: MailConfig.Transport?
        switch (keys["smtp"], keys["webhook"]) {
        case (let s?, nil): transport = smtp(s, secrets: secrets, base: base).map { .smtp($0) }
        case (nil, let w?):
            if let wk = w.object(allowed: ["url", "secret"]) {
                if let url = wk["url"]?.url() {
                    transport = .webhook(url: url, secret: wk["secret"]?.secretName(in: secrets))
                } else if wk["url"] == nil { w.error("needs url") }
            }
        case (.some, .some): node.error("has both smtp and webhook; choose one")
        case (nil, nil): node.error("needs smtp or webhook")
        }
        guard let transport else { return nil }
        var config = MailConfig(transport: transport, from: from)
        if let d = keys["timeout"]?.duration() { config.timeout = d }
        if let n = keys["retries"]?.int(min: 0) { config.retries = min(n, 10) }
        if let n = keys["queue"]?.int(min: 1) { config.queue = n }
        return config
    }

    static func smtp(_ node: ConfigNode, secrets: [String: SecretReference], base: String) -> SMTPSettings? {
        guard let keys = node.object(allowed: ["host", "port", "security", "username", "password", "ca_file", "helo"]) else { return nil }
        guard let host = keys["host"]?.nonEmptyString() else { node.error("needs host"); return nil }
        var settings = SMTPSettings(host: host, port: 587)
        if let security = keys["security"]?.oneOf(SMTPSettings.Security.self) { settings.security = security }
        settings.port = keys["port"]?.int(min: 1) ?? (settings.security == .tls ? 465 : 587)
        if settings.security == .none, !["127.0.0.1", "::1", "localhost"].contains(host) {
            keys["security"]?.error("none sends the password and the links in clear: allowed only to a loopback host")
        }
        settings.username = keys["username"]?.nonEmptyString()
        settings.password = keys["password"].flatMap { $0.secretName(in: secrets) }
        if (settings.username == nil) != (settings.password == nil) { node.error("username and password go together") }
        settings.caFile = keys["ca_file"].flatMap { ConfigLoader.file($0, base: base) }
        if let h = keys["helo"]?.nonEmptyString() {
            if EmailAddress.isHostname(Array(h.lowercased().utf8)) { settings.heloName = h } else { keys["helo"]?.error("must be a host name") }
        }
        return settings
    }

    /// Every route using the two-step flow has what it needs; limits per address run after it.
    static func checkRoutes(_ config: GatewayConfig, keys: [String: ConfigNode], items: [ConfigNode], root: ConfigNode) {
        if config.verification != nil, config.pageTokens == nil {
            (keys["verification"] ?? root).error("needs page_tokens: each link is bound to the page session that asked for it")
        }
        if config.verification != nil, config.mail == nil, keys["mail"] == nil {
            (keys["verification"] ?? root).error("needs mail: smtp or webhook, to send the links")
        }
        for (i, route) in config.routes.enumerated() {
            let node = items[i]
            let sends = { if case .sendVerification = route.target { true } else { false } }()
            if sends || route.requiresVerifiedEmail, config.verification == nil, keys["verification"] == nil {
                node.error(sends ? "sends verification links but there is no top-level verification"
                                 : "requires verified_email but there is no top-level verification")
            }
            if let v = config.verification, route.path.description == v.linkPath {
                node.error("matches verification.link_path \(v.linkPath), which the gateway answers itself")
            }
            let perAddress = route.limits.filter { $0.scope == .email || $0.scope == .emailDomain }
            guard let limit = perAddress.first else { continue }
            let step: RouteConfig.PolicyKind = sends ? .emailAddress : .verifiedEmail
            if !sends, !route.requiresVerifiedEmail {
                node.error("limit \(limit.name) counts per \(limit.scope), which needs send_verification or require: [verified_email]")
            } else if let a = route.policyOrder.firstIndex(of: step), let r = route.policyOrder.firstIndex(of: .rateLimit), r < a {
                node.error("rate_limit runs before \(step.rawValue), but limit \(limit.name) counts per \(limit.scope)")
            }
        }
        if config.budgets.contains(where: { $0.scope == .email }), !config.routes.contains(where: \.requiresVerifiedEmail) {
            (keys["budgets"] ?? root).warning("a budget is per email, but no route requires verified_email: every call counts in one shared total")
        }
    }
}

extension MailConfig {
    /// The address inside `from` (`Name <a@b>` or `a@b`), or nil when it is not one line with one address.
    public static func bareAddress(_ from: String) -> String? {
        guard !from.contains(where: { $0 == "\r" || $0 == "\n" }) else { return nil }
        var address = from
        if let open = from.lastIndex(of: "<"), from.hasSuffix(">") {
            address = String(from[from.index(after: open)..<from.index(before: from.endIndex)])
        }
        return (try? EmailAddress(parsing: address)).map { _ in address }
    }
}
