/// A route ready to serve: its config, its policy chain in order, and what was precomputed from it.
public final class Route: Sendable {
    public let config: RouteConfig
    /// Policies in the order they run; the first that does not pass decides.
    public let policies: [any Policy]
    /// How the upstream request is rendered (nil for file routes).
    public let template: UpstreamRequestTemplate?
    /// Which JSON fields of the upstream response reach the client (nil keeps the body as is).
    public let projection: ResponseProjection?

    public init(config: RouteConfig, secrets: [String: String]) {
        self.config = config
        self.policies = [ValidationPolicy(specs: config.params)]
        self.template = config.upstream.map { UpstreamRequestTemplate(route: config, upstream: $0, secrets: secrets) }
        self.projection = config.response.fields.map { ResponseProjection(fields: $0) }
    }

    public var name: String { config.name }

    /// Runs the chain. Returns the name of the policy that refused, with its problem, or nil when all passed.
    public func evaluate(_ request: inout RequestView) -> (policy: String, problem: Problem)? {
        for policy in policies {
            if case .reject(let problem) = policy.evaluate(&request) { return (policy.name, problem) }
        }
        return nil
    }
}

/// Builds the route table of a loaded config with its resolved secrets.
public enum GatewayRoutes {
    public static func table(config: GatewayConfig, secrets: [String: String]) -> RouteTable<Route> {
        RouteTable(config.routes.map { ($0.method, $0.path, Route(config: $0, secrets: secrets)) })
    }
}
