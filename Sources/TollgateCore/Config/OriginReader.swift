/// Reads a route's browser-origin rules: `origin` (which pages may call it) and `cors` (which
/// other sites' pages may, and how).
enum OriginReader {
    static func origin(_ node: ConfigNode) -> OriginPolicy.Config? {
        guard let keys = node.object(allowed: ["allow", "same_site", "when_absent"]) else { return nil }
        guard let allow = keys["allow"]?.stringList(), !allow.isEmpty else {
            node.error("needs allow: the origins of your pages, e.g. [https://example.com]")
            return nil
        }
        for o in allow where o != "null" && OriginPolicy.origin(ofURL: o) != o.lowercased() {
            keys["allow"]?.error("\(o) is not an origin (scheme://host[:port], no path)")
        }
        let whenAbsent = keys["when_absent"].flatMap { $0.choice(["refuse", "allow"]) } ?? "refuse"
        return OriginPolicy.Config(allow: allow.map { $0 == "null" ? $0 : $0.lowercased() },
                                   allowSameSite: keys["same_site"]?.bool() ?? false, allowWhenAbsent: whenAbsent == "allow")
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
}
