import Foundation
import TollgateCore
import TollgateStore

/// The console's one data document (`GET /console/api/overview`), rebuilt on every poll: budgets
/// with a forecast, money the cache saved, the last hour of answers by decision, top clients, keys
/// and countries, the calls-per-sign-up ratio, recent refusals and alerts, pauses and bans.
extension AdminAPI {
    func overview() async throws -> JSONValue {
        let now = Int64(Date().timeIntervalSince1970)
        let snapshot = await live.console()
        let hourAgo = now - 3600
        let refusalColumns = snapshot.refusalColumns
        var byReason: [JSONMember] = []
        for name in refusalColumns {
            let n = snapshot.total(name)
            if n > 0 { byReason.append(JSONMember(name, .number(String(n)))) }
        }
        let refused = refusalColumns.reduce(0) { $0 + snapshot.total($1) }
        let upstream = snapshot.total("paid_calls", since: hourAgo)
        let signups = snapshot.total("signups", since: hourAgo)
        var members: [JSONMember] = [
            JSONMember("now", .string(SpendControl.iso8601(now))),
            JSONMember("budgets", .array(budgetForecasts(now: now))),
            JSONMember("totals", .object([
                JSONMember("passed", number(snapshot.total("passed"))), JSONMember("cached", number(snapshot.total("cached"))),
                JSONMember("refused", number(refused)), JSONMember("paid_calls", number(upstream)), JSONMember("signups", number(signups)),
                JSONMember("by_reason", .object(byReason)),
            ])),
            JSONMember("calls_per_signup", signups > 0 ? .number(String(format: "%.2f", Double(upstream) / Double(signups))) : .null),
            JSONMember("series", .object([
                JSONMember("bucket_seconds", number(Int(ConsoleSnapshot.bucketSeconds))),
                JSONMember("columns", .array(snapshot.columns.map { .string($0) })),
                JSONMember("buckets", .array(snapshot.series.map { b in
                    .array([number(Int(b.start))] + b.counts.map(number))
                })),
            ])),
            JSONMember("countries", .array(snapshot.countries.prefix(10).map { c in
                .object([JSONMember("country", .string(c.code)), JSONMember("calls", number(c.calls)), JSONMember("refusals", number(c.refusals))])
            })),
            JSONMember("recent_refusals", .array(snapshot.recent.map { r in
                .object([JSONMember("at", .string(SpendControl.iso8601(r.at))), JSONMember("client", .string(r.client)),
                         JSONMember("route", .string(r.route)), JSONMember("method", .string(r.method)), JSONMember("path", .string(r.path)),
                         JSONMember("user_agent", .string(r.userAgent)), JSONMember("status", number(r.status)),
                         JSONMember("reason", .string(r.reason))])
            })),
            JSONMember("alerts", .array(snapshot.alerts.map { a in
                .object([JSONMember("at", .string(SpendControl.iso8601(a.at))), JSONMember("rule", .string(a.rule)),
                         JSONMember("state", .string(a.state)), JSONMember("text", .string(a.text))])
            })),
            JSONMember("routes", .array(config.routes.map { .string($0.name) })),
        ]
        if let store {
            let paused = (try? store.pausedRoutes()) ?? []
            members.append(JSONMember("paused", .array(paused.sorted().map { .string($0) })))
            let bans = (try? store.activeBans(now: now)) ?? []
            members.append(JSONMember("bans", .array(bans.prefix(50).map(BanOperations.describe))))
        }
        if let store {
            let report = UsageReport(store)
            let day = now - now % 86_400
            let routes = (try? report.lines(since: day, by: .route)) ?? []
            let saved = routes.reduce(Int64(0)) { $0 + $1.savedMicros }
            let currency = config.budgets.first?.limit.currency ?? config.routes.compactMap { $0.cost?.perCall.currency }.first ?? "USD"
            members.append(JSONMember("cache_today", .object([
                JSONMember("hits", .number(String(routes.reduce(Int64(0)) { $0 + $1.cacheHits }))),
                JSONMember("saved", .string(Money(micros: saved, currency: currency).description)),
            ])))
            members.append(JSONMember("top_clients", top((try? report.lines(since: now - 86_400, by: .client)) ?? [])))
            members.append(JSONMember("top_keys", top(((try? report.lines(since: now - 86_400, by: .key)) ?? []).filter { !$0.key.isEmpty })))
            if config.verification != nil {
                let domains = ((try? report.lines(since: now - 86_400, by: .domain)) ?? [])
                    .sorted { ($0.verification?.requested ?? 0, $0.key) > ($1.verification?.requested ?? 0, $1.key) }.prefix(10)
                members.append(JSONMember("top_domains", .array(domains.map { l in
                    let v = l.verification ?? UsageReport.DomainVerification()
                    return .object([JSONMember("domain", .string(l.key)), JSONMember("requested", .number(String(v.requested))),
                                    JSONMember("confirmed", .number(String(v.confirmed))), JSONMember("addresses", .number(String(v.addresses))),
                                    JSONMember("calls", .number(String(l.calls))),
                                    JSONMember("blocked_until", v.blockedUntil.map { .string($0 == 0 ? "until removed" : SpendControl.iso8601($0)) } ?? .null)])
                })))
            }
        }
        return .object(members)
    }

    private func top(_ lines: [UsageReport.Line]) -> JSONValue {
        .array(lines.sorted { ($0.calls + $0.refusals, $0.key) > ($1.calls + $1.refusals, $1.key) }.prefix(10).map { l in
            .object([JSONMember("key", .string(l.key)), JSONMember("calls", .number(String(l.calls))),
                     JSONMember("refusals", .number(String(l.refusals)))])
        })
    }

    /// Each budget's largest total, and when the cap is reached if spending goes on at the period's
    /// pace so far (null: not within this period at that pace).
    func budgetForecasts(now: Int64) -> [JSONValue] {
        let book = live.spendBook
        let snapshot = book.snapshot(now: now)
        return book.budgets.enumerated().map { i, budget in
            let spent = snapshot.filter { $0.key.budget == i }.map(\.spent).max() ?? 0
            let (start, end) = budget.period.bounds(containing: now, in: budget.timeZone)
            let elapsed = max(60, now - start)
            var forecast: JSONValue = .null
            if spent >= budget.limit.micros {
                forecast = .string("reached")
            } else if spent > 0 {
                let at = now + Int64(Double(budget.limit.micros - spent) / (Double(spent) / Double(elapsed)))
                if at < end { forecast = .string(SpendControl.iso8601(at)) }
            }
            return .object([
                JSONMember("name", .string(budget.name)), JSONMember("scope", .string(budget.scope.rawValue)),
                JSONMember("period", .string(budget.period.description)),
                JSONMember("limit", .string(budget.limit.description)),
                JSONMember("spent", .string(Money(micros: spent, currency: budget.limit.currency).description)),
                JSONMember("percent", .number(String(budget.limit.micros > 0 ? Int(spent * 100 / budget.limit.micros) : 0))),
                JSONMember("resets_at", .string(SpendControl.iso8601(end))),
                JSONMember("cap_reached_at", forecast),
            ])
        }
    }
}

private func number(_ n: Int) -> JSONValue { .number(String(n)) }
