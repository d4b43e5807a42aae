import NIOCore
import TollgateCore

/// What a request is answered with, the same for every protocol the listener speaks: HTTP/1.1
/// connections and HTTP/2 streams both come here, so a request meets one route table, one policy
/// chain, one budget and one upstream path however it arrived.
enum RequestDispatch {
    /// How a complete request is answered: with a response decided now, or by an exchange that is
    /// ready to start (the caller records it as the one being answered, then calls `start()`, which
    /// may answer at once).
    enum Answer {
        case now(Response)
        case exchange(ProxyExchange)
    }

    /// The answer a new head gets before its body is read, when its `Content-Length` already says
    /// the body is over the route's limit.
    static func bodyTooLarge(_ req: InboundRequest) -> Response? {
        guard let length = req.head.headers.first(name: "content-length").flatMap(Int.init), length > req.maxBody else { return nil }
        return .problem(.bodyTooLarge, requestID: req.requestID, by: .stage(.bodyLimit), note: "content-length \(length)")
    }

    /// The request is complete: an early answer, a gateway endpoint, a file, or an exchange.
    static func answer(_ req: InboundRequest, loop: LoopContext, owner: ExchangeOwner) -> Answer {
        if let early = req.early { return .now(early) }
        if let builtin = req.builtin { return .now(builtin.answer(req, state: req.state)) }
        guard let route = req.route else {
            return .now(.problem(.internalError, requestID: req.requestID, by: .stage(.internal)))
        }
        switch route.config.target {
        case .file(_, let contentType):
            var response = Response.served(200, contentType: contentType, body: req.state.files[route.name])
            response.cacheControl = route.config.response.cacheControl
            response.isPage = true
            return .now(response)
        case .upstream, .issueClientKey, .sendVerification:
            return .exchange(ProxyExchange(request: req, route: route, loop: loop, owner: owner))
        }
    }
}
