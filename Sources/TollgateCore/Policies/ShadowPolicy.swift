/// Runs a policy in shadow mode: what it would have refused is noted (and logged with the request)
/// but the request goes on. Lets a team tune a policy on real traffic before enforcing it.
public struct ShadowPolicy: Policy {
    public let inner: any Policy
    public var name: String { inner.name }

    public init(_ inner: any Policy) { self.inner = inner }

    public func evaluate(_ request: inout RequestView) -> Decision {
        switch inner.evaluate(&request) {
        case .pass, .delay:
            return .pass
        case .external(let check):
            return .external(check)  // the data plane makes the call and notes a refusal instead of answering it
        case .reject(let problem):
            var note = "\(inner.name):\(problem.code)"
            if case .string(let reason)? = problem.extensions.first(where: { $0.key == "reason" })?.value { note += ":\(reason)" }
            request.shadowed.append(note)
            return .pass
        }
    }

    public func completed(_ request: RequestView, status: Int) { inner.completed(request, status: status) }
}
