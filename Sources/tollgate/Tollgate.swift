import ArgumentParser

@main
struct Tollgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate",
        abstract: "A self-hosted API gateway that keeps a paid API's key on the server.",
        discussion: """
        Tollgate sits between a public page and a paid third-party API: it injects the key, lets through \
        only the declared parameters, and strips the response to the fields the page needs.

        Start with `tollgate demo`, then write your own config and run `tollgate check --config FILE`.
        """,
        subcommands: [Serve.self, Check.self, Demo.self, Usage.self, Budgets.self, Keys.self, Clients.self, AdminTokens.self, Bans.self, Reload.self]
    )
}

struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "Path to the YAML config file.")
    var config: String = "tollgate.yaml"
}
