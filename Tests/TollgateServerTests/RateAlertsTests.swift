import Testing
import TollgateCore
@testable import TollgateServer

/// Rate alerts fire once per episode and recover; a per-route refusal share reads that route only.
@Suite struct RateAlertsTests {
    func snapshot(now: Int64, passed: Int, validation: Int, route: (passed: Int, refused: Int)? = nil) -> ConsoleSnapshot {
        let columns = ConsoleTally.columns
        var counts = [Int](repeating: 0, count: columns.count)
        counts[columns.firstIndex(of: "passed")!] = passed
        counts[columns.firstIndex(of: "validation")!] = validation
        var s = ConsoleSnapshot(columns: columns, series: [(now - now % 30, counts)], countries: [], recent: [])
        if let route { s.routes["lookup"] = [(now - now % 30, route.passed, route.refused)] }
        return s
    }

    @Test func oneNoticePerEpisodeAndARecovery() {
        let alerts = RateAlerts()
        let rule = AlertRule(name: "share", measure: .refusalShare(minRequests: 10), above: 0.5, within: .seconds(300))
        let now: Int64 = 1_000_000
        #expect(alerts.evaluate([rule], snapshot: snapshot(now: now, passed: 2, validation: 3), now: now).isEmpty)  // too few
        let fired = alerts.evaluate([rule], snapshot: snapshot(now: now, passed: 4, validation: 8), now: now)
        #expect(fired.map(\.0.state) == ["firing"] && fired[0].0.text.contains("0.67"))
        #expect(alerts.evaluate([rule], snapshot: snapshot(now: now, passed: 4, validation: 9), now: now).isEmpty)  // still firing: quiet
        let recovered = alerts.evaluate([rule], snapshot: snapshot(now: now, passed: 20, validation: 9), now: now)
        #expect(recovered.map(\.0.state) == ["recovered"] && alerts.recent.map(\.state) == ["recovered", "firing"])
    }

    @Test func aRouteShareReadsThatRouteOnly() {
        let alerts = RateAlerts()
        var rule = AlertRule(name: "lookup-share", measure: .refusalShare(minRequests: 5), above: 0.5, within: .seconds(300))
        rule.route = "lookup"
        let now: Int64 = 2_000_000
        // The gateway as a whole is mostly fine; the route is mostly refused.
        let s = snapshot(now: now, passed: 1000, validation: 9, route: (passed: 1, refused: 9))
        let fired = alerts.evaluate([rule], snapshot: s, now: now)
        #expect(fired.count == 1 && fired[0].0.text.contains("requests to lookup refused"))
    }
}
