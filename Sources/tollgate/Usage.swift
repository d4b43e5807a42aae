import ArgumentParser
import Foundation
import TollgateCore
import TollgateStore

struct Usage: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Spend, calls, cache savings and refusals from the usage ledger.",
        discussion: "Reads the store named in the config. Counters other than money are written once a second, so the last second may be missing.")

    @OptionGroup var options: ConfigOption
    @Option(help: "Start date (YYYY-MM-DD, UTC) or a duration back from now (24h, 7d).") var since = "30d"
    @Option(help: "Group by route, client, day, reason (the policy that refused), key (API and client keys: paid calls and all uses) or domain (email domains of the two-step sign-up).") var by: UsageReport.Grouping = .route
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let config = try loadQuietly(options.config)
        guard let report = try openUsageReport(config, mustExist: true) else { return }
        let start = try Self.parseSince(since)
        let currency = config.budgets.first?.limit.currency ?? config.routes.compactMap { $0.cost?.perCall.currency }.first ?? "USD"
        let lines = try report.lines(since: start, by: by)
        func money(_ m: Int64) -> String { Money(micros: m, currency: currency).description }
        if json {
            print(JSONValue.object([
                JSONMember("since", .string(SpendControl.iso8601(start))),
                JSONMember("by", .string(by.rawValue)),
                JSONMember("lines", .array(lines.map { l in
                    .object([JSONMember(by.rawValue, .string(l.key)), JSONMember("calls", .number(String(l.calls))),
                             JSONMember("spent", .string(money(l.spentMicros + l.openMicros))),
                             JSONMember("unsettled", .string(money(l.openMicros))),
                             JSONMember("cache_hits", .number(String(l.cacheHits))),
                             JSONMember("saved_by_cache", .string(money(l.savedMicros))),
                             JSONMember("refusals", .number(String(l.refusals))),
                             JSONMember("uses", l.uses.map { .number(String($0)) } ?? .null),
                             JSONMember("verification", l.verification.map { v in .object([
                                 JSONMember("requested", .number(String(v.requested))),
                                 JSONMember("confirmed", .number(String(v.confirmed))),
                                 JSONMember("addresses", .number(String(v.addresses))),
                                 JSONMember("blocked_until", v.blockedUntil.map { $0 == 0 ? .string("until removed") : .string(SpendControl.iso8601($0)) } ?? .null),
                             ]) } ?? .null),
                             JSONMember("refusals_by_reason", .object(l.refusalsByReason.sorted { $0.key < $1.key }.map {
                                 JSONMember($0.key, .number(String($0.value)))
                             }))])
                })),
            ]).serialized)
            return
        }
        var rows = lines.map { l in
            [l.key, String(l.calls), money(l.spentMicros + l.openMicros), String(l.cacheHits), money(l.savedMicros), String(l.refusals),
             l.refusalsByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")]
        }
        let total = lines.reduce(into: (0 as Int64, 0 as Int64, 0 as Int64, 0 as Int64, 0 as Int64)) { t, l in
            t.0 += l.calls; t.1 += l.spentMicros + l.openMicros; t.2 += l.cacheHits; t.3 += l.savedMicros; t.4 += l.refusals
        }
        rows.append(["total", String(total.0), money(total.1), String(total.2), money(total.3), String(total.4), ""])
        print("since \(SpendControl.iso8601(start))")
        if by == .domain {
            print(Table.render(header: ["domain", "links asked", "links opened", "addresses", "paid calls", "spent", "blocked"],
                               rows: lines.map { l in
                let v = l.verification ?? UsageReport.DomainVerification()
                return [l.key, String(v.requested), String(v.confirmed), String(v.addresses), String(l.calls),
                        money(l.spentMicros + l.openMicros),
                        v.blockedUntil.map { $0 == 0 ? "until removed" : "until " + SpendControl.iso8601($0) } ?? ""]
            }))
            return
        }
        if by == .key {
            print(Table.render(header: ["key", "uses (all time)", "paid calls", "spent"], rows: lines.map { l in
                [l.key, l.uses.map(String.init) ?? "-", String(l.calls), money(l.spentMicros + l.openMicros)]
            }))
            return
        }
        print(Table.render(header: [by.rawValue, "calls", "spent", "cache hits", "saved by cache", "refusals", "refused by"], rows: rows))
    }

    static func parseSince(_ text: String) throws -> Int64 {
        if let d = Units.parseDuration(text) { return Int64(Date().timeIntervalSince1970) - d.components.seconds }
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        guard let date = f.date(from: text) else { throw ValidationError("--since takes YYYY-MM-DD or a duration such as 7d") }
        return Int64(date.timeIntervalSince1970)
    }
}

extension UsageReport.Grouping: ExpressibleByArgument {}
