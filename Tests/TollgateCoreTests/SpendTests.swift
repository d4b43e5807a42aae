import Foundation
import Testing
@testable import TollgateCore

@Suite struct MoneyTests {
    @Test func parsesAndFormatsExactly() {
        #expect(Money("0.005 USD")?.micros == 5_000)
        #expect(Money("200 USD")?.micros == 200_000_000)
        #expect(Money("12.5 EUR")?.description == "12.50 EUR")
        #expect(Money("0.000001 USD")?.description == "0.000001 USD")
        #expect(Money("0.0000001 USD") == nil)   // 7 decimals
        #expect(Money("-1 USD") == nil)
        #expect(Money("1,5 USD") == nil)
        #expect(Money("1 usd") == nil)
        #expect(Money("1.5") == nil)
    }

    @Test func noFloatingPointDrift() {
        // 0.1 + 0.2 in floating point is 0.30000000000000004; here ten thousand 0.0001 add to exactly 1.
        var total = Money.zero("USD")
        for _ in 0..<10_000 { total = total + Money("0.0001 USD")! }
        #expect(total == Money("1 USD"))
        #expect((Money("0.1 USD")! + Money("0.2 USD")!) == Money("0.3 USD"))
        #expect((Money("0.005 USD")! * 3).description == "0.015 USD")
    }

    @Test func costSettlesFromUnitsHeaderWithinItsMaximum() {
        let cost = CostConfig(perCall: Money("0.001 USD")!, unitsHeader: "x-units", unitPrice: Money("0.01 USD")!,
                              max: Money("0.05 USD")!, releaseOn: [.unreachable])
        #expect(cost.reserve == Money("0.05 USD"))
        #expect(cost.settle(unitsHeaderValue: "3") == Money("0.031 USD"))
        #expect(cost.settle(unitsHeaderValue: "2.5") == Money("0.026 USD"))
        #expect(cost.settle(unitsHeaderValue: "100") == Money("0.05 USD"))      // capped
        #expect(cost.settle(unitsHeaderValue: "lots") == Money("0.05 USD"))     // unreadable: worst case
        #expect(cost.settle(unitsHeaderValue: nil) == Money("0.05 USD"))
        let fixed = CostConfig(perCall: Money("0.005 USD")!, unitsHeader: nil, unitPrice: nil, max: Money("0.005 USD")!, releaseOn: [])
        #expect(fixed.settle(unitsHeaderValue: "9") == Money("0.005 USD"))
    }
}

@Suite struct BudgetPeriodTests {
    func t(_ iso: String) -> Int64 {
        Int64(ISO8601DateFormatter().date(from: iso)!.timeIntervalSince1970)
    }

    @Test func monthBoundariesInUTC() {
        let utc = TimeZone(identifier: "UTC")!
        let (start, end) = BudgetPeriod.month.bounds(containing: t("2028-02-29T23:59:59Z"), in: utc)
        #expect(start == t("2028-02-01T00:00:00Z"))
        #expect(end == t("2028-03-01T00:00:00Z"))
        let jan = BudgetPeriod.month.bounds(containing: t("2027-01-31T12:00:00Z"), in: utc)
        #expect(jan.end == t("2027-02-01T00:00:00Z"))
    }

    @Test func monthsFollowTheConfiguredTimeZone() {
        let tokyo = TimeZone(identifier: "Asia/Tokyo")!
        // 2026-11-30T16:00Z is already December 1st in Tokyo.
        let (start, _) = BudgetPeriod.month.bounds(containing: t("2026-11-30T16:00:00Z"), in: tokyo)
        #expect(start == t("2026-11-30T15:00:00Z"))
    }

    @Test func daysAcrossDaylightSavingChanges() {
        let london = TimeZone(identifier: "Europe/London")!
        // 2027-03-28: clocks go forward, the day has 23 hours.
        let spring = BudgetPeriod.day.bounds(containing: t("2027-03-28T12:00:00Z"), in: london)
        #expect(spring.start == t("2027-03-28T00:00:00Z"))
        #expect(spring.end - spring.start == 23 * 3600)
        // 2027-10-31: clocks go back, the day has 25 hours.
        let autumn = BudgetPeriod.day.bounds(containing: t("2027-10-31T12:00:00Z"), in: london)
        #expect(autumn.start == t("2027-10-30T23:00:00Z"))
        #expect(autumn.end - autumn.start == 25 * 3600)
    }

    @Test func rollingWindowsCountSlices() {
        let p = BudgetPeriod("rolling:1h")!
        let (start, end) = p.bounds(containing: 3_600 * 10 + 90, in: .current)
        #expect(end == 3_600 * 10 + 120)
        #expect(end - start == 3_600)
        #expect(BudgetPeriod("rolling:10s") == nil)
        #expect(BudgetPeriod("weekly") == nil)
    }
}

@Suite struct SpendBookTests {
    func budget(_ limit: String, scope: BudgetConfig.Scope = .global, period: BudgetPeriod = .day, routes: [String]? = nil) -> BudgetConfig {
        BudgetConfig(name: "b", scope: scope, routes: routes, limit: Money(limit)!, period: period,
                     timeZone: TimeZone(identifier: "UTC")!, alertAt: [], status: 402)
    }

    let noon: Int64 = 1_800_000_000 - 1_800_000_000 % 86_400 + 43_200

    @Test func reservationsNeverPassTheCap() {
        let book = SpendBook(budgets: [budget("0.03 USD")])
        let keys = book.keys(route: "r", client: "1.1.1.1")
        #expect(book.reserve(keys, amount: 10_000, now: noon) == nil)
        #expect(book.reserve(keys, amount: 10_000, now: noon) == nil)
        #expect(book.reserve(keys, amount: 10_000, now: noon) == nil)
        let refusal = book.reserve(keys, amount: 10_000, now: noon)
        #expect(refusal?.resetAt == noon + 43_200)
        // Giving back one makes room for exactly one more.
        book.adjust(keys, delta: -10_000, reservedAt: noon)
        #expect(book.reserve(keys, amount: 10_000, now: noon) == nil)
        #expect(book.reserve(keys, amount: 1, now: noon) != nil)
        // The next day starts from zero.
        #expect(book.reserve(keys, amount: 30_000, now: noon + 86_400) == nil)
    }

    @Test func everyApplicableBudgetMustAgree() {
        let book = SpendBook(budgets: [budget("1 USD"), budget("0.02 USD", scope: .client), budget("0.01 USD", routes: ["other"])])
        let a = book.keys(route: "r", client: "1.1.1.1")
        let b = book.keys(route: "r", client: "2.2.2.2")
        #expect(a.count == 2)  // the third budget covers another route
        #expect(book.reserve(a, amount: 20_000, now: noon) == nil)
        #expect(book.reserve(a, amount: 1, now: noon)?.budget == 1)
        // The refused reservation took nothing from the global budget.
        #expect(book.spent(SpendBook.Key(budget: 0, scope: "*"), now: noon) == 20_000)
        #expect(book.reserve(b, amount: 20_000, now: noon) == nil)
    }

    @Test func settlementAdjustsTheReservedPeriod() {
        let book = SpendBook(budgets: [budget("1 USD")])
        let control = SpendControl(route: "r", cost: CostConfig(perCall: Money("0.05 USD")!, unitsHeader: nil, unitPrice: nil,
                                                                  max: Money("0.05 USD")!, releaseOn: []), book: book)
        guard case .reserved(let r) = control.reserve(client: "c", now: noon) else { Issue.record("refused"); return }
        #expect(book.spent(r.keys[0], now: noon) == 50_000)
        #expect(r.settle(20_000))
        #expect(!r.release())   // only once
        #expect(book.spent(r.keys[0], now: noon) == 20_000)
        guard case .reserved(let r2) = control.reserve(client: "c", now: noon) else { Issue.record("refused"); return }
        #expect(r2.release())
        #expect(book.spent(r2.keys[0], now: noon) == 20_000)
    }

    @Test func pausedRoutesAreRefusedWith503() {
        let book = SpendBook(budgets: [])
        let control = SpendControl(route: "r", cost: CostConfig(perCall: Money("1 USD")!, unitsHeader: nil, unitPrice: nil,
                                                                  max: Money("1 USD")!, releaseOn: []), book: book)
        book.setPaused(["*"])
        guard case .refused(let p) = control.reserve(client: "c", now: noon) else { Issue.record("not refused"); return }
        #expect(p.status == 503 && p.code == "paused")
        book.setPaused([])
        guard case .reserved = control.reserve(client: "c", now: noon) else { Issue.record("refused"); return }
    }

    @Test func rollingWindowForgetsOldSpend() {
        let book = SpendBook(budgets: [budget("0.02 USD", period: BudgetPeriod("rolling:1h")!)])
        let keys = book.keys(route: "r", client: "c")
        #expect(book.reserve(keys, amount: 20_000, now: noon) == nil)
        let refusal = book.reserve(keys, amount: 10_000, now: noon + 1_800)
        #expect(refusal != nil)
        #expect(refusal!.resetAt <= noon + 3_600 + 60 && refusal!.resetAt >= noon + 3_600 - 60)
        #expect(book.reserve(keys, amount: 10_000, now: noon + 3_700) == nil)
    }

    @Test func budgetConfigErrors() {
        let yaml = """
        budgets:
          - { name: a, limit: 10 USD, period: fortnightly }
          - { name: b, limit: 10 EUR, timezone: Mars/Olympus }
          - { name: c, limit: 5 USD, alert_at: [150%], routes: [nope] }
        routes:
          - name: r
            match: { path: /r }
            upstream: { url: "http://h/" }
            cost: 0.01 USD
        """
        let errors = loadErrors(yaml)
        #expect(errors.contains { $0.hasPrefix("budgets[0].period: must be hour, day, month or rolling") })
        #expect(errors.contains { $0.hasPrefix("budgets[1].timezone: is not a known time zone") })
        #expect(errors.contains { $0.hasPrefix("budgets[2].alert_at: must list percentages") })
        #expect(errors.contains { $0.contains("budget c names unknown route nope") })
        let mixed = loadErrors(yaml.replacingOccurrences(of: "period: fortnightly", with: "period: day")
            .replacingOccurrences(of: "timezone: Mars/Olympus", with: "timezone: UTC")
            .replacingOccurrences(of: "alert_at: [150%], routes: [nope]", with: "alert_at: [50%]"))
        #expect(mixed.contains { $0.contains("must use one currency") })
    }
}

@Suite struct SessionBudgetTests {
    @Test func sessionsHaveTheirOwnTotalsAndCallsWithoutOneShareOne() {
        let budget = BudgetConfig(name: "s", scope: .session, routes: nil, limit: Money("0.02 USD")!, period: .day,
                                  timeZone: TimeZone(identifier: "UTC")!, alertAt: [], status: 402)
        let book = SpendBook(budgets: [budget])
        let now: Int64 = 1_800_000_000
        let a = SessionTag.of("cookie-a"), b = SessionTag.of("cookie-b")
        #expect(a != b && !a.contains("cookie"))
        #expect(book.reserve(book.keys(route: "r", client: "1.1.1.1", session: a), amount: 20_000, now: now) == nil)
        #expect(book.reserve(book.keys(route: "r", client: "1.1.1.1", session: a), amount: 1, now: now) != nil)
        #expect(book.reserve(book.keys(route: "r", client: "1.1.1.1", session: b), amount: 20_000, now: now) == nil)
        #expect(book.reserve(book.keys(route: "r", client: "2.2.2.2"), amount: 20_000, now: now) == nil)
        #expect(book.reserve(book.keys(route: "r", client: "3.3.3.3"), amount: 1, now: now) != nil)
    }
}
