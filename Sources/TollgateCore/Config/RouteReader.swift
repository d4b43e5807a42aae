/// Reads and checks one entry of `routes:`.
struct RouteReader {
    let baseDirectory: String
    let secrets: [String: SecretReference]

    static let routeKeys: Set<String> = ["name", "match", "upstream", "file", "content_type", "params", "fixed",
                                         "fixed_body", "forward_headers", "response", "max_body",
                                         "limits", "policy_order", "cost", "cache", "origin", "cors", "require",
                                         "challenge", "shadow", "auth", "owner", "issue_client_key",
                                         "addresses", "countries", "counts_signup",
                                         "send_verification"]
    static let methods: Set<String> = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    /// Headers a route may never forward: hop-by-hop, framing, and ones the gateway sets itself.
    static let unforwardable: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                                             "upgrade", "host", "content-length", "proxy-authorization", "proxy-authenticate",
                                             "x-request-id", "x-tollgate-auth", "x-tollgate-subject", "x-tollgate-key-id",
                                             "x-tollgate-client-id", "x-tollgate-scopes", "x-tollgate-roles",
                                             "x-tollgate-identity-signature"]
    static let credentialHeaders: Set<String> = ["authorization", "cookie", "x-api-key", "forwarded", "x-forwarded-for",
                                                 "x-forwarded-host", "x-forwarded-proto", "x-real-ip"]

    func read(_ node: ConfigNode) -> RouteConfig? {
        guard let keys = node.object(allowed: Self.routeKeys) else { return nil }
        let name = keys["name"]?.nonEmptyString()
        if keys["name"] == nil { node.error("needs a name") }

        var method: String?
        var path: PathPattern?
        if let matchNode = keys["match"], let match = matchNode.object(allowed: ["method", "path"]) {
            if let m = match["method"]?.string()?.uppercased() {
                if Self.methods.contains(m) { method = m } else { match["method"]?.error("must be one of \(Self.methods.sorted().joined(separator: ", "))") }
            } else if match["method"] == nil {
                method = "GET"
            }
            if let p = match["path"]?.string() {
                if let pattern = PathPattern(p) { path = pattern } else { match["path"]?.error("must start with / and use {name} for parameters") }
            } else if match["path"] == nil {
                matchNode.error("needs a path")
            }
        } else if keys["match"] == nil {
            node.error("needs match: { method, path }")
        }

        var params = readParams(keys["params"])
        if keys["send_verification"] != nil {
            // The body is `{"email": …}`: declared here so validation accepts it and says what is missing.
            if keys["params"] != nil { keys["params"]?.error("a send_verification route takes only {\"email\"}; remove params") }
            params = [try! ParamSpec(name: "email", location: .body, kind: .string, required: true, minLength: 3, maxLength: 254)]
        }
        let paramNames = Set(params.map(\.name))
        if let path {
            for p in path.parameterNames where !params.contains(where: { $0.name == p && $0.location == .path }) {
                (keys["match"] ?? node).error("path parameter {\(p)} must be declared under params with in: path")
            }
            for spec in params where spec.location == .path && !path.parameterNames.contains(spec.name) {
                keys["params"]?.error("\(spec.name) is declared in: path but the path has no {\(spec.name)}")
            }
        }

        let fixedQuery = readFixed(keys["fixed"], clientParams: paramNames).map { ($0.key, $0.value.text) }
        let fixedBody = readFixed(keys["fixed_body"], clientParams: paramNames).map { JSONMember($0.key, $0.value.json) }

        var forward: [String] = []
        if let fnode = keys["forward_headers"], let list = fnode.stringList() {
            for h in list.map({ $0.lowercased() }) {
                if Self.unforwardable.contains(h) {
                    fnode.error("\(h) cannot be forwarded (hop-by-hop, framing, or set by the gateway)")
                } else {
                    if Self.credentialHeaders.contains(h) { fnode.warning("forwards the client's \(h) header to the upstream") }
                    forward.append(h)
                }
            }
        }

        let response = readResponse(keys["response"])
        let maxBody = keys["max_body"].flatMap { $0.byteSize() } ?? 16 * 1024

        var target: RouteConfig.Target?
        if let send = keys["send_verification"] {
            if keys["upstream"] != nil || keys["file"] != nil || keys["issue_client_key"] != nil {
                node.error("has send_verification and another target; choose one")
            }
            if method != "POST" { (keys["match"] ?? node).error("a send_verification route must match POST") }
            if send.object(allowed: []) != nil { target = .sendVerification }
        } else if let issue = keys["issue_client_key"] {
            if keys["upstream"] != nil || keys["file"] != nil { node.error("has issue_client_key and upstream or file; choose one") }
            if method != "POST" { (keys["match"] ?? node).error("an issue_client_key route must match POST") }
            target = IdentityReader.clientKeyGrant(issue).map { .issueClientKey($0) }
        } else {
        switch (keys["upstream"], keys["file"]) {
        case (let u?, nil):
            target = UpstreamReader(secrets: secrets, baseDirectory: baseDirectory)
                .read(u, routeMethod: method ?? "GET", params: params).map { .upstream($0) }
        case (nil, let f?):
            if let file = ConfigLoader.file(f, base: baseDirectory) {
                let type = keys["content_type"]?.string() ?? MediaTypes.forFile(file)
                target = .file(path: file, contentType: type)
            }
            if method != "GET" { f.error("a file route must match GET") }
        case (.some, .some): node.error("has both upstream and file; choose one")
        case (nil, nil): node.error("needs upstream (a paid API), file (a page to serve) or issue_client_key")
        }
        }

        let limits = keys["limits"].map { LimitReader.read($0, routeName: name ?? "route") } ?? []
        var order = RouteConfig.PolicyKind.defaultOrder
        if let orderNode = keys["policy_order"] {
            let listed = Self.kinds(orderNode, allowed: Set(RouteConfig.PolicyKind.allCases))
            order = listed + RouteConfig.PolicyKind.defaultOrder.filter { !listed.contains($0) }
        }
        let cost = keys["cost"].flatMap { SpendReader.cost($0) }
        let origin = keys["origin"].flatMap { OriginReader.origin($0) }
        let cors = keys["cors"].flatMap { OriginReader.cors($0) }
        let required = keys["require"].map { Self.kinds($0, allowed: [.pageToken, .challenge, .captcha, .verifiedEmail]) } ?? []
        if required.contains(.verifiedEmail), case .sendVerification? = target {
            keys["require"]?.error("verified_email cannot be required by the route that sends the links")
        }
        var challenge = keys["challenge"].flatMap { ChallengeReader.route($0) }
        if required.contains(.challenge), challenge == nil { challenge = (.always, Rate("30/min")!) }
        if challenge != nil, !required.contains(.challenge) { keys["challenge"]?.error("add challenge to require: to use it") }
        let shadow = keys["shadow"].map { Self.shadow($0) } ?? (kinds: [], stages: [])
        if shadow.stages.contains(.cors), cors == nil { keys["shadow"]?.error("cors is shadowed but the route has no cors") }
        if shadow.stages.contains(.budget), cost == nil { keys["shadow"]?.error("budget is shadowed but the route has no cost") }

        var cache: CacheConfig?
        if let c = keys["cache"], let ck = c.object(allowed: ["ttl"]) {
            if let ttl = ck["ttl"]?.duration() { cache = CacheConfig(ttl: ttl) } else if ck["ttl"] == nil { c.error("needs ttl, e.g. 1h") }
        }
        if (cost != nil || cache != nil), keys["file"] != nil { node.error("cost and cache apply to upstream routes only") }

        let auth = keys["auth"].flatMap { IdentityReader.auth($0) }
        let owner = keys["owner"].flatMap { IdentityReader.owner($0, params: params) }
        if owner != nil, auth == nil { keys["owner"]?.error("needs auth: an owner check compares against the authenticated caller") }
        for limit in limits where [.key, .subject, .clientID].contains(limit.scope) {
            if auth == nil { keys["limits"]?.error("limit \(limit.name) counts per \(limit.scope), which needs auth on the route") }
            else if let a = order.firstIndex(of: .auth), let r = order.firstIndex(of: .rateLimit), r < a {
                keys["policy_order"]?.error("rate_limit runs before auth, but limit \(limit.name) counts per \(limit.scope)")
            }
        }

        guard let name, let method, let path, let target else { return nil }
        var route = RouteConfig(name: name, method: method, path: path, target: target, params: params, fixedQuery: fixedQuery,
                           fixedBody: fixedBody, forwardHeaders: forward, response: response, maxBodyBytes: maxBody,
                           limits: limits, cost: cost, cache: cache, origin: origin, cors: cors,
                           requiresPageToken: required.contains(.pageToken), requiresCaptcha: required.contains(.captcha),
                           challenge: challenge, shadow: Set(shadow.kinds), shadowStages: Set(shadow.stages),
                           auth: auth, owner: owner, policyOrder: order)
        route.addresses = keys["addresses"].flatMap { AccessReader.addresses($0) }
        route.countries = keys["countries"].flatMap { AccessReader.countries($0) }
        route.countsSignup = keys["counts_signup"].flatMap { $0.bool() } ?? false
        route.requiresVerifiedEmail = required.contains(.verifiedEmail)
        return route
    }

    /// A list of policy kinds, each at most once, each from `allowed` (`policy_order`, `require`).
    static func kinds(_ node: ConfigNode, allowed: Set<RouteConfig.PolicyKind>) -> [RouteConfig.PolicyKind] {
        guard let list = node.stringList() else { return [] }
        var out: [RouteConfig.PolicyKind] = []
        for name in list {
            guard let kind = RouteConfig.PolicyKind(rawValue: name), allowed.contains(kind) else {
                node.error("\(name) is not one of \(allowed.map(\.rawValue).sorted().joined(separator: ", "))")
                continue
            }
            if out.contains(kind) { node.error("\(name) is listed twice") } else { out.append(kind) }
        }
        return out
    }

    /// `shadow:`: chain policies and the stages outside the chain (CORS, budgets) that only log.
    static func shadow(_ node: ConfigNode) -> (kinds: [RouteConfig.PolicyKind], stages: [RouteConfig.ShadowStage]) {
        guard let list = node.stringList() else { return ([], []) }
        var kinds: [RouteConfig.PolicyKind] = []
        var stages: [RouteConfig.ShadowStage] = []
        let names = (RouteConfig.PolicyKind.allCases.map(\.rawValue) + RouteConfig.ShadowStage.allCases.map(\.rawValue)).sorted()
        for name in list {
            if let kind = RouteConfig.PolicyKind(rawValue: name), !kinds.contains(kind) {
                kinds.append(kind)
            } else if let stage = RouteConfig.ShadowStage(rawValue: name), !stages.contains(stage) {
                stages.append(stage)
            } else if names.contains(name) {
                node.error("\(name) is listed twice")
            } else {
                node.error("\(name) is not one of \(names.joined(separator: ", "))")
            }
        }
        return (kinds, stages)
    }

    private func readParams(_ node: ConfigNode?) -> [ParamSpec] {
        guard let node, let members = node.mapping() else { return [] }
        return members.compactMap { ParamReader.read(name: $0.key, $0.value) }
    }

    private func readFixed(_ node: ConfigNode?, clientParams: Set<String>) -> [(key: String, value: ParamValue)] {
        guard let node, let members = node.mapping() else { return [] }
        var out: [(key: String, value: ParamValue)] = []
        for (key, value) in members {
            guard let text = value.string() else { continue }
            if clientParams.contains(key) { value.error("is also declared as a client parameter; a fixed value must belong to the server alone") }
            let lowered = key.lowercased()
            if ["key", "apikey", "api_key", "token", "secret", "password"].contains(where: { lowered.contains($0) })
                && SecretHeuristics.looksLikeLiteralSecret(text) {
                value.error("looks like a literal secret; put it under secrets: and inject it with upstream.auth")
            }
            if case .scalar(let scalar) = value.node, scalar.style == .plain, let i = Int(text) {
                out.append((key, .int(i)))
            } else if case .scalar(let scalar) = value.node, scalar.style == .plain, text == "true" || text == "false" {
                out.append((key, .bool(text == "true")))
            } else {
                out.append((key, .string(text)))
            }
        }
        return out
    }

    private func readResponse(_ node: ConfigNode?) -> ResponseConfig {
        var response = ResponseConfig(fields: nil, cacheControl: "no-store", passHeaders: [], passStatuses: [])
        guard let node, let keys = node.object(allowed: ["fields", "cache_control", "headers", "pass_statuses"]) else { return response }
        if let f = keys["fields"], let list = f.stringList() {
            if list.isEmpty || list.contains(where: \.isEmpty) { f.error("must list at least one field name") } else { response.fields = list }
        }
        if let c = keys["cache_control"]?.nonEmptyString() { response.cacheControl = c }
        if let h = keys["headers"], let list = h.stringList() {
            for name in list.map({ $0.lowercased() }) {
                if Self.unforwardable.contains(name) || ["set-cookie", "content-type", "location"].contains(name) {
                    h.error("\(name) cannot be passed to the client")
                } else {
                    response.passHeaders.append(name)
                }
            }
        }
        if let s = keys["pass_statuses"], let items = s.sequence() {
            for item in items {
                guard let code = item.int() else { continue }
                if (400...599).contains(code) { response.passStatuses.append(code) } else { item.error("must be an error status (400–599)") }
            }
        }
        return response
    }
}

enum MediaTypes {
    static func forFile(_ path: String) -> String {
        let ext = path.split(separator: ".").last.map { $0.lowercased() } ?? ""
        switch ext {
        case "html", "htm": return "text/html; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "json": return "application/json"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        case "txt": return "text/plain; charset=utf-8"
        default: return "application/octet-stream"
        }
    }
}
