/// Reads `alerts.rules`: each `{ name, within, and one of statuses + above, refusal_share
/// (+ min_requests), calls_per_signup (+ min_calls) }`.
enum AlertRuleReader {
    static func rules(_ node: ConfigNode) -> [AlertRule] {
        guard let items = node.sequence() else { return [] }
        var out: [AlertRule] = []
        var names = Set<String>()
        for item in items {
            guard let keys = item.object(allowed: ["name", "within", "statuses", "above", "refusal_share", "min_requests",
                                                   "calls_per_signup", "min_calls", "route"]) else { continue }
            let name = keys["name"]?.nonEmptyString()
            if keys["name"] == nil { item.error("needs a name") }
            if let name, !names.insert(name).inserted { item.error("alert rule name \(name) is used twice") }
            var within = keys["within"]?.duration() ?? .seconds(300)
            if within < .seconds(30) || within > .seconds(3600) {
                keys["within"]?.error("must be from 30s to 1h (the console keeps the last hour)")
                within = .seconds(300)
            }
            let kinds = ["statuses", "refusal_share", "calls_per_signup"].filter { keys[$0] != nil }
            guard kinds.count == 1 else {
                item.error("needs exactly one of statuses (with above), refusal_share, calls_per_signup")
                continue
            }
            var rule: AlertRule?
            switch kinds[0] {
            case "statuses":
                var statuses = Set<Int>()
                for s in keys["statuses"]?.sequence() ?? [] {
                    guard let n = s.int(min: 100) else { continue }
                    if AlertRule.trackedStatuses.contains(n) { statuses.insert(n) } else {
                        s.error("must be one of \(AlertRule.trackedStatuses.map(String.init).joined(separator: ", "))")
                    }
                }
                guard let above = keys["above"]?.int(min: 0) else {
                    if keys["above"] == nil { item.error("needs above: the count within the window that fires the alert") }
                    continue
                }
                if !statuses.isEmpty { rule = AlertRule(name: name ?? "", measure: .statuses(statuses), above: Double(above), within: within) }
            case "refusal_share":
                guard let share = keys["refusal_share"]?.fraction() else { continue }
                let minimum = keys["min_requests"]?.int(min: 1) ?? 50
                rule = AlertRule(name: name ?? "", measure: .refusalShare(minRequests: minimum), above: share, within: within)
                rule?.route = keys["route"]?.nonEmptyString()
            default:
                guard let ratio = keys["calls_per_signup"]?.int(min: 1) else { continue }
                let minimum = keys["min_calls"]?.int(min: 1) ?? 20
                rule = AlertRule(name: name ?? "", measure: .callsPerSignup(minCalls: minimum), above: Double(ratio), within: within)
            }
            if keys["route"] != nil, kinds[0] != "refusal_share" { keys["route"]?.error("is for refusal_share rules only") }
            if keys["above"] != nil, kinds[0] != "statuses" { keys["above"]?.error("is for statuses rules; the threshold of this rule is its own value") }
            if let rule, name != nil { out.append(rule) }
        }
        return out
    }
}

extension ConfigNode {
    /// A number from 0 to 1 (`0.5`, `50%`).
    func fraction() -> Double? {
        guard let text = string() else { return nil }
        let value = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : Double(text)
        guard let value, (0...1).contains(value) else {
            error("must be a share from 0 to 1, e.g. 0.5 or 50%")
            return nil
        }
        return value
    }
}
