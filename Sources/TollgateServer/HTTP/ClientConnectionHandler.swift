import NIOCore
import NIOHTTP1
import TollgateCore

/// Serves one client connection: HTTP/1.1 keep-alive and pipelining, one request at a time in order.
///
/// Invariants:
/// - At most one request is being answered (`responding`); parts of later pipelined requests wait in
///   `queued`, and once any wait there socket reads are held until the answer is written, so a client
///   cannot make the gateway buffer more than one read cycle (at most `maxMessagesPerRead` socket
///   reads) of pipelined requests.
/// - Every request gets exactly one response and one access-log line.
/// - A body over the route's limit is answered with 413 and the connection is closed (the rest of the
///   body is never read).
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let loop: LoopContext
    let secureListener: Bool
    var context: ChannelHandlerContext?
    /// The TCP peer; the client itself unless it is a trusted proxy.
    private var peerAddress = "unknown"
    private var peerBytes: [UInt8] = []
    private var peerKey = ClientKey(high: 0, low: 0)
    private var peerIsTrustedProxy = false

    var request: InboundRequest?
    private var responding = false
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var drainingQueue = false
    private var readHeld = false
    private var closing = false
    private var idleTimer: Scheduled<Void>?
    /// When the last request started or the last response was written; the idle timer is re-armed
    /// lazily from it, so a request costs no timer operations.
    private var lastActivity = NIODeadline.now()

    init(loop: LoopContext, secureListener: Bool) {
        self.loop = loop
        self.secureListener = secureListener
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let remote = context.channel.remoteAddress {
            peerAddress = remote.ipAddress ?? "unknown"
            peerBytes = IPAddress.parse(peerAddress) ?? []
            peerKey = loop.state.config.clientIdentity.key(for: peerBytes)
            peerIsTrustedProxy = loop.state.isTrustedProxy(peerBytes)
        }
        loop.connections[ObjectIdentifier(self)] = self
        armIdleTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        if let req = request, req.delayTimer != nil {
            req.delayTimer?.cancel()
            abandon(req)
        }
        loop.connections[ObjectIdentifier(self)] = nil
        if responding { loop.inFlight -= 1; responding = false }
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if closing { return }
        if responding || drainingQueue {
            queued.append(part)
            return
        }
        handle(part)
    }

    /// Reads are held only while pipelined requests are already waiting: holding them for every
    /// request in flight would cost two `epoll_ctl` calls per request.
    func read(context: ChannelHandlerContext) {
        if responding && !queued.isEmpty {
            readHeld = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !closing else { return }
        if !responding, let parseError = error as? HTTPParserError {
            let problem: Problem = parseError == .headerOverflow ? .headersTooLarge : .badRequest
            let id = request?.requestID ?? loop.requestIDs.next()
            respondWithProblem(problem, requestID: id, decidedBy: "http", note: "parse error: \(parseError)", forceClose: true)
        } else {
            close()
        }
    }

    /// Shutdown: close now if idle, else after the response in progress.
    func drain() {
        if !responding && request == nil { close() }
    }

    /// Shutdown deadline passed: close whatever the state.
    func forceClose() {
        closing = false
        close()
    }

    // MARK: Request assembly

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head): begin(head)
        case .body(var bytes): receiveBody(&bytes)
        case .end: respond()
        }
    }

    private func begin(_ head: HTTPRequestHead) {
        lastActivity = .now()
        var id = head.headers.first(name: "x-request-id") ?? ""
        if !RequestIDGenerator.isAcceptable(id) { id = loop.requestIDs.next() }
        let req = InboundRequest(head: head, requestID: id, started: .now())
        req.keepAlive = head.isKeepAlive && !head.headers.contains(name: "upgrade") && !loop.draining
        req.secure = secureListener || (peerIsTrustedProxy
            && head.headers.first(name: "x-forwarded-proto")?.lowercased() == "https")
        if peerIsTrustedProxy { req.client = resolveClient(head.headers).address }  // every log line names the real client

        let uri = head.uri
        guard uri.hasPrefix("/") else {
            req.early = (.badRequest, "http", "request target is not origin-form")
            request = req
            return
        }
        let q = uri.firstIndex(of: "?")
        req.path = uri[..<(q ?? uri.endIndex)]
        req.query = q.map { uri[uri.index(after: $0)...] } ?? ""

        if let builtin = BuiltinEndpoint.match(head: head, path: req.path, state: loop.state) {
            req.builtin = builtin
        } else {
            switch loop.state.routes.match(method: head.method.rawValue, path: req.path) {
            case .found(let route, let pathParams):
                req.route = route
                req.pathParams = pathParams
                req.maxBody = route.config.maxBodyBytes
            case .methodNotAllowed(let allow):
                req.early = (.methodNotAllowed(allow: allow), "routing", nil)
            case .notFound:
                req.early = (.notFound, "routing", nil)
            }
        }
        if loop.draining {
            // Arrived after shutdown began (pipelined behind a request still being answered).
            req.early = (.shuttingDown, "shutdown", nil)
        }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > req.maxBody {
            request = req
            respondWithProblem(.bodyTooLarge, requestID: id, decidedBy: "body_limit", note: "content-length \(length)", forceClose: true)
            return
        }
        if head.headers.first(name: "expect")?.lowercased() == "100-continue", req.early == nil {
            context?.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
        }
        request = req
    }

    private func receiveBody(_ bytes: inout ByteBuffer) {
        guard let req = request else { return }
        req.bodyBytes += bytes.readableBytes
        if req.bodyBytes > req.maxBody {
            respondWithProblem(.bodyTooLarge, requestID: req.requestID, decidedBy: "body_limit", note: "body over limit", forceClose: true)
            return
        }
        if req.early == nil {
            if req.body == nil { req.body = bytes } else { req.body!.writeBuffer(&bytes) }
        }
    }

    // MARK: Answering

    /// The client as limits count it (key) and as the log shows it (address): the TCP peer, or the
    /// rightmost untrusted hop when the peer is a trusted proxy.
    func resolveClient(_ headers: HTTPHeaders) -> (key: ClientKey, address: String) {
        guard peerIsTrustedProxy else { return (peerKey, peerAddress) }
        let resolved = loop.state.config.clientIdentity.resolve(peer: peerBytes, fields: headers)
        return (loop.state.config.clientIdentity.key(for: resolved),
                ClientKey(bytes: resolved, ipv4Prefix: 32, ipv6Prefix: 128)?.description ?? peerAddress)
    }

    private func respond() {
        guard let req = request else { return }
        responding = true
        loop.inFlight += 1
        if let (problem, stage, note) = req.early {
            respondWithProblem(problem, requestID: req.requestID, decidedBy: stage, note: note)
            return
        }
        if let builtin = req.builtin {
            answerBuiltin(builtin, req: req)
            return
        }
        guard let route = req.route else { return }
        switch route.config.target {
        case .file(_, let contentType):
            let head = ResponseEncoder.Head(status: 200, contentType: contentType, cacheControl: route.config.response.cacheControl,
                                            isPage: true, requestID: req.requestID, keepAlive: req.keepAlive, secure: req.secure)
            var buffer = context!.channel.allocator.buffer(capacity: 512 + (loop.state.files[route.name]?.readableBytes ?? 0))
            ResponseEncoder.write(head, body: loop.state.files[route.name], into: &buffer)
            finishResponse(buffer, status: 200, decision: "pass", decidedBy: nil)
        case .upstream:
            let headers = req.head.headers
            let (clientKey, clientAddress) = resolveClient(headers)
            req.client = clientAddress
            req.view = RequestView(method: req.head.method.rawValue, path: req.path, query: req.query, fields: headers,
                                   body: req.body.map { Array($0.readableBytesView) } ?? [],
                                   clientAddress: clientAddress, pathParams: req.pathParams,
                                   clientKey: clientKey, now: Int64(NIODeadline.now().uptimeNanoseconds),
                                   wallMillis: NIODeadline.wallClockMillis)
            if let cors = route.config.cors, let origin = headers.first(name: "origin") {
                if !cors.allows(origin: origin), route.config.shadowStages.contains(.cors) {
                    req.view!.responseHeaders = cors.grantAsAsked(origin: origin)
                    req.view!.shadowed.append("cors:cors")
                } else {
                    req.view!.responseHeaders = cors.responseHeaders(origin: origin)
                }
            }
            runChain(route: route, from: 0)
        }
    }

    /// Stages whose problems are failures rather than refusals of the client (not counted as refusals).
    static let notRefusals: Set<String> = ["http", "routing", "upstream", "internal", "ledger", "shutdown"]

    /// Answers with `problem`; a refusal is counted by the stage that made it (`decidedBy`: a policy
    /// name, `budget`, `body_limit`, `cors`, …) for `tollgate usage`.
    func respondWithProblem(_ problem: Problem, requestID: String, decidedBy: String, note: String? = nil,
                                    forceClose: Bool = false, upstreamStatus: Int? = nil, upstreamMicros: Int64? = nil) {
        guard let context else { return }
        if !responding {
            responding = true
            loop.inFlight += 1
        }
        if forceClose { request?.keepAlive = false }
        var problem = problem
        if let extra = request?.view?.responseHeaders, !extra.isEmpty {
            problem.headers += extra.filter { name, _ in !problem.headers.contains { $0.0 == name } }
        }
        if let req = request, let route = req.route, route.rateLimits != nil, !problem.headers.contains(where: { $0.0 == "RateLimit" }) {
            problem.headers += route.limitHeaders(req.view ?? limitView(req))
        }
        if !Self.notRefusals.contains(decidedBy) {
            let reason = decidedBy == "budget" && problem.code == "paused" ? "paused" : decidedBy
            loop.state.ledger.countRefusal(route: request?.route?.name ?? "-", client: request?.client ?? peerAddress,
                                           reason: reason, day: loop.today())
        }
        var buffer = context.channel.allocator.buffer(capacity: 1024)
        ResponseEncoder.writeProblem(problem, requestID: requestID, keepAlive: request?.keepAlive ?? false,
                                     secure: request?.secure ?? secureListener, into: &buffer, allocator: context.channel.allocator)
        finishResponse(buffer, status: problem.status, decision: "reject", decidedBy: decidedBy, note: note,
                       upstreamStatus: upstreamStatus, upstreamMicros: upstreamMicros, requestID: requestID)
    }

    /// What limits need to look up their buckets, for a request refused before its view was built
    /// (a body over the limit).
    private func limitView(_ req: InboundRequest) -> RequestView {
        let (key, address) = resolveClient(req.head.headers)
        return RequestView(method: req.head.method.rawValue, path: req.path, query: req.query, fields: req.head.headers,
                           clientAddress: address, clientKey: key, now: Int64(NIODeadline.now().uptimeNanoseconds),
                           wallMillis: NIODeadline.wallClockMillis)
    }

    /// Writes a complete response, logs it, and moves on to the next pipelined request (or closes).
    func finishResponse(_ buffer: ByteBuffer, status: Int, decision: String, decidedBy: String?, note: String? = nil,
                                upstreamStatus: Int? = nil, upstreamMicros: Int64? = nil, requestID: String? = nil) {
        guard let context else { return }
        let req = request
        let keepAlive = (req?.keepAlive ?? false) && !loop.draining
        request = nil
        responding = false
        loop.inFlight -= 1
        loop.responses[min(5, max(1, status / 100))] += 1

        if let req {
            if let view = req.view {
                req.route?.completed(view, status: status)
                for shadowed in view.shadowed {
                    let policy = shadowed.prefix { $0 != ":" }
                    loop.state.ledger.countRefusal(route: req.route?.name ?? "-", client: req.client ?? peerAddress,
                                                   reason: "shadow:" + policy, day: loop.today())
                }
            }
            if loop.state.accessLog.isEnabled { loop.state.accessLog.write(AccessRecord(
                requestID: requestID ?? req.requestID, route: req.route?.name, method: req.head.method.rawValue,
                path: String(req.path), status: status, latencyMicros: (NIODeadline.now() - req.started).nanoseconds / 1000,
                client: req.client ?? peerAddress, decision: decision, decidedBy: decidedBy, upstreamStatus: upstreamStatus,
                upstreamLatencyMicros: upstreamMicros,
                note: [note, req.view.flatMap { $0.shadowed.isEmpty ? nil : "shadow " + $0.shadowed.joined(separator: ",") }]
                    .compactMap { $0 }.joined(separator: "; ").nilIfEmpty)) }
        }

        // Shutting down: the next pipelined request, if the client already sent one, still gets an
        // answer (503, then the connection closes) rather than being dropped unanswered.
        let answerQueued = loop.draining && req?.keepAlive == true && !queued.isEmpty
        if !keepAlive && !answerQueued {
            closeAfterWriting(buffer, context: context)
            return
        }
        context.writeAndFlush(NIOAny(buffer), promise: nil)
        processQueued()
        if !responding {
            armIdleTimer()
            if readHeld {
                readHeld = false
                context.read()
            }
        }
    }

    /// Writes the last response, then closes gracefully: output first, then, after the client has
    /// had time to read the response (or closes itself), the whole connection. Closing at once while
    /// unread request bytes remain (an over-limit body) would make the kernel send a reset that can
    /// destroy the response before the client reads it.
    private func closeAfterWriting(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        closing = true
        queued.removeAll()
        idleTimer?.cancel()
        let channel = context.channel
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in
            channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }  // e.g. under TLS
            channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    private func processQueued() {
        guard !drainingQueue else { return }
        drainingQueue = true
        while !responding, !closing, let part = queued.popFirst() {
            handle(part)
        }
        drainingQueue = false
    }

    /// Notes activity and makes sure one idle timer is pending. When it fires it closes the
    /// connection if nothing happened for `idle_timeout` (no request started, none in progress),
    /// else re-arms itself for the remaining time.
    private func armIdleTimer() {
        lastActivity = .now()
        guard idleTimer == nil, let context else { return }
        scheduleIdleCheck(at: lastActivity + TimeAmount(loop.state.config.idleTimeout), on: context.eventLoop)
    }

    private func scheduleIdleCheck(at deadline: NIODeadline, on eventLoop: EventLoop) {
        idleTimer = eventLoop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            self.idleTimer = nil
            let timeout = TimeAmount(self.loop.state.config.idleTimeout)
            let due = self.lastActivity + timeout
            if self.responding {
                self.scheduleIdleCheck(at: .now() + timeout, on: eventLoop)
            } else if due > .now() {
                self.scheduleIdleCheck(at: due, on: eventLoop)
            } else {
                self.close()
            }
        }
    }

    private func close() {
        guard !closing else { return }
        closing = true
        context?.close(promise: nil)
    }
}

/// A request being received: its head, where it is going, and its body so far. A class: it is
/// handed along the request's whole life and must not be copied at each step.
final class InboundRequest {
    var head: HTTPRequestHead
    var requestID: String
    var started: NIODeadline
    var keepAlive = true
    var secure = false
    var path: Substring = ""
    var query: Substring = ""
    var route: Route?
    var pathParams: [(name: String, value: Substring)] = []
    /// An answer decided before the body is read (unknown route, wrong method, bad target).
    var early: (problem: Problem, stage: String, note: String?)?
    var maxBody = 64 * 1024
    var bodyBytes = 0
    var body: ByteBuffer?
    /// The client address as resolved (through trusted proxies), for the log.
    var client: String?
    /// What the policies saw and added; kept while the request waits (throttle) or is upstream.
    var view: RequestView?
    var delayTimer: Scheduled<Void>?
    /// Money reserved for the upstream call.
    var reservation: SpendReservation?
    /// Set while this request leads the fetch of a cache key.
    var cacheKey: String?
    /// A gateway endpoint (page token, browser snippet, CORS preflight) instead of a route.
    var builtin: BuiltinEndpoint?

    init(head: HTTPRequestHead, requestID: String, started: NIODeadline) {
        self.head = head
        self.requestID = requestID
        self.started = started
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
