/// What a policy decided about a request.
public enum Decision: Sendable, Equatable {
    /// Let the request continue to the next policy, and then to the upstream.
    case pass
    /// Answer now with this problem; the upstream is not called. (Inline: boxing it too would make
    /// a `Decision` fit in registers, but cost refusals — the flood path — an allocation each.)
    case reject(Problem)
    /// Continue after waiting this long (throttling instead of refusing).
    case delay(Duration)
    /// Decide after an HTTP call the data plane makes without blocking (e.g. CAPTCHA siteverify).
    /// (Boxed: inline, the check made every `Decision` 129 bytes, copied with `memcpy` at each
    /// step of every chain, for a case only CAPTCHA routes use.)
    indirect case external(ExternalCheck)

    public static func == (a: Decision, b: Decision) -> Bool {
        switch (a, b) {
        case (.pass, .pass): true
        case (.reject(let x), .reject(let y)): x == y
        case (.delay(let x), .delay(let y)): x == y
        default: false
        }
    }
}

/// One step of a route's policy chain. Pure and synchronous: it runs on the event loop, so it must not
/// block, and anything it needs beyond the request (counters, clocks) it is handed.
public protocol Policy: Sendable {
    /// Which policy this is; its raw value names it in config, logs and metrics (e.g. `validation`).
    var kind: RouteConfig.PolicyKind { get }
    /// Decides about `request`; may fill in what it learned (validated parameters, client identity).
    func evaluate(_ request: inout RequestView) -> Decision
    /// Called once the response status is known, for requests this policy let through — only when
    /// ``observesCompletion`` is true.
    func completed(_ request: RequestView, status: Int)
    /// Whether ``completed(_:status:)`` does anything; false lets the data plane skip the call (and
    /// the copy of the request view it would take).
    var observesCompletion: Bool { get }
}

extension Policy {
    public func completed(_ request: RequestView, status: Int) {}
    public var observesCompletion: Bool { false }
    /// The policy's name in config, logs and metrics.
    public var name: String { kind.rawValue }
}
