/// Which of a route's policies and stages run in shadow mode, and the one rule for what that means:
/// a refusal is noted on the request (`name:code[:reason]`, for the access log and the refusal
/// counters) and the request goes on. Every place that can refuse — the chain, a policy's external
/// check, CORS, budgets — asks here, so shadow mode behaves the same everywhere.
public struct ShadowMode: Sendable {
    public let policies: Set<RouteConfig.PolicyKind>
    public let stages: Set<RouteConfig.ShadowStage>

    public init(policies: Set<RouteConfig.PolicyKind>, stages: Set<RouteConfig.ShadowStage>) {
        self.policies = policies
        self.stages = stages
    }

    public func covers(_ kind: RouteConfig.PolicyKind) -> Bool { policies.contains(kind) }
    public func covers(_ stage: RouteConfig.ShadowStage) -> Bool { stages.contains(stage) }

    /// `decision` as made by `kind` on this route: unchanged when enforcing; in shadow mode a
    /// refusal is noted and becomes `.pass`, and so does a throttle delay.
    public func apply(_ decision: Decision, by kind: RouteConfig.PolicyKind, to request: inout RequestView) -> Decision {
        guard covers(kind) else { return decision }
        switch decision {
        case .pass, .delay: return .pass
        case .external: return decision  // decided later, through this same function
        case .reject(let problem):
            Self.note(problem, by: kind.rawValue, on: &request)
            // What the refusal said about the client's allowance stays true: keep it on the response.
            request.responseHeaders += problem.headers.filter { $0.0 == "RateLimit" || $0.0 == "RateLimit-Policy" }
            return .pass
        }
    }

    /// Whether `stage` lets a refusal through; if so, notes it.
    public func letsThrough(_ problem: Problem, at stage: RouteConfig.ShadowStage, on request: inout RequestView) -> Bool {
        guard covers(stage) else { return false }
        Self.note(problem, by: stage.rawValue, on: &request)
        return true
    }

    /// Appends `name:code[:reason]` to the request's shadowed refusals.
    static func note(_ problem: Problem, by name: String, on request: inout RequestView) {
        var note = "\(name):\(problem.code)"
        if case .string(let reason)? = problem.extensions.first(where: { $0.key == "reason" })?.value { note += ":\(reason)" }
        request.shadowed.append(note)
    }
}
