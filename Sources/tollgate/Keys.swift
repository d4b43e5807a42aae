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
            let now = Int64(Date().timeIntervalSince1970)
            let text = APIKeyText.generate(client ? .install : .api)
            let record = APIKeyRecord(id: text.id, kind: text.kind, name: name, owner: owner, scopes: list(scopes), routes: list(routes),
                                      hash: hasher.hash(text.text), createdAt: now, expiresAt: try expiry(expires, now: now),
                                      maxUses: maxUses)
            try store.insertKey(record)
            printCreated(record, key: text.text, json: json)
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
                print(JSONValue.array(records.map { describe($0, now: now) }).serialized)
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
            print(describe(record, now: Int64(Date().timeIntervalSince1970)).serialized)
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
            let now = Int64(Date().timeIntervalSince1970)
            guard let old = try store.key(id: id) else { throw ValidationError("no key with id \(id)") }
            guard old.revokedAt == nil else { throw ValidationError("key \(id) is revoked; reactivate it or create a new one") }
            guard let d = Units.parseDuration(overlap) else { throw ValidationError("--overlap takes a duration such as 7d") }
            let text = APIKeyText.generate(old.kind)
            var successor = old
            successor.id = text.id
            successor.hash = hasher.hash(text.text)
            successor.createdAt = now
            successor.uses = 0
            successor.lastUsedAt = nil
            successor.replacedBy = nil
            if let e = old.expiresAt { successor.expiresAt = now + max(0, e - old.createdAt) }
            try store.insertKey(successor)
            let end = now + d.components.seconds
            _ = try store.updateKey(id: id) { r in
                r.expiresAt = min(r.expiresAt ?? end, end)
                r.replacedBy = text.id
            }
            printCreated(successor, key: text.text, json: json)
            if !json { print("old key \(id) stays valid until \(SpendControl.iso8601(end))") }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a key at once (every gateway within a second).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The key's id.") var id: String

        func run() throws {
            let (store, _) = try openKeyStore(options.config, needsHasher: false)
            let now = Int64(Date().timeIntervalSince1970)
            guard try store.updateKey(id: id, { $0.revokedAt = $0.revokedAt ?? now }) else { throw ValidationError("no key with id \(id)") }
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
            guard let current = try store.key(id: id) else { throw ValidationError("no key with id \(id)") }
            let newExpiry = try expiry(expires, now: now)
            let addUses = self.addUses
            _ = try store.updateKey(id: id) { r in
                r.revokedAt = nil
                if let newExpiry { r.expiresAt = newExpiry }
                if let addUses, let m = r.maxUses { r.maxUses = max(m, r.uses) + addUses }
            }
            let after = try store.key(id: id) ?? current
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
func openKeyStore(_ configPath: String, needsHasher: Bool = true) throws -> (SQLiteLedger, APIKeyHasher) {
    let config = try loadQuietly(configPath)
    guard case .sqlite(let path) = config.store else { throw ValidationError("store: memory cannot be reached from the CLI") }
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
    return (try SQLiteLedger(path: path), hasher)
}

private func list(_ text: String) -> [String] {
    text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
}

private func expiry(_ text: String?, now: Int64) throws -> Int64? {
    guard let text else { return nil }
    guard let d = Units.parseDuration(text), d > .zero else { throw ValidationError("--expires takes a duration such as 90d") }
    return now + d.components.seconds
}

private func describe(_ r: APIKeyRecord, now: Int64) -> JSONValue {
    var members = [JSONMember("id", .string(r.id)), JSONMember("kind", .string(r.kind.rawValue)), JSONMember("name", .string(r.name)),
                   JSONMember("owner", .string(r.owner)), JSONMember("scopes", .array(r.scopes.map { .string($0) })),
                   JSONMember("routes", .array(r.routes.map { .string($0) })),
                   JSONMember("state", .string(r.status(now: now, uses: r.uses).rawValue)),
                   JSONMember("uses", .number(String(r.uses))), JSONMember("created_at", .string(SpendControl.iso8601(r.createdAt)))]
    func optional(_ key: String, _ v: Int64?, time: Bool = true) {
        members.append(JSONMember(key, v.map { time ? .string(SpendControl.iso8601($0)) : .number(String($0)) } ?? .null))
    }
    optional("max_uses", r.maxUses, time: false)
    optional("expires_at", r.expiresAt)
    optional("last_used_at", r.lastUsedAt)
    optional("revoked_at", r.revokedAt)
    members.append(JSONMember("replaced_by", r.replacedBy.map { .string($0) } ?? .null))
    return .object(members)
}

private func printCreated(_ r: APIKeyRecord, key: String, json: Bool) {
    if json {
        print(JSONValue.object([JSONMember("id", .string(r.id)), JSONMember("key", .string(key))]).serialized)
    } else {
        print("id:  \(r.id)\nkey: \(key)\n\nThe key is shown only now; store it like a password.")
    }
}
