import ArgumentParser
import Foundation
import TollgateCore
import TollgateStore

struct Clients: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register, list and revoke OAuth clients (client-credentials grant).",
        discussion: """
        A client gets a token from identity.oauth.token_path with its id and secret, for a subset of \
        the scopes registered here. The secret is printed once and stored only as its keyed hash. \
        A running gateway picks up changes within a second.
        """,
        subcommands: [Create.self, List.self, Revoke.self],
        defaultSubcommand: List.self)

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a client and print its secret once.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Who the client is (shown in lists).") var name: String
        @Option(help: "The scopes it may ask for, comma-separated.") var scopes = ""
        @Flag(help: "Print JSON instead of text.") var json = false

        func run() throws {
            let (store, hasher) = try openKeyStore(options.config)
            let scopes = self.scopes.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
            let (id, secret) = try KeyOperations.createClient(store, hasher: hasher, name: name, scopes: scopes,
                                                              now: Int64(Date().timeIntervalSince1970))
            if json {
                print(JSONValue.object([JSONMember("client_id", .string(id)), JSONMember("client_secret", .string(secret))]).serialized)
            } else {
                print("client_id:     \(id)\nclient_secret: \(secret)\n\nThe secret is shown only now; store it like a password.")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered clients (never their secrets).")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let (store, _) = try openKeyStore(options.config, needsHasher: false)
            let clients = try store.clients()
            if json {
                print(JSONValue.array(clients.map(KeyOperations.describe)).serialized)
                return
            }
            print(Table.render(header: ["client_id", "name", "scopes", "state", "created (UTC)"], rows: clients.map { c in
                [c.id, c.name, c.scopes.joined(separator: ","), c.revokedAt == nil ? "active" : "revoked", SpendControl.iso8601(c.createdAt)]
            }))
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a client getting tokens (tokens already issued run out at their exp).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The client id.") var id: String

        func run() throws {
            let (store, _) = try openKeyStore(options.config, needsHasher: false)
            guard try store.revokeClient(id: id, at: Int64(Date().timeIntervalSince1970)) else {
                throw ValidationError("no active client with id \(id)")
            }
            print("revoked: \(id)")
        }
    }
}
