/// Reads and checks `routes[i].upstream`.
struct UpstreamReader {
    let secrets: [String: SecretReference]
    let baseDirectory: String

    static let keys: Set<String> = ["url", "method", "auth", "timeout", "connect_timeout", "max_response_bytes", "ca_file"]

    func read(_ node: ConfigNode, routeMethod: String, params: [ParamSpec]) -> UpstreamConfig? {
        guard let keys = node.object(allowed: Self.keys) else { return nil }
        var url: UpstreamURL?
        if let u = keys["url"], let text = u.nonEmptyString() {
            do {
                let parsed = try UpstreamURL(text)
                for name in parsed.placeholders where !params.contains(where: { $0.name == name }) {
                    u.error("placeholder {\(name)} is not a declared parameter")
                }
                url = parsed
            } catch {
                let why: String
                switch error {
                case .scheme: why = "must start with http:// or https://"
                case .host: why = "has no host"
                case .port: why = "has an invalid port"
                case .userInfo: why = "must not hold credentials (user:pass@); use auth and secrets"
                case .fragment: why = "must not have a #fragment"
                }
                u.error(why)
            }
            if SecretHeuristics.looksLikeLiteralSecret(text.split(separator: "?").dropFirst().joined()) {
                u.warning("the query string looks like it holds a key; use auth: { query: NAME, secret: … }")
            }
        } else if keys["url"] == nil {
            node.error("needs url")
        }

        var method = routeMethod
        if let m = keys["method"]?.string()?.uppercased() {
            if RouteReader.methods.contains(m) { method = m } else { keys["method"]?.error("must be one of \(RouteReader.methods.sorted().joined(separator: ", "))") }
        }

        let auth = keys["auth"].flatMap { readAuth($0) }
        let timeout = keys["timeout"].flatMap { $0.duration() } ?? .seconds(10)
        let connectTimeout = keys["connect_timeout"].flatMap { $0.duration() } ?? min(timeout, .seconds(3))
        if timeout <= .zero { keys["timeout"]?.error("must be more than 0") }
        if connectTimeout > timeout { keys["connect_timeout"]?.error("must be ≤ timeout") }
        let maxResponse = keys["max_response_bytes"].flatMap { $0.byteSize() } ?? 1 << 20
        let caFile = keys["ca_file"].flatMap { ConfigLoader.file($0, base: baseDirectory) }
        if caFile != nil, let url, !url.isTLS { keys["ca_file"]?.warning("is ignored: the upstream is not https") }
        if let url, !url.isTLS, auth != nil, !["127.0.0.1", "localhost", "::1"].contains(url.host) {
            keys["url"]?.warning("sends the secret over plain http to a host that is not loopback")
        }

        guard let url else { return nil }
        return UpstreamConfig(url: url, method: method, auth: auth, timeout: timeout, connectTimeout: connectTimeout,
                              maxResponseBytes: maxResponse, caFile: caFile)
    }

    private func readAuth(_ node: ConfigNode) -> UpstreamAuth? {
        guard let keys = node.object(allowed: ["header", "query", "scheme", "user", "secret"]) else { return nil }
        guard let secretNode = keys["secret"] else { node.error("needs secret: the name of an entry under secrets"); return nil }
        guard let secret = secretNode.secretName(in: secrets), secrets[secret] != nil else { return nil }
        let modes = ["header", "query", "scheme"].filter { keys[$0] != nil }
        guard modes.count == 1 else {
            node.error("needs exactly one of header: NAME, query: NAME or scheme: bearer|basic")
            return nil
        }
        if let h = keys["header"]?.nonEmptyString() {
            if RouteReader.unforwardable.contains(h.lowercased()) { keys["header"]?.error("cannot carry the secret") ; return nil }
            return .header(name: h, secret: secret)
        }
        if let q = keys["query"]?.nonEmptyString() { return .query(name: q, secret: secret) }
        switch keys["scheme"]?.choice(["bearer", "basic"]) {
        case "bearer": return .bearer(secret: secret)
        case "basic":
            guard let user = keys["user"]?.string() else { node.error("scheme: basic needs user"); return nil }
            return .basic(user: user, secret: secret)
        default:
            return nil
        }
    }
}
