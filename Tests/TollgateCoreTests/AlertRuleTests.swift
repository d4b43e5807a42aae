import Testing
@testable import TollgateCore

@Suite struct AlertRuleTests {
    func config(_ rules: String) throws -> GatewayConfig {
        try ConfigLoader.load(yaml: """
            routes:
              - { name: page, match: { path: / }, file: /dev/null }
            alerts:
              rules:
            \(rules)
            """, baseDirectory: "/tmp").config
    }

    @Test func rulesAreRead() throws {
        let c = try config("""
                - { name: auth, statuses: [401, 403], above: 100, within: 5m }
                - { name: share, refusal_share: 50%, min_requests: 10, within: 1m }
                - { name: signups, calls_per_signup: 20, within: 1h }
            """)
        #expect(c.alerts.rules.map(\.name) == ["auth", "share", "signups"])
        #expect(c.alerts.rules[0].measure == .statuses([401, 403]) && c.alerts.rules[0].above == 100)
        #expect(c.alerts.rules[1].measure == .refusalShare(minRequests: 10) && c.alerts.rules[1].above == 0.5)
        #expect(c.alerts.rules[2].measure == .callsPerSignup(minCalls: 20) && c.alerts.rules[2].within == .seconds(3600))
    }

    @Test func badRulesAreErrorsWithTheirPlace() {
        #expect(throws: ConfigError.self) { try config("    - { name: a, statuses: [418], above: 1 }") }
        #expect(throws: ConfigError.self) { try config("    - { name: a, statuses: [401] }") }
        #expect(throws: ConfigError.self) { try config("    - { name: a, refusal_share: 1.5 }") }
        #expect(throws: ConfigError.self) { try config("    - { name: a, refusal_share: 0.5, calls_per_signup: 3 }") }
        #expect(throws: ConfigError.self) { try config("    - { name: a, calls_per_signup: 3, within: 2h }") }
        do {
            _ = try config("    - { name: a, statuses: [401], above: 1 }\n    - { name: a, statuses: [403], above: 1 }")
            Issue.record("a repeated name was accepted")
        } catch let error as ConfigError {
            #expect(error.issues.contains { $0.path.hasPrefix("alerts.rules") && $0.message.contains("used twice") })
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func measures() {
        let totals = ["status:401": 7, "status:403": 5, "paid_calls": 30, "signups": 3]
        let total = { (name: String) in totals[name, default: 0] }
        #expect(AlertRule(name: "a", measure: .statuses([401, 403]), above: 10, within: .seconds(60)).value(total, refused: 0, answered: 0) == 12)
        #expect(AlertRule(name: "s", measure: .refusalShare(minRequests: 10), above: 0.5, within: .seconds(60))
            .value(total, refused: 3, answered: 9) == nil)  // too few to judge
        #expect(AlertRule(name: "s", measure: .refusalShare(minRequests: 10), above: 0.5, within: .seconds(60))
            .value(total, refused: 6, answered: 10) == 0.6)
        #expect(AlertRule(name: "c", measure: .callsPerSignup(minCalls: 20), above: 5, within: .seconds(60))
            .value(total, refused: 0, answered: 0) == 10)
    }
}
