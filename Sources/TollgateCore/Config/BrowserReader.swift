/// Reads what protects anonymous pages: route `origin`, `cors`, `require`, `challenge`, `shadow`,
/// and top-level `page_tokens` and `challenge`.
enum BrowserReader {
    static func origin(_ node: ConfigNode) -> OriginPolicy.Config? {
        guard let keys = node.object(allowed: ["allow", "same_site", "when_absent"]) else { return nil }
        guard let allow = keys["allow"]?.stringList(), !allow.isEmpty else {
            node.error("needs allow: the origins of your pages, e.g. [https://example.com]")
            return nil
        }
        for o in allow where o != "null" && OriginPolicy.origin(ofURL: o) != o.lowercased() {
            keys["allow"]?.error("\(o) is not an origin (scheme://host[:port], no path)")
        }
        var whenAbsent = false
        if let w = keys["when_absent"], let text = w.string() {
            switch text {
            case "refuse": whenAbsent = false
            case "allow": whenAbsent = true
            default: w.error("must be refuse or allow")
            }
        }
        return OriginPolicy.Config(allow: allow.map { $0 == "null" ? $0 : $0.lowercased() },
                                   allowSameSite: keys["same_site"]?.bool() ?? false, allowWhenAbsent: whenAbsent)
    }

    static func cors(_ node: ConfigNode) -> CORSConfig? {
        guard let keys = node.object(allowed: ["origins", "methods", "headers", "credentials", "max_age"]) else { return nil }
        guard let origins = keys["origins"]?.stringList(), !origins.isEmpty else { node.error("needs origins"); return nil }
        let credentials = keys["credentials"]?.bool() ?? false
        if credentials, origins.contains("*") { keys["origins"]?.error("* cannot be combined with credentials: true; list the origins") }
        for o in origins where o != "*" && o != "null" && OriginPolicy.origin(ofURL: o) != o.lowercased() {
            keys["origins"]?.error("\(o) is not an origin (scheme://host[:port], no path)")
        }
        let methods = (keys["methods"]?.stringList() ?? ["GET"]).map { $0.uppercased() }
        let headers = (keys["headers"]?.stringList() ?? ["x-tollgate-token", "x-tollgate-solution"]).map { $0.lowercased() }
        let maxAge = keys["max_age"].flatMap { $0.duration() }.map { Int($0.components.seconds) } ?? 600
        return CORSConfig(origins: origins.map { $0 == "*" || $0 == "null" ? $0 : $0.lowercased() }, methods: methods,
                          headers: headers, credentials: credentials, maxAge: maxAge)
    }

    static func challenge(_ node: ConfigNode) -> (when: ChallengePolicy.When, softRate: Rate)? {
        guard let keys = node.object(allowed: ["when", "soft_rate"]) else { return nil }
        var when = ChallengePolicy.When.always
        if let w = keys["when"], let text = w.string() {
            switch text {
            case "always": when = .always
            case "over_rate": when = .overRate
            default: w.error("must be always or over_rate")
            }
        }
        var rate = Rate("30/min")!
        if let r = keys["soft_rate"], let text = r.string() {
            if let parsed = Rate(text) { rate = parsed } else { r.error("must be a rate such as 30/min") }
        }
        return (when, rate)
    }

    static func kinds(_ node: ConfigNode, allowed: Set<RouteConfig.PolicyKind>) -> [RouteConfig.PolicyKind] {
        guard let list = node.stringList() else { return [] }
        var out: [RouteConfig.PolicyKind] = []
        for name in list {
            guard let kind = RouteConfig.PolicyKind(rawValue: name), allowed.contains(kind) else {
                node.error("\(name) is not one of \(allowed.map(\.rawValue).sorted().joined(separator: ", "))")
                continue
            }
            if out.contains(kind) { node.error("\(name) is listed twice") } else { out.append(kind) }
        }
        return out
    }

    static let pageTokenKeys: Set<String> = ["keys", "path", "min_age", "max_age", "max_uses", "bind", "cookie", "max_tracked",
                                             "issue_rate"]

    static func pageTokens(_ node: ConfigNode, secrets: [String: SecretReference]) -> PageTokens.Config? {
        guard let keys = node.object(allowed: pageTokenKeys) else { return nil }
        guard let names = keys["keys"]?.stringList(), !names.isEmpty, names.count <= 2 else {
            node.error("needs keys: one or two secret names (the first signs; both verify during a rotation)")
            return nil
        }
        for name in names {
            if secrets[name] == nil { keys["keys"]?.error("\(name) names no entry under secrets") }
        }
        var config = PageTokens.Config(keys: names, path: "/_tollgate/token", minAge: .seconds(2), maxAge: .seconds(1800),
                                       maxUses: 50, bindAddress: false, bindUserAgent: false,
                                       cookie: "__Host-tollgate_session", maxTracked: 1_000_000)
        if let p = keys["path"]?.string() {
            if p.hasPrefix("/") { config.path = p } else { keys["path"]?.error("must start with /") }
        }
        if let d = keys["min_age"]?.duration() { config.minAge = d }
        if let d = keys["max_age"]?.duration() { config.maxAge = d }
        if config.maxAge <= config.minAge { keys["max_age"]?.error("must be longer than min_age") }
        if let n = keys["max_uses"]?.int(min: 1) { config.maxUses = n }
        if let n = keys["max_tracked"]?.int(min: 100) { config.maxTracked = n }
        if let c = keys["cookie"]?.nonEmptyString() { config.cookie = c }
        if let r = keys["issue_rate"], let text = r.string() {
            if let rate = Rate(text) { config.issueRate = rate } else { r.error("must be a rate such as 30/min") }
        }
        if let b = keys["bind"], let list = b.stringList() {
            for item in list {
                switch item {
                case "address": config.bindAddress = true
                case "user_agent": config.bindUserAgent = true
                case "session": break
                default: b.error("must list session, address or user_agent")
                }
            }
        }
        return config
    }

    static func pow(_ node: ConfigNode, secrets: [String: SecretReference]) -> ProofOfWork.Config? {
        guard let keys = node.object(allowed: ["key", "expires", "base_difficulty", "max_difficulty"]) else { return nil }
        guard let key = keys["key"]?.nonEmptyString() else { node.error("needs key: a secret name for signing challenges"); return nil }
        if secrets[key] == nil { keys["key"]?.error("names no entry under secrets") }
        var config = ProofOfWork.Config(key: key, expires: .seconds(300), baseDifficulty: 20_000, maxDifficulty: 20_000_000)
        if let d = keys["expires"]?.duration() { config.expires = d }
        if let n = keys["base_difficulty"]?.int(min: 1) { config.baseDifficulty = n }
        if let n = keys["max_difficulty"]?.int(min: 1) { config.maxDifficulty = n }
        if config.maxDifficulty < config.baseDifficulty { keys["max_difficulty"]?.error("must be ≥ base_difficulty") }
        return config
    }

    static func captcha(_ node: ConfigNode, secrets: [String: SecretReference]) -> CaptchaPolicy.Config? {
        guard let keys = node.object(allowed: ["provider", "siteverify_url", "secret", "timeout", "on_error", "remember"]) else { return nil }
        var provider = CaptchaPolicy.Config.Provider.turnstile
        if let p = keys["provider"], let text = p.string() {
            guard let parsed = CaptchaPolicy.Config.Provider(rawValue: text) else { p.error("must be turnstile, hcaptcha or recaptcha"); return nil }
            provider = parsed
        }
        guard let secret = keys["secret"]?.nonEmptyString() else { node.error("needs secret: a secret name"); return nil }
        if secrets[secret] == nil { keys["secret"]?.error("names no entry under secrets") }
        let urlText = keys["siteverify_url"]?.string() ?? CaptchaPolicy.Config.defaultURL(provider)
        guard let url = try? UpstreamURL(urlText) else { keys["siteverify_url"]?.error("must be an http:// or https:// URL"); return nil }
        var failOpen = false
        if let e = keys["on_error"], let text = e.string() {
            switch text {
            case "refuse": failOpen = false
            case "allow": failOpen = true
            default: e.error("must be refuse (fail closed) or allow")
            }
        }
        return CaptchaPolicy.Config(provider: provider, siteverifyURL: url, secret: secret,
                                    timeout: keys["timeout"]?.duration() ?? .seconds(3), failOpen: failOpen,
                                    remember: keys["remember"]?.duration() ?? .seconds(600))
    }
}
