import Foundation

/// Resolves secret references to values at start-up. Values are kept in memory only; errors name
/// the reference (variable or file), never a value.
public struct SecretResolver: Sendable {
    public var environment: [String: String]
    /// Directory holding an optional `.env` file (`NAME=value` lines), consulted after the environment.
    public var baseDirectory: String

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, baseDirectory: String) {
        self.environment = environment
        self.baseDirectory = baseDirectory
    }

    /// Every secret's value, or the list of the ones that could not be resolved.
    public func resolve(_ secrets: [String: SecretReference]) -> Result<[String: String], ConfigError> {
        let dotenv = loadDotEnv()
        var values: [String: String] = [:]
        var issues: [ConfigIssue] = []
        for (name, reference) in secrets.sorted(by: { $0.key < $1.key }) {
            let path = "secrets.\(name)"
            switch reference {
            case .env(let variable):
                if let v = environment[variable] ?? dotenv[variable], !v.isEmpty {
                    values[name] = v
                } else {
                    issues.append(ConfigIssue(severity: .error, path: path, line: nil,
                                              message: "environment variable \(variable) is not set (nor in \(baseDirectory)/.env)"))
                }
            case .file(let file):
                let full = file.hasPrefix("/") ? file : baseDirectory + "/" + file
                if let data = FileManager.default.contents(atPath: full), var text = String(data: data, encoding: .utf8) {
                    while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
                    if text.isEmpty {
                        issues.append(ConfigIssue(severity: .error, path: path, line: nil, message: "secret file \(full) is empty"))
                    } else {
                        values[name] = text
                    }
                } else {
                    issues.append(ConfigIssue(severity: .error, path: path, line: nil, message: "secret file \(full) cannot be read"))
                }
            }
        }
        return issues.isEmpty ? .success(values) : .failure(ConfigError(issues: issues))
    }

    /// `NAME=value` lines of `<baseDirectory>/.env`; `#` comments and optional quotes allowed.
    func loadDotEnv() -> [String: String] {
        guard let data = FileManager.default.contents(atPath: baseDirectory + "/.env"),
              let text = String(data: data, encoding: .utf8) else { return [:] }
        var out: [String: String] = [:]
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingWhitespace()
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            var name = line[..<eq].trimmingWhitespace()
            if name.hasPrefix("export ") { name = String(name.dropFirst(7)).trimmingWhitespace() }
            var value = line[line.index(after: eq)...].trimmingWhitespace()
            if value.count >= 2, let f = value.first, f == "\"" || f == "'", value.last == f {
                value = String(value.dropFirst().dropLast())
            }
            out[name] = value
        }
        return out
    }
}
