import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TollgateCore

struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the config file, then make the running gateway load it without a restart.",
        discussion: """
        The file is checked here first (as `tollgate check` does, secrets included); if it has errors \
        they are printed and the gateway is not touched. Then the gateway is told to reload: with \
        --pid or --pid-file it is sent SIGHUP, and its log says whether the reload was applied; \
        without them the admin listener's POST /v1/config/reload is called with the admin token in \
        TOLLGATE_ADMIN_TOKEN (write scope), and the answer printed says whether it was applied and \
        why not.

        A reload replaces routes, policies, limits (unchanged limits keep their counts), upstream \
        secrets, TLS certificates, CORS, address and geo rules and automatic-ban rules. Requests in \
        flight finish under the config they started with; no connection is dropped. Changing listen, \
        admin, workers, store or whether TLS is on needs a restart, and such a reload is refused whole.
        """)

    @OptionGroup var options: ConfigOption
    @Option(help: "The gateway's process id: send it SIGHUP.") var pid: Int32?
    @Option(help: "A file holding the gateway's process id (serve --pid-file).") var pidFile: String?

    func run() async throws {
        let config = try checked(options.config)
        if let target = try processID() {
            guard kill(target, SIGHUP) == 0 else { throw ValidationError("cannot signal process \(target): \(String(cString: strerror(errno)))") }
            print("sent SIGHUP to \(target); the gateway's log says whether the reload was applied")
            return
        }
        guard let admin = config.admin else {
            throw ValidationError("the config has no admin listener: give --pid or --pid-file to signal the gateway instead")
        }
        guard let token = ProcessInfo.processInfo.environment["TOLLGATE_ADMIN_TOKEN"], !token.isEmpty else {
            throw ValidationError("set TOLLGATE_ADMIN_TOKEN to an admin token with the write scope (tollgate admin-tokens create), or give --pid")
        }
        var request = URLRequest(url: URL(string: "http://\(admin)/v1/config/reload")!)
        request.httpMethod = "POST"
        request.setValue("Bearer " + token, forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let body = (try? JSONParser.parse(Array(data))) ?? .null
        switch status {
        case 200:
            print("reloaded")
            if case .array(let warnings)? = body["warnings"] {
                for w in warnings { printErr("warning: \(w["path"]?.stringValue ?? ""): \(w["message"]?.stringValue ?? "")") }
            }
        case 422:
            printErr("the gateway refused the reload; it runs the config it had:")
            if case .array(let errors)? = body["errors"] {
                for e in errors { printErr("  \(e["field"]?.stringValue ?? ""): \(e["detail"]?.stringValue ?? "")") }
            }
            throw ExitCode(1)
        default:
            printErr("the admin API answered \(status): \(body["detail"]?.stringValue ?? "")")
            throw ExitCode(1)
        }
    }

    private func processID() throws -> Int32? {
        if let pid { return pid }
        guard let pidFile else { return nil }
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let value = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), value > 0 else {
            throw ValidationError("\(pidFile) does not hold a process id")
        }
        return value
    }

    /// The config, or its errors printed and exit 1.
    private func checked(_ path: String) throws -> GatewayConfig {
        let loaded: ConfigLoader.Loaded
        do {
            loaded = try ConfigLoader.load(path: path)
        } catch {
            for issue in error.issues { printErr(issue.description) }
            printErr("not reloaded: the config has errors")
            throw ExitCode(1)
        }
        if case .failure(let error) = SecretResolver(baseDirectory: loaded.config.baseDirectory).resolve(loaded.config.secrets) {
            for issue in error.issues { printErr(issue.description) }
            printErr("not reloaded: secrets are missing")
            throw ExitCode(1)
        }
        for warning in loaded.warnings { printErr(warning.description) }
        return loaded.config
    }
}
