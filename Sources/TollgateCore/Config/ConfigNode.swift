import Yams

/// A YAML node together with its path in the document; reads typed values and reports
/// what is wrong with them to the shared diagnostics instead of stopping at the first error.
struct ConfigNode {
    let node: Node
    let path: String
    let diagnostics: ConfigDiagnostics

    var line: Int? { node.mark.map { $0.line } }

    func error(_ message: String) { diagnostics.error(path, message, line: line) }
    func warning(_ message: String) { diagnostics.warning(path, message, line: line) }

    func child(_ key: String, _ node: Node) -> ConfigNode {
        ConfigNode(node: node, path: path.isEmpty ? key : "\(path).\(key)", diagnostics: diagnostics)
    }

    /// The members of a mapping in document order. Keys outside `allowed` are reported as unknown.
    func mapping(allowed: Set<String>? = nil) -> [(key: String, value: ConfigNode)]? {
        guard case .mapping(let mapping) = node else {
            error("must be a mapping")
            return nil
        }
        var out: [(key: String, value: ConfigNode)] = []
        var seen = Set<String>()
        for (k, v) in mapping {
            guard let key = k.string else {
                error("keys must be strings")
                continue
            }
            let member = child(key, v)
            if !seen.insert(key).inserted {
                member.error("is given twice")
                continue
            }
            if let allowed, !allowed.contains(key) {
                let known = allowed.sorted().joined(separator: ", ")
                member.error("unknown key (expected one of: \(known))")
                continue
            }
            out.append((key, member))
        }
        return out
    }

    /// A mapping as a dictionary, for objects with a fixed set of keys.
    func object(allowed: Set<String>) -> [String: ConfigNode]? {
        guard let members = mapping(allowed: allowed) else { return nil }
        return Dictionary(members.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    func sequence() -> [ConfigNode]? {
        guard case .sequence(let seq) = node else {
            error("must be a list")
            return nil
        }
        return seq.enumerated().map { i, n in ConfigNode(node: n, path: "\(path)[\(i)]", diagnostics: diagnostics) }
    }

    /// A scalar as text (numbers and booleans too, as written).
    func string() -> String? {
        guard case .scalar(let scalar) = node else {
            error("must be a single value")
            return nil
        }
        return scalar.string
    }

    func nonEmptyString() -> String? {
        guard let s = string() else { return nil }
        if s.isEmpty { error("must not be empty"); return nil }
        return s
    }

    func int(min: Int? = nil) -> Int? {
        guard let s = string() else { return nil }
        guard let value = Int(s) else { error("must be a whole number"); return nil }
        if let min, value < min { error("must be ≥ \(min)"); return nil }
        return value
    }

    func bool() -> Bool? {
        guard let s = string() else { return nil }
        switch s {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: error("must be true or false"); return nil
        }
    }

    func stringList() -> [String]? {
        if case .scalar = node, let s = string() { return [s] }
        guard let items = sequence() else { return nil }
        let strings = items.compactMap { $0.string() }
        return strings.count == items.count ? strings : nil
    }

    /// A duration such as `250ms`, `3s`, `1m`, `2h`, `1d`.
    func duration() -> Duration? {
        guard let s = string() else { return nil }
        guard let d = Units.parseDuration(s) else {
            error("must be a duration such as 250ms, 3s, 1m or 1h")
            return nil
        }
        return d
    }

    /// A size such as `512`, `16KiB`, `1MiB`, `2MB`.
    func byteSize() -> Int? {
        guard let s = string() else { return nil }
        guard let n = Units.parseByteSize(s) else {
            error("must be a size such as 4096, 16KiB or 1MiB")
            return nil
        }
        return n
    }

    /// One of `choices`, as written; otherwise the error lists them ("must be a, b or c").
    func choice(_ choices: [String], lowercased: Bool = false, hint: String = "") -> String? {
        guard var s = string() else { return nil }
        if lowercased { s = s.lowercased() }
        guard choices.contains(s) else {
            error("must be \(Self.alternatives(choices))\(hint)")
            return nil
        }
        return s
    }

    /// A case of `T` by its raw value; otherwise the error lists every case.
    func oneOf<T: RawRepresentable & CaseIterable>(_ type: T.Type, lowercased: Bool = false) -> T? where T.RawValue == String {
        guard let s = choice(T.allCases.map(\.rawValue), lowercased: lowercased) else { return nil }
        return T(rawValue: s)
    }

    /// A rate such as `30/min`.
    func rate() -> Rate? {
        guard let s = string() else { return nil }
        guard let rate = Rate(s) else {
            error("must be COUNT/PERIOD, e.g. 10/s, 30/min, 1000/day or 5/30s")
            return nil
        }
        return rate
    }

    /// A secret's name as written; reports an error unless it names an entry under `secrets:` (a
    /// value that looks like a pasted key gets its own message). Nil only when there is no name.
    @discardableResult
    func secretName(in secrets: [String: SecretReference]) -> String? {
        guard let name = nonEmptyString() else { return nil }
        if secrets[name] == nil {
            if SecretHeuristics.looksLikeLiteralSecret(name) {
                error("looks like a literal key; declare it under secrets: (env:NAME or file:/path) and name it here")
            } else {
                error("names no entry under secrets")
            }
        }
        return name
    }

    /// An `http://` or `https://` URL.
    func url() -> UpstreamURL? {
        guard let s = string() else { return nil }
        guard let url = try? UpstreamURL(s) else {
            error("must be an http:// or https:// URL")
            return nil
        }
        return url
    }

    /// "a", "a or b", "a, b or c".
    static func alternatives(_ words: [String]) -> String {
        guard words.count > 1 else { return words.first ?? "" }
        return words.dropLast().joined(separator: ", ") + " or " + words.last!
    }
}
