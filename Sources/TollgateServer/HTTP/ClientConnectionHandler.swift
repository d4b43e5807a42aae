import NIOCore
import NIOHTTP1
import TollgateCore

/// Serves one client connection: HTTP/1.1 keep-alive and pipelining, one request at a time in order.
///
/// Invariants:
/// - At most one request is being answered (`responding`); parts of later pipelined requests wait in
///   `queued`, and socket reads are held until the answer is written, so a client cannot make the
///   gateway buffer without bound.
/// - Every request gets exactly one response and one access-log line.
/// - A body over the route's limit is answered with 413 and the connection is closed (the rest of the
///   body is never read).
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let loop: LoopContext
    private let secureListener: Bool
    private var context: ChannelHandlerContext?
    private var peerAddress = "unknown"
    private var peerBytes: [UInt8] = []

    private var request: InboundRequest?
    private var responding = false
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var drainingQueue = false
    private var readHeld = false
    private var closing = false
    private var idleTimer: Scheduled<Void>?

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
        }
        loop.connections[ObjectIdentifier(self)] = self
        armIdleTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
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

    func read(context: ChannelHandlerContext) {
        if responding {
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
        idleTimer?.cancel()
        var id = head.headers.first(name: "x-request-id") ?? ""
        if !RequestIDGenerator.isAcceptable(id) { id = loop.requestIDs.next() }
        var req = InboundRequest(head: head, requestID: id, started: .now())
        req.keepAlive = head.isKeepAlive && !head.headers.contains(name: "upgrade") && !loop.draining
        req.secure = secureListener || (loop.state.isTrustedProxy(peerBytes)
            && head.headers.first(name: "x-forwarded-proto")?.lowercased() == "https")

        let uri = head.uri
        guard uri.hasPrefix("/") else {
            req.early = (.badRequest, "http", "request target is not origin-form")
            request = req
            return
        }
        let q = uri.firstIndex(of: "?")
        req.path = uri[..<(q ?? uri.endIndex)]
        req.query = q.map { uri[uri.index(after: $0)...] } ?? ""

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
        guard var req = request else { return }
        req.bodyBytes += bytes.readableBytes
        if req.bodyBytes > req.maxBody {
            request = req
            respondWithProblem(.bodyTooLarge, requestID: req.requestID, decidedBy: "body_limit", note: "body over limit", forceClose: true)
            return
        }
        if req.early == nil {
            if req.body == nil { req.body = bytes } else { req.body!.writeBuffer(&bytes) }
        }
        request = req
    }

    // MARK: Answering

    private func respond() {
        guard let req = request else { return }
        responding = true
        loop.inFlight += 1
        if let (problem, stage, note) = req.early {
            respondWithProblem(problem, requestID: req.requestID, decidedBy: stage, note: note)
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
        case .upstream(let upstream):
            var view = RequestView(method: req.head.method.rawValue, path: req.path, query: req.query,
                                   headers: req.head.headers.map { ($0.name, $0.value) },
                                   body: req.body.map { Array($0.readableBytesView) } ?? [],
                                   clientAddress: peerAddress, pathParams: req.pathParams)
            if let (policy, problem) = route.evaluate(&view) {
                respondWithProblem(problem, requestID: req.requestID, decidedBy: policy)
                return
            }
            callUpstream(route: route, upstream: upstream, view: view, req: req)
        }
    }

    private func callUpstream(route: Route, upstream: UpstreamConfig, view: RequestView, req: InboundRequest) {
        guard let template = route.template, let endpoint = loop.state.endpoints[route.name], let context else { return }
        let (head, body) = template.render(view, requestID: req.requestID)
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        let call = UpstreamCall(endpoint: endpoint, request: buffer, isHEAD: template.method == "HEAD",
                                retryable: template.method == "GET" || template.method == "HEAD",
                                timeout: TimeAmount(upstream.timeout), connectTimeout: TimeAmount(upstream.connectTimeout),
                                maxResponseBytes: upstream.maxResponseBytes)
        let sent = NIODeadline.now()
        loop.pool.execute(call) { [self] result in
            let upstreamMicros = (NIODeadline.now() - sent).nanoseconds / 1000
            self.upstreamAnswered(result, route: route, upstreamMicros: upstreamMicros)
        }
    }

    private func upstreamAnswered(_ result: Result<UpstreamResponse, UpstreamFailure>, route: Route, upstreamMicros: Int64) {
        guard let req = request, context != nil else { return }
        switch result {
        case .failure(let failure):
            let problem: Problem
            switch failure {
            case .timeout: problem = .upstreamTimeout
            case .connect: problem = .upstreamUnavailable
            default: problem = .upstreamFailed
            }
            respondWithProblem(problem, requestID: req.requestID, decidedBy: "upstream", note: failure.logNote,
                               upstreamMicros: upstreamMicros)
        case .success(let response):
            let outcome = UpstreamOutcome.classify(response, route: route.config, projection: route.projection)
            switch outcome {
            case .refuse(let problem, let note):
                respondWithProblem(problem, requestID: req.requestID, decidedBy: "upstream", note: note,
                                   upstreamStatus: response.status, upstreamMicros: upstreamMicros)
            case .relay(let status, let contentType, let body, let headers):
                let head = ResponseEncoder.Head(status: status, contentType: contentType, cacheControl: route.config.response.cacheControl,
                                                requestID: req.requestID, keepAlive: req.keepAlive, secure: req.secure, extraHeaders: headers)
                var buffer = context!.channel.allocator.buffer(capacity: 512 + body.readableBytes)
                ResponseEncoder.write(head, body: body, into: &buffer)
                finishResponse(buffer, status: status, decision: "pass", decidedBy: nil,
                               upstreamStatus: response.status, upstreamMicros: upstreamMicros)
            }
        }
    }

    private func respondWithProblem(_ problem: Problem, requestID: String, decidedBy: String, note: String? = nil,
                                    forceClose: Bool = false, upstreamStatus: Int? = nil, upstreamMicros: Int64? = nil) {
        guard let context else { return }
        if !responding {
            responding = true
            loop.inFlight += 1
        }
        if forceClose { request?.keepAlive = false }
        var buffer = context.channel.allocator.buffer(capacity: 1024)
        ResponseEncoder.writeProblem(problem, requestID: requestID, keepAlive: request?.keepAlive ?? false,
                                     secure: request?.secure ?? secureListener, into: &buffer, allocator: context.channel.allocator)
        finishResponse(buffer, status: problem.status, decision: "reject", decidedBy: decidedBy, note: note,
                       upstreamStatus: upstreamStatus, upstreamMicros: upstreamMicros, requestID: requestID)
    }

    /// Writes a complete response, logs it, and moves on to the next pipelined request (or closes).
    private func finishResponse(_ buffer: ByteBuffer, status: Int, decision: String, decidedBy: String?, note: String? = nil,
                                upstreamStatus: Int? = nil, upstreamMicros: Int64? = nil, requestID: String? = nil) {
        guard let context else { return }
        let req = request
        let keepAlive = (req?.keepAlive ?? false) && !loop.draining
        request = nil
        responding = false
        loop.inFlight -= 1

        if let req {
            loop.state.accessLog.write(AccessRecord(
                requestID: requestID ?? req.requestID, route: req.route?.name, method: req.head.method.rawValue,
                path: String(req.path), status: status, latencyMicros: (NIODeadline.now() - req.started).nanoseconds / 1000,
                client: peerAddress, decision: decision, decidedBy: decidedBy, upstreamStatus: upstreamStatus,
                upstreamLatencyMicros: upstreamMicros, note: note))
        }

        if !keepAlive {
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

    private func armIdleTimer() {
        idleTimer?.cancel()
        guard let context else { return }
        let timeout = TimeAmount(loop.state.config.idleTimeout)
        idleTimer = context.eventLoop.scheduleTask(in: timeout) { [weak self] in
            guard let self, !self.responding else { return }
            self.close()
        }
    }

    private func close() {
        guard !closing else { return }
        closing = true
        context?.close(promise: nil)
    }
}

/// A request being received: its head, where it is going, and its body so far.
struct InboundRequest {
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
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
