/// One limit of a route (`routes[i].limits[j]`).
public struct LimitConfig: Sendable, Equatable {
    /// What a bucket belongs to.
    public enum Scope: Sendable, Equatable, CustomStringConvertible {
        /// The resolved client address (IPv6 grouped by prefix).
        case ip
        /// One bucket for the route.
        case route
        /// One bucket for every route that declares this limit by name.
        case global
        /// The value of a request header (e.g. an API key); requests without it share one bucket.
        case header(String)
        /// The value of a cookie; requests without it share one bucket.
        case cookie(String)
        /// The caller's API or client key id (`auth` must run first); callers without one share a bucket.
        case key
        /// The caller's subject: a key's owner or a token's `sub`.
        case subject
        /// The OAuth client a token was issued to.
        case clientID
        /// The address a `send_verification` route was sent, or a session's verified address (by hash).
        case email
        /// That address's domain.
        case emailDomain

        public var description: String {
            switch self {
            case .ip: "ip"
            case .route: "route"
            case .global: "global"
            case .header(let h): "header:\(h)"
            case .cookie(let c): "cookie:\(c)"
            case .key: "key"
            case .subject: "subject"
            case .clientID: "client_id"
            case .email: "email"
            case .emailDomain: "email_domain"
            }
        }
    }

    public enum Mode: Sendable, Equatable {
        /// Refuse with 429.
        case reject
        /// Delay up to `maxDelay`, with at most `queue` requests waiting; beyond either, 429.
        case throttle(maxDelay: Duration, queue: Int)
    }

    /// Policy name in `RateLimit` headers; limits with the same explicit name share their buckets.
    public var name: String
    public var shared: Bool
    public var scope: Scope
    public var rate: Rate
    /// Requests allowed at once; defaults to the rate's count.
    public var burst: Int
    /// Units one request of this route takes.
    public var weight: Int
    /// Count only responses with status ≥ 400 (login-like routes).
    public var skipSuccessful: Bool
    public var mode: Mode
    /// `open` (default): while the gateways cannot share usage, each enforces this limit alone.
    /// `closed`: refuse (503) until they can again.
    public var onStoreError: OnStoreError = .open
}

/// Reads `routes[i].limits`.
enum LimitReader {
    static let keys: Set<String> = ["name", "per", "rate", "burst", "weight", "skip_successful", "mode", "max_delay", "queue",
                                    "on_store_error"]

    static func read(_ node: ConfigNode, routeName: String) -> [LimitConfig] {
        guard let items = node.sequence() else { return [] }
        var out: [LimitConfig] = []
        for item in items {
            guard let keys = item.object(allowed: keys) else { continue }
            var scope = LimitConfig.Scope.ip
            if let n = keys["per"], let text = n.string() {
                switch text {
                case "ip": scope = .ip
                case "route": scope = .route
                case "global": scope = .global
                case "key": scope = .key
                case "subject": scope = .subject
                case "client_id": scope = .clientID
                case "email": scope = .email
                case "email_domain": scope = .emailDomain
                default:
                    if text.hasPrefix("header:"), text.count > 7 {
                        scope = .header(String(text.dropFirst(7)).lowercased())
                    } else if text.hasPrefix("cookie:"), text.count > 7 {
                        scope = .cookie(String(text.dropFirst(7)))
                    } else {
                        n.error("must be ip, route, global, key, subject, client_id, email, email_domain, header:NAME or cookie:NAME")
                        continue
                    }
                }
            }
            guard let rateNode = keys["rate"] else {
                item.error("needs rate, e.g. 10/s, 100/min or 1000/day")
                continue
            }
            guard let rate = rateNode.rate() else { continue }
            let burst = keys["burst"].flatMap { $0.int(min: 1) } ?? rate.count
            let weight = keys["weight"].flatMap { $0.int(min: 1) } ?? 1
            if weight > burst { keys["weight"]?.error("must be ≤ burst (\(burst)), or no request could ever pass") }
            let skip = keys["skip_successful"].flatMap { $0.bool() } ?? false
            var mode = LimitConfig.Mode.reject
            switch keys["mode"].map({ $0.choice(["reject", "throttle"]) }) ?? "reject" {
            case "reject":
                if keys["max_delay"] != nil || keys["queue"] != nil { item.error("max_delay and queue apply to mode: throttle") }
            case "throttle":
                let maxDelay = keys["max_delay"].flatMap { $0.duration() } ?? .seconds(1)
                let queue = keys["queue"].flatMap { $0.int(min: 1) } ?? 100
                mode = .throttle(maxDelay: maxDelay, queue: queue)
                if skip { item.error("skip_successful cannot be combined with mode: throttle") }
            default:
                break  // reported by choice
            }
            let explicitName = keys["name"]?.nonEmptyString()
            if let explicitName, !explicitName.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
                keys["name"]?.error("may hold letters, digits, - and _ only")
            }
            let name = explicitName ?? (scope == .global ? "global" : scope == .route ? routeName : "\(scope)")
            var limit = LimitConfig(name: name, shared: explicitName != nil || scope == .global, scope: scope, rate: rate,
                                    burst: burst, weight: weight, skipSuccessful: skip, mode: mode)
            if let o = keys["on_store_error"], let m = o.oneOf(OnStoreError.self) { limit.onStoreError = m }
            out.append(limit)
        }
        return out
    }
}
