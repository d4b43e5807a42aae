/// One finding of config validation: where in the file, and what is wrong.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }

    public var severity: Severity
    /// Path to the offending value, e.g. `routes[0].params.q.max_length`.
    public var path: String
    /// 1-based line in the YAML file, when known.
    public var line: Int?
    public var message: String

    public init(severity: Severity, path: String, line: Int? = nil, message: String) {
        self.severity = severity
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        let location = line.map { " (line \($0))" } ?? ""
        let prefix = severity == .warning ? "warning: " : ""
        return "\(prefix)\(path.isEmpty ? "<root>" : path): \(message)\(location)"
    }
}

/// Thrown when a config has errors; carries every issue found, not just the first.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var issues: [ConfigIssue]
    public init(issues: [ConfigIssue]) { self.issues = issues }
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// Collects issues while a config is read, so that one run reports them all.
final class ConfigDiagnostics {
    private(set) var issues: [ConfigIssue] = []

    func error(_ path: String, _ message: String, line: Int? = nil) {
        issues.append(ConfigIssue(severity: .error, path: path, line: line, message: message))
    }

    func warning(_ path: String, _ message: String, line: Int? = nil) {
        issues.append(ConfigIssue(severity: .warning, path: path, line: line, message: message))
    }

    var hasErrors: Bool { issues.contains { $0.severity == .error } }
}
