import NIOCore
import TollgateCore
import TollgateUpstreamHTTP

/// What the gateway makes of an upstream response: relay it (projected), or refuse it.
///
/// Redirects are never followed nor passed on (a `Location` could carry the key or point the page
/// elsewhere); upstream errors become generic problems so that upstream error text, which may echo
/// the key or internal details, never reaches the client. A success that would carry the route's
/// secret (``SecretEcho``) is refused whole, so neither the client nor the cache ever holds it.
enum UpstreamOutcome {
    case relay(status: Int, contentType: String?, body: ByteBuffer, headers: [(String, String)])
    /// Answer with this problem; `note` is for the log.
    case refuse(Problem, note: String)

    static func classify(_ response: UpstreamResponse, route: Route) -> UpstreamOutcome {
        let outcome = classify(response, route: route.config, projection: route.projection)
        guard let echo = route.secretEcho, case .relay(_, let contentType, let body, let headers) = outcome else { return outcome }
        if let place = Self.echoed(echo, contentType: contentType, body: body, headers: headers) {
            return .refuse(.upstreamFailed, note: "upstream response carried the route's secret in \(place); refused")
        }
        return outcome
    }

    /// Where in what would be relayed a form of the secret occurs (`body`, `content-type`, a header
    /// name), or nil. Never returns what was found.
    static func echoed(_ echo: SecretEcho, contentType: String?, body: ByteBuffer, headers: [(String, String)]) -> String? {
        if body.withUnsafeReadableBytes({ echo.occurs(in: $0) }) { return "the body" }
        if let contentType, echo.occurs(in: contentType) { return "content-type" }
        for (name, value) in headers where echo.occurs(in: value) { return "header \(name.lowercased())" }
        return nil
    }

    static func classify(_ response: UpstreamResponse, route: RouteConfig, projection: ResponseProjection?) -> UpstreamOutcome {
        let status = response.status
        if (300...399).contains(status) {
            return .refuse(.upstreamFailed, note: "upstream answered \(status); redirects are not followed")
        }
        if status >= 400 {
            if route.response.passStatuses.contains(status) {
                return .refuse(Problem(status: status, code: "upstream-\(status)", title: ResponseEncoder.reasonPhrase(status),
                                       detail: "The upstream service could not fulfil this request."),
                               note: "upstream answered \(status), passed on")
            }
            return .refuse(.upstreamFailed, note: "upstream answered \(status)")
        }
        var body = response.body
        var contentType = response.headers.contentType
        if let projection, body.readableBytes > 0 {
            guard let projected = projection.project(body.readableBytesView) else {
                return .refuse(.upstreamFailed, note: "upstream body is not JSON; cannot project fields")
            }
            body = ByteBuffer(string: projected.serialized)
            contentType = "application/json"
        }
        var headers: [(String, String)] = []
        for name in route.response.passHeaders {
            headers += response.headers.all(name)
        }
        return .relay(status: status, contentType: contentType, body: body, headers: headers)
    }
}
