/// Where a secret's value comes from. The config file holds only these references, never values.
public enum SecretReference: Sendable, Equatable, CustomStringConvertible {
    /// An environment variable (or, when unset, a line of the `.env` file beside the config).
    case env(String)
    /// A file whose content (trailing newline removed) is the value, e.g. `/run/secrets/key`.
    case file(String)

    public init?(_ text: String) {
        if text.hasPrefix("env:"), text.count > 4 {
            let name = String(text.dropFirst(4))
            guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { return nil }
            self = .env(name)
        } else if text.hasPrefix("file:"), text.count > 5 {
            self = .file(String(text.dropFirst(5)))
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .env(let n): "env:\(n)"
        case .file(let p): "file:\(p)"
        }
    }
}

/// Heuristic for "this looks like a credential pasted into the config".
public enum SecretHeuristics {
    /// True for long tokens that mix letters and digits without spaces (API keys, JWTs, hex keys),
    /// or that start with a well-known key prefix.
    public static func looksLikeLiteralSecret(_ s: String) -> Bool {
        let prefixes = ["sk_", "sk-", "pk_live", "rk_live", "ghp_", "xox", "AKIA", "AIza", "Bearer ", "tg_live_", "tg_inst_", "tg_adm_"]
        if prefixes.contains(where: { s.hasPrefix($0) }) && s.count >= 12 { return true }
        guard s.count >= 20, !s.contains(" "), !s.contains("/"), !s.hasPrefix("env:"), !s.hasPrefix("file:") else { return false }
        let hasDigit = s.contains(where: \.isNumber)
        let hasLetter = s.contains(where: \.isLetter)
        return hasDigit && hasLetter
    }
}
