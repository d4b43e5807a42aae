/// Reads top-level `page_tokens`.
enum PageTokensReader {
    static let keys: Set<String> = ["keys", "path", "min_age", "max_age", "max_uses", "bind", "cookie", "max_tracked", "issue_rate"]

    static func read(_ node: ConfigNode, secrets: [String: SecretReference]) -> PageTokens.Config? {
        guard let keys = node.object(allowed: keys) else { return nil }
        guard let keyNode = keys["keys"], let names = keyNode.stringList(), !names.isEmpty, names.count <= 2 else {
            node.error("needs keys: one or two secret names (the first signs; both verify during a rotation)")
            return nil
        }
        for name in names where secrets[name] == nil { keyNode.error("\(name) names no entry under secrets") }  // a list: name each
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
        if let rate = keys["issue_rate"]?.rate() { config.issueRate = rate }
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
}
