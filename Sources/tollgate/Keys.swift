import ArgumentParser
import Foundation
import TollgateCore
import TollgateStore

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, rotate, revoke and reactivate API keys and per-install client keys.",
        discussion: """
        Works on the store named in the config (the SQLite file by default); a running gateway picks up \
        every change within a second, without a restart. A key is printed once, when it is created or \
        rotated: the store keeps only its keyed hash (under identity.key_hash_secret), so it cannot be \
        shown again. Keys look like tg_live_<id>_<secret><check> (client keys: tg_inst_…); the id is \
        public and is what the other commands take.
        """,
        subcommands: [Create.self, List.self, Show.self, Rotate.self, Revoke.self, Reactivate.self],
        defaultSubcommand: List.self)

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a key and print it once.")
        @OptionGroup var options: ConfigOption
        @Option(help: "What the key is for (shown in lists).") var name: String
        @Option(help: "Who it belongs to: the caller's subject (default: the key id).") var owner = ""
        @Option(help: "Scopes, comma-separated.") var scopes = ""
        @Option(help: "Routes the key may call, comma-separated (default: every route that accepts keys).") var routes = ""
        @Option(help: "Lifetime, e.g. 90d or 12h (default: no expiry).") var expires: String?
        @Option(help: "Uses allowed before the key lapses.") var maxUses: Int64?
        @Flag(help: "A per-install client key (tg_inst_) instead of an API key.") var client = false
        @Flag(help: "Print JSON instead of text.") var json = false

        func run() throws {
            let (store, hasher) = try openKeyStore(options.config)
            let (record, key) = try KeyOperations.create(store, hasher: hasher, kind: client ? .install : .api, name: name, owner: owner,
                                                         scopes: list(scopes), routes: list(routes), lifetime: try lifetime(expires),
                                                         maxUses: maxUses, now: Int64(Date().timeIntervalSince1970))
            printCreated(record, key: key, json: json)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every key with its state (never the key itself).")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let (store, _) = try openKeyStore(options.config, needsHasher: false)
            let now = Int64(Date().timeIntervalSince1970)
            let records = try store.keys()
            if json {
                print(JSONValue.array(records.map { KeyOperations.describe($0, now: now) }).serialized)
                return
            }
            print(Table.render(header: ["id", "kind", "name", "owner", "scopes", "state", "uses", "expires (UTC)", "last used (UTC)"],
                               rows: records.map { r in
                                   [r.id, r.kind.rawValue, r.name, r.owner, r.scopes.joined(separator: ","), r.status(now: now, uses: r.uses).rawValue,
                                    r.maxUses.map { "\(r.uses)/\($0)" } ?? "\(r.uses)", r.expiresAt.map(SpendControl.iso8601) ?? "-",
                                    r.lastUsedAt.map(SpendControl.iso8601) ?? "-"]
                               }))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One key: its state, scopes, routes and use.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The key's id.") var id: String

        func run() throws {
            let (store, _) = try openKeyStore(options.config, needsHasher: false)
            guard let record = try store.key(id: id) else { throw ValidationError("no key with id \(id)") }
            print(KeyOperations.describe(record, now: Int64(Date().timeIntervalSince1970)).serialized)
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a successor key; the old one keeps working for the overlap, then expires.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The key's id.") var id: String
        @Option(help: "How long the old key stays valid, e.g. 7d (0s ends it now).") var overlap = "7d"
        @Flag(help: "Print JSON instead of text.") var json = false

        func run() throws {
            let (store, hasher) = try openKeyStore(options.config)
            guard let d = Units.parseDuration(overlap) else { throw ValidationError("--overlap takes a duration such as 7d") }
            let (successor, key, end) = try operator_ { try KeyOperations.rotate(store, hasher: hasher, id: id, overlap: d,
                                                                                  now: Int64(Date().timeIntervalSince1970)) }
            printCreated(successor, key: key, json: json)
            if !json { print("old key \(id) stays valid until \(SpendControl.iso8601(end))") }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a key at once (every gateway within a second).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The key's id.") var id: String

        func run() throws {
            let (store, _) = try openKeyStore(options.config, needsHasher: false)
            _ = try operator_ { try KeyOperations.revoke(store, id: id, now: Int64(Date().timeIntervalSince1970)) }
            print("revoked: \(id)")
        }
    }

    struct Reactivate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a revoked, expired or used-up key work again.",
            discussion: "Lifts a revocation; with --expires sets a new lifetime from now, with --add-uses allows more uses.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The key's id.") var id: String
        @Option(help: "New lifetime from now, e.g. 30d.") var expires: String?
        @Option(help: "Uses to add to its limit.") var addUses: Int64?

        func run() throws {
            let (store, _) = try openKeyStore(options.config, needsHasher: false)
            let now = Int64(Date().timeIntervalSince1970)
            let lifetime = try lifetime(expires)
            let after = try operator_ { try KeyOperations.reactivate(store, id: id, lifetime: lifetime, addUses: addUses, now: now) }
            let state = after.status(now: now, uses: after.uses)
            print("reactivated: \(id) (\(state.rawValue))")
            if state != .active {
                print(state == .expired ? "still expired: pass --expires" : "still used up: pass --add-uses")
                throw ExitCode(1)
            }
        }
    }
}

/// The store's key table and the hasher, for the CLI.
func openKeyStore(_ configPath: String, needsHasher: Bool = true) throws -> (any DurableStore, APIKeyHasher) {
    let config = try loadQuietly(configPath)
    if case .memory = config.store { throw ValidationError("store: memory cannot be reached from the CLI") }
    guard let name = config.identity?.keyHashSecret, let reference = config.secrets[name] else {
        throw ValidationError("the config has no identity.key_hash_secret: keys are stored hashed under it")
    }
    var hasher = APIKeyHasher(secret: "")
    if needsHasher {
        switch SecretResolver(baseDirectory: config.baseDirectory).resolve([name: reference]) {
        case .success(let values): hasher = APIKeyHasher(secret: values[name] ?? "")
        case .failure(let error):
            for issue in error.issues { printErr(issue.description) }
            throw ExitCode(1)
        }
    }
    return (try openStore(config), hasher)
}

private func list(_ text: String) -> [String] {
    text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
}

private func lifetime(_ text: String?) throws -> Duration? {
    guard let text else { return nil }
    guard let d = Units.parseDuration(text), d > .zero else { throw ValidationError("--expires takes a duration such as 90d") }
    return d
}

/// Runs a key operation; its failures read as the CLI's own.
private func operator_<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let failure as KeyOperations.Failure {
        throw ValidationError(failure.description)
    }
}

private func printCreated(_ r: APIKeyRecord, key: String, json: Bool) {
    if json {
        print(JSONValue.object([JSONMember("id", .string(r.id)), JSONMember("key", .string(key))]).serialized)
    } else {
        print("id:  \(r.id)\nkey: \(key)\n\nThe key is shown only now; store it like a password.")
    }
}
