import ArgumentParser
import Foundation
import TollgateAdmin
import TollgateCore
import TollgateStore

struct AdminTokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin-tokens",
        abstract: "Create, list and revoke tokens for the admin API.",
        discussion: """
        A token (tg_adm_…) is printed once and stored as its SHA-256 in the store named in the config. \
        Scopes: read (every GET), write (pause and resume routes), keys (create and revoke API keys and \
        OAuth clients). A revoked token stops working on its next request.
        """,
        subcommands: [Create.self, List.self, Revoke.self],
        defaultSubcommand: List.self)

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token and print it once.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Who or what uses it (shown in the audit log).") var name: String
        @Option(help: "Scopes, comma-separated: read, write, keys.") var scopes = "read"
        @Flag(help: "Print JSON instead of text.") var json = false

        func run() throws {
            var parsed: [AdminTokenRecord.Scope] = []
            for word in scopes.split(whereSeparator: { $0 == "," || $0 == " " }) {
                guard let scope = AdminTokenRecord.Scope(rawValue: String(word)) else {
                    throw ValidationError("unknown scope \(word): use read, write or keys")
                }
                if !parsed.contains(scope) { parsed.append(scope) }
            }
            guard !parsed.isEmpty else { throw ValidationError("--scopes needs at least one of read, write, keys") }
            let store = try openAdminStore(options.config)
            let text = APIKeyText.generate(.admin)
            try store.insertAdminToken(AdminTokenRecord(id: text.id, name: name, scopes: parsed, hash: AdminTokenHash.of(text.text),
                                                        createdAt: Int64(Date().timeIntervalSince1970)))
            if json {
                print(JSONValue.object([JSONMember("id", .string(text.id)), JSONMember("token", .string(text.text))]).serialized)
            } else {
                print("id:    \(text.id)\ntoken: \(text.text)\n\nThe token is shown only now; store it like a password.")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tokens with their scopes (never the tokens).")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let tokens = try openAdminStore(options.config).adminTokens()
            print(Table.render(header: ["id", "name", "scopes", "state", "created (UTC)"], rows: tokens.map { t in
                [t.id, t.name, t.scopes.map(\.rawValue).joined(separator: ","), t.revokedAt == nil ? "active" : "revoked",
                 SpendControl.iso8601(t.createdAt)]
            }))
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a token.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The token's id.") var id: String

        func run() throws {
            guard try openAdminStore(options.config).revokeAdminToken(id: id, at: Int64(Date().timeIntervalSince1970)) else {
                throw ValidationError("no active token with id \(id)")
            }
            print("revoked: \(id)")
        }
    }
}

private func openAdminStore(_ configPath: String) throws -> any DurableStore {
    try openStore(try loadQuietly(configPath))
}
