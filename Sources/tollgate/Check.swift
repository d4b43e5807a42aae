import ArgumentParser
import Foundation
import TollgateCore

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a config file and report every problem with its path.",
        discussion: "Exits 0 when the config can be served (warnings allowed), 1 otherwise. Missing secrets are reported as warnings: check may run where production secrets are not set.")

    @OptionGroup var options: ConfigOption

    func run() throws {
        let loaded: ConfigLoader.Loaded
        do {
            loaded = try ConfigLoader.load(path: options.config)
        } catch {
            for issue in error.issues { printErr(issue.description) }
            let count = error.issues.filter { $0.severity == .error }.count
            printErr("\(options.config): \(count) error\(count == 1 ? "" : "s")")
            throw ExitCode(1)
        }
        for warning in loaded.warnings { printErr(warning.description) }
        let resolver = SecretResolver(baseDirectory: loaded.config.baseDirectory)
        if case .failure(let missing) = resolver.resolve(loaded.config.secrets) {
            for issue in missing.issues { printErr("warning: \(issue.path): \(issue.message) (serve will refuse to start)") }
        }
        print("\(options.config): OK, \(loaded.config.routes.count) route\(loaded.config.routes.count == 1 ? "" : "s")")
    }
}

func printErr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
