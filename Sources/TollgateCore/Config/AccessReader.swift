/// Reads the access rules: `addresses` (gateway-wide and per route), `auto_bans`, `geo` and
/// per-route `countries`.
enum AccessReader {
    /// `addresses: { allow: [CIDR…], deny: [CIDR…] }`.
    static func addresses(_ node: ConfigNode) -> AddressRules? {
        guard let keys = node.object(allowed: ["allow", "deny"]) else { return nil }
        func list(_ name: String) -> [CIDR] {
            guard let items = keys[name]?.sequence() else { return [] }
            var out: [CIDR] = []
            for item in items {
                guard let text = item.string() else { continue }
                guard let cidr = CIDR(text) else {
                    item.error("must be an IP address or CIDR range, e.g. 203.0.113.0/24 or 2001:db8::/32")
                    continue
                }
                if let written = IPAddress.parse(String(text.split(separator: "/")[0])), written != cidr.network {
                    item.error("has host bits set: write the network address (\(ClientKey(cidr: cidr)))")
                    continue
                }
                out.append(cidr)
            }
            return out
        }
        let rules = AddressRules(allow: list("allow"), deny: list("deny"))
        if keys["allow"] == nil, keys["deny"] == nil { node.error("needs allow or deny: a list of networks") }
        return rules
    }

    /// `auto_bans: [{ name, refusals, within, statuses, ipv4_prefix, ipv6_prefix, ban_for }]`.
    static func autoBans(_ node: ConfigNode) -> [AutoBanRule] {
        guard let items = node.sequence() else { return [] }
        var rules: [AutoBanRule] = []
        var names = Set<String>()
        for (i, item) in items.enumerated() {
            guard let keys = item.object(allowed: ["name", "refusals", "within", "statuses", "ipv4_prefix", "ipv6_prefix", "ban_for"])
            else { continue }
            let name = keys["name"]?.nonEmptyString() ?? "rule\(i + 1)"
            if !names.insert(name).inserted { item.error("auto ban name \(name) is used twice") }
            let refusals = keys["refusals"]?.int(min: 1)
            if keys["refusals"] == nil { item.error("needs refusals: how many refusals within the window trip the rule") }
            let within = keys["within"]?.duration()
            if keys["within"] == nil { item.error("needs within: the window, e.g. 1m") }
            let banFor = keys["ban_for"]?.duration()
            if keys["ban_for"] == nil { item.error("needs ban_for: how long the ban lasts, e.g. 15m") }
            var statuses = AutoBanRule.defaultStatuses
            if let list = keys["statuses"]?.sequence() {
                statuses = []
                for s in list {
                    guard let n = s.int(min: 400) else { continue }
                    if n > 499 { s.error("must be a 4xx status: only refusals of the client count") } else { statuses.insert(n) }
                }
            }
            var v4 = 24
            var v6 = 48
            if let p = keys["ipv4_prefix"]?.int(min: 8) { if p <= 32 { v4 = p } else { keys["ipv4_prefix"]?.error("must be ≤ 32") } }
            if let p = keys["ipv6_prefix"]?.int(min: 16) { if p <= 128 { v6 = p } else { keys["ipv6_prefix"]?.error("must be ≤ 128") } }
            if let within, within <= .zero { keys["within"]?.error("must be longer than zero") }
            if let banFor, banFor < .seconds(1) { keys["ban_for"]?.error("must be at least 1s") }
            if let refusals, let within, let banFor {
                rules.append(AutoBanRule(name: name, refusals: refusals, within: within, statuses: statuses,
                                         ipv4Prefix: v4, ipv6Prefix: v6, banFor: banFor))
            }
        }
        return rules
    }

    /// `geo: { database: /path/GeoLite2-Country.mmdb }`.
    static func geo(_ node: ConfigNode, baseDirectory: String) -> GeoConfig? {
        guard let keys = node.object(allowed: ["database"]) else { return nil }
        guard let db = keys["database"] else {
            node.error("needs database: a MaxMind-format country database (.mmdb)")
            return nil
        }
        return ConfigLoader.file(db, base: baseDirectory).map { GeoConfig(database: $0) }
    }

    /// `countries: { allow: [DE, FR] }` or `{ deny: [...] }`.
    static func countries(_ node: ConfigNode) -> CountryRules? {
        guard let keys = node.object(allowed: ["allow", "deny"]) else { return nil }
        func codes(_ name: String) -> Set<String> {
            guard let items = keys[name]?.sequence() else { return [] }
            var out = Set<String>()
            for item in items {
                guard let text = item.string() else { continue }
                let code = text.uppercased()
                if code.utf8.count == 2, code.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
                    out.insert(code)
                } else {
                    item.error("must be a two-letter ISO 3166-1 country code, e.g. DE")
                }
            }
            return out
        }
        let rules = CountryRules(allow: codes("allow"), deny: codes("deny"))
        if keys["allow"] == nil, keys["deny"] == nil { node.error("needs allow or deny: a list of country codes") }
        if keys["allow"] != nil, keys["deny"] != nil { node.error("has allow and deny: choose one") }
        return rules
    }
}

/// The country database (`geo:`).
public struct GeoConfig: Sendable, Equatable {
    public var database: String
}
