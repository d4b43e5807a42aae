import ArgumentParser
import Foundation
import TollgateCore
import TollgateStore

struct Budgets: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show budgets with what is used and left, or pause and resume upstream calls.",
        discussion: """
        Reads the store named in the config (the SQLite file by default). `pause ROUTE|all` stops upstream \
        calls of a running gateway within a second, without a restart; cached answers are still served. \
        `resume ROUTE|all` lifts it.
        """,
        subcommands: [List.self, Pause.self, Resume.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Budgets with used, remaining and reset time.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let config = try loadQuietly(options.config)
            let report = try openUsageReport(config)
            let now = Int64(Date().timeIntervalSince1970)
            let book = SpendBook(budgets: config.budgets)
            let since = config.budgets.map { $0.period.bounds(containing: now, in: $0.timeZone).start }.min() ?? now
            let rows = try report?.spend(since: since) ?? []
            for row in rows {
                for key in book.keys(route: row.route, client: row.client, session: row.session, key: row.keyID, subject: row.subject) {
                    book.seed(key, amount: row.micros, at: row.createdAt)
                }
            }
            var lines: [[String]] = []
            var objects: [JSONValue] = []
            for (i, budget) in config.budgets.enumerated() {
                let (_, end) = budget.period.bounds(containing: now, in: budget.timeZone)
                var scopes = book.snapshot(now: now).filter { $0.key.budget == i }.map { ($0.key.scope, $0.spent) }
                if scopes.isEmpty { scopes = [(budget.scope == .global ? "*" : "-", 0)] }
                for (scope, spent) in scopes.sorted(by: { $0.1 > $1.1 }).prefix(20) {
                    let used = Money(micros: spent, currency: budget.limit.currency)
                    let left = Money(micros: max(0, budget.limit.micros - spent), currency: budget.limit.currency)
                    let reset = SpendControl.iso8601(end)
                    lines.append([budget.name, "\(budget.scope)", scope, budget.period.description, used.description,
                                  budget.limit.description, left.description, reset])
                    objects.append(.object([JSONMember("budget", .string(budget.name)), JSONMember("scope", .string(scope)),
                                            JSONMember("used", .string(used.description)), JSONMember("limit", .string(budget.limit.description)),
                                            JSONMember("remaining", .string(left.description)), JSONMember("resets_at", .string(reset))]))
                }
            }
            let paused: Set<String> = report == nil ? [] : try openStore(config).pausedRoutes()
            if json {
                print(JSONValue.object([JSONMember("budgets", .array(objects)),
                                        JSONMember("paused", .array(paused.sorted().map { .string($0) }))]).serialized)
                return
            }
            print(Table.render(header: ["budget", "scope", "key", "period", "used", "limit", "remaining", "resets at (UTC)"], rows: lines))
            if !paused.isEmpty { print("\npaused: \(paused.sorted().map { $0 == "*" ? "all routes" : $0 }.joined(separator: ", "))") }
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop upstream calls of ROUTE (or all) at once.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "A route name, or all.") var route: String

        func run() throws { try setPaused(route, true, options.config) }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allow upstream calls of ROUTE (or all) again.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "A route name, or all.") var route: String

        func run() throws { try setPaused(route, false, options.config) }
    }
}

private func setPaused(_ route: String, _ paused: Bool, _ configPath: String) throws {
    let config = try loadQuietly(configPath)
    let name = route == "all" ? "*" : route
    guard name == "*" || config.routes.contains(where: { $0.name == name }) else {
        throw ValidationError("no route named \(route) in \(configPath)")
    }
    let ledger = try openStore(config)
    defer { ledger.close() }
    try ledger.setPaused(name, paused: paused, at: Int64(Date().timeIntervalSince1970))
    print("\(paused ? "paused" : "resumed"): \(route == "all" ? "all routes" : route)")
}

/// Loads a config for the CLI's read-only commands; errors are printed as `check` does.
func loadQuietly(_ path: String) throws -> GatewayConfig {
    do {
        return try ConfigLoader.load(path: path).config
    } catch {
        for issue in error.issues { printErr(issue.description) }
        throw ExitCode(1)
    }
}

/// A plain text table with aligned columns.
enum Table {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
            .joined(separator: "\n")
    }
}
