/// Requires a valid page-load token (`X-Tollgate-Token`) bound to the session cookie.
public struct PageTokenPolicy: Policy {
    public let kind = RouteConfig.PolicyKind.pageToken
    let tokens: PageTokens

    public init(tokens: PageTokens) { self.tokens = tokens }

    public func evaluate(_ request: inout RequestView) -> Decision {
        let refusal = tokens.verify(request.header("x-tollgate-token"), session: request.cookie(tokens.config.cookie),
                                    address: request.clientKey.description, userAgent: request.header("user-agent") ?? "",
                                    nowMillis: request.wallMillis)
        guard let refusal else { return .pass }
        return .reject(Problem(status: 403, code: "page-token", title: "Forbidden",
                               detail: "This call must come from the page, with a current page token.",
                               extensions: [JSONMember("reason", .string(refusal.rawValue))]))
    }
}
