import NIOCore
import NIOHPACK
import TollgateCore

/// The one place a response leaves the gateway: it completes the response's headers, encodes it,
/// writes its access-log line, counts it (status class, refusals by reason, shadowed refusals) and
/// tells the route's policies how the request ended. Every request passes here exactly once.
enum ResponseDelivery {
    /// The bytes of `response` to `req` over HTTP/1.1, after recording it. `exchange` is the
    /// proxy exchange that answered, if one did: its view is what the route's policies saw. (The
    /// exchange is passed, not its `RequestView`: copying that struct at each step retained and
    /// released every field, ~2 % of the proxied path's CPU.) The buffer comes from the loop's
    /// ``LoopContext/responseBuffers``: the caller gives it back once it is written.
    static func render(_ response: consuming Response, for req: InboundRequest, from exchange: ProxyExchange?, keepAlive: Bool,
                       loop: LoopContext, allocator: ByteBufferAllocator) -> ByteBuffer {
        var response = response
        let problemText = settle(&response, for: req, from: exchange, loop: loop)
        var buffer = loop.responseBuffers.take(capacity: 512 + (response.body?.readableBytes ?? problemText?.utf8.count ?? 0),
                                               allocator: allocator)
        ResponseEncoder.write(response, problemText: problemText, requestID: req.requestID, keepAlive: keepAlive,
                              hsts: req.secure ? req.state.hstsLine : nil, into: &buffer)
        return buffer
    }

    /// `response` to `req` as an HTTP/2 stream sends it (HPACK fields, then body), after recording it.
    /// `firstOnConnection`: see ``HTTP2Fields/response(_:problemText:requestID:hsts:firstOnConnection:)``.
    static func parts(_ response: consuming Response, for req: InboundRequest, from exchange: ProxyExchange?, loop: LoopContext,
                      allocator: ByteBufferAllocator, firstOnConnection: Bool) -> (fields: HPACKHeaders, body: ByteBuffer?) {
        var response = response
        let problemText = settle(&response, for: req, from: exchange, loop: loop)
        let fields = HTTP2Fields.response(response, problemText: problemText, requestID: req.requestID,
                                          hsts: req.secure ? req.state.hstsValue : nil, firstOnConnection: firstOnConnection)
        return (fields, response.body ?? problemText.map { allocator.buffer(string: $0) })
    }

    /// Completes `response`, records it, and renders its problem document (into the loop's
    /// reused string, which it returns), once per request whatever the protocol. (In place:
    /// returning the response in a tuple copied it and destroyed the original.)
    private static func settle(_ response: inout Response, for req: InboundRequest, from exchange: ProxyExchange?,
                               loop: LoopContext) -> String? {
        complete(&response, for: req, from: exchange)
        record(response, for: req, from: exchange, loop: loop)
        guard let problem = response.problem else { return nil }
        loop.problemText.removeAll(keepingCapacity: true)
        problem.document.write(requestID: problem.requestID, into: &loop.problemText)
        return loop.problemText
    }

    /// Adds what every response of the route carries: headers policies added (CORS, `RateLimit`)
    /// unless the response has its own, and on a limited route whose limits did not run, their
    /// current state (nothing taken).
    static func complete(_ response: inout Response, for req: InboundRequest, from exchange: ProxyExchange?) {
        if let extra = exchange?.view.responseHeaders, !extra.isEmpty {
            if response.headers.isEmpty {
                response.headers = extra
            } else {
                let own = response.headers
                response.headers += extra.filter { name, _ in !own.contains { $0.0 == name } }
            }
        }
        if let route = req.route, route.rateLimits != nil, !response.hasHeader("RateLimit") {
            if let state = exchange?.view.rateLimit {
                response.rateLimit = state
            } else {
                response.headers += route.limitHeaders(exchange?.view ?? limitView(req))
            }
        }
    }

    /// What limits need to find their buckets, for a request answered before its view was built.
    private static func limitView(_ req: InboundRequest) -> RequestView {
        RequestView(method: req.head.method.rawValue, path: req.path, query: req.query, fields: req.head.headers,
                    clientAddress: req.client.address, clientKey: req.client.key,
                    now: Int64(NIODeadline.now().uptimeNanoseconds), wallMillis: NIODeadline.wallClockMillis)
    }

    private static func record(_ response: Response, for req: InboundRequest, from exchange: ProxyExchange?, loop: LoopContext) {
        let state = req.state
        loop.responses[min(5, max(1, response.status / 100))] += 1
        let routeName = req.route?.name ?? "-"
        if response.refused, let decider = response.decidedBy, decider.refusesClient {
            loop.refusals.count(route: routeName, reason: .decider(decider), client: req.client, loop: loop)
            if decider != .stage(.ban), state.access.hasAutoBanRules {
                state.access.count(status: response.status, address: req.client.whole, nowNanos: Int64(NIODeadline.now().uptimeNanoseconds))
            }
        }
        for shadowed in response.shadowed {
            loop.refusals.count(route: routeName, reason: .shadow(String(shadowed.prefix { $0 != ":" })), client: req.client, loop: loop)
        }
        if let exchange, let route = req.route, route.observesCompletion { route.completed(exchange.view, status: response.status) }
        if let micros = response.upstreamMicros, let route = req.route, let plan = state.upstreamPlan(for: route) {
            plan.latency.recordNanoseconds(micros * 1000)
        }
        let country = state.geo == nil ? nil : req.country(state.geo)
        loop.console.record(response, for: req, country: country, watched: state.watchedRoutes)
        if (200...299).contains(response.status), req.route?.config.countsSignup == true { loop.console.recordSignup() }
        guard state.accessLog.isEnabled else { return }
        var note = response.note
        if !response.shadowed.isEmpty {
            let shadow = "shadow " + response.shadowed.joined(separator: ",")
            note = note.map { $0 + "; " + shadow } ?? shadow
        }
        loop.accessLines.write(AccessRecord(
            requestID: req.requestID, route: req.route?.name, method: req.head.method.rawValue, http2: req.overHTTP2, path: req.path,
            status: response.status, latencyMicros: (NIODeadline.now() - req.started).nanoseconds / 1000,
            client: req.client.address, country: country, decision: response.refused ? "reject" : "pass", decidedBy: response.decidedBy?.name,
            upstreamStatus: response.upstreamStatus, upstreamLatencyMicros: response.upstreamMicros, note: note),
            to: state.accessLog)
    }
}
