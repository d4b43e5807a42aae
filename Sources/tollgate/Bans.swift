import ArgumentParser
import Foundation
import TollgateCore
import TollgateStore

struct Bans: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ban an address, a network, an API key, a page session or an email domain; list and remove bans.",
        discussion: """
        A banned client is answered 403 (problem banned) before its request is routed, and its \
        connection is closed after the answer. Bans live in the store: every running gateway that \
        shares it picks a change up within a second, and bans survive restarts. Automatic bans \
        (auto_bans: in the config) appear here too, made by auto:<rule>.

        Examples:
          tollgate bans add address 203.0.113.7 --for 1h --reason "scraping /api/lookup"
          tollgate bans add prefix 203.0.113.0/24 --for 15m
          tollgate bans add key k3x9AbCdEf12
          tollgate bans list
          tollgate bans remove 4
        """,
        subcommands: [Add.self, List.self, Remove.self],
        defaultSubcommand: List.self)

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ban a client until a time or until removed.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "What to ban: address, prefix, key, session or domain.") var kind: String
        @Argument(help: "The address (203.0.113.7), network (203.0.113.0/24), key id, session id or domain (spam.example).") var value: String
        @Option(name: .customLong("for"), help: "How long, e.g. 15m, 24h, 30d (default: until removed).") var duration: String?
        @Option(help: "Why (shown in lists and the audit of who banned what).") var reason = ""
        @Flag(help: "Print JSON instead of text.") var json = false

        func run() throws {
            let store = try openBanStore(options.config)
            var lifetime: Duration?
            if let duration {
                guard let d = Units.parseDuration(duration), d > .zero else { throw ValidationError("--for takes a duration such as 15m") }
                lifetime = d
            }
            var value = self.value
            if kind == "key" { value = Self.keyID(value) }
            switch try BanOperations.add(store, kind: kind, value: value, duration: lifetime, reason: reason, by: "cli",
                                         now: Int64(Date().timeIntervalSince1970)) {
            case .success(let ban):
                if json { print(BanOperations.describe(ban).serialized); return }
                let until = ban.expiresAt.map { "until \(SpendControl.iso8601($0))" } ?? "until removed"
                print("banned: \(ban.kind.rawValue) \(ban.value) \(until) (id \(ban.id))")
            case .failure(let errors):
                throw ValidationError(errors.fields.map { "\($0.0) \($0.1)" }.joined(separator: "; "))
            }
        }

        /// A whole key pasted (`tg_live_<id>_<secret>`) or a prefixed id: its id alone.
        static func keyID(_ text: String) -> String {
            var id = Substring(text)
            for prefix in ["tg_live_", "tg_inst_"] where id.hasPrefix(prefix) { id = id.dropFirst(prefix.count) }
            return String(id.prefix { $0 != "_" })
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Bans in force now.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let store = try openBanStore(options.config)
            let bans = try store.activeBans(now: Int64(Date().timeIntervalSince1970))
            if json {
                print(JSONValue.array(bans.map(BanOperations.describe)).serialized)
                return
            }
            print(Table.render(header: ["id", "kind", "value", "until (UTC)", "by", "reason"], rows: bans.map { b in
                [String(b.id), b.kind.rawValue, b.value, b.expiresAt.map(SpendControl.iso8601) ?? "until removed", b.createdBy, b.reason]
            }))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a ban now (its record stays in the store's history).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The ban's id (from bans list).") var id: Int64

        func run() throws {
            let store = try openBanStore(options.config)
            guard try store.removeBan(id: id, at: Int64(Date().timeIntervalSince1970)) else {
                throw ValidationError("no ban in force with id \(id)")
            }
            print("removed: ban \(id)")
        }
    }
}

func openBanStore(_ configPath: String) throws -> any DurableStore {
    try openStore(try loadQuietly(configPath))
}
