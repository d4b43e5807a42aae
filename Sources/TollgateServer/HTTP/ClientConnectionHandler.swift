import NIOCore
import NIOHTTP1
import TollgateCore
import TollgateRequestHTTP

/// Serves one client connection: HTTP/1.1 keep-alive and pipelining, one request at a time, in
/// order. It decodes the connection's bytes itself (``RequestDecoder``: no decoder handler in
/// front of it, one pipeline step per read). Connection mechanics only — what a request is
/// answered with is decided by ``RequestIntake``, ``BuiltinEndpoint`` and ``ProxyExchange``;
/// ``ResponseDelivery`` writes it.
///
/// Invariants:
/// - Every request gets exactly one response, in the order the requests arrived; a parse error is
///   answered in its place in that order too (after the responses to the requests before it).
/// - At most one request is being answered (`.answering`); whatever arrives meanwhile waits in
///   `queued`, and once anything waits there socket reads are held until the answer is written, so
///   a client cannot make the gateway buffer more than one read cycle (`maxMessagesPerRead` reads).
/// - A body over the route's limit is answered with 413 and the connection is closed after the
///   response (the rest of the body is never read); so is unparseable input.
/// - Shutdown (``drain()``) closes an idle connection at once and any other after its current
///   response; ``forceClose()`` closes whatever the state.
/// - Slow senders are closed with a 408: a head that has begun must be complete within
///   `request_head_timeout`, and a body must keep arriving at `min_body_rate` after that grace
///   (``SlowSenderCheck``). The check is armed only when a read cycle ends with a head or body
///   still incomplete, so requests that arrive whole cost no timer.
final class ClientConnectionHandler: ChannelDuplexHandler, ExchangeOwner, SlowSenderOwner, ClientConnection, IdleWatched {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// Between requests.
        case idle
        /// A head arrived; its body is arriving.
        case receiving(InboundRequest)
        /// The request is complete (or answered early) and its response is being made.
        case answering(InboundRequest, ProxyExchange?)
        /// Closing: nothing more is read or answered.
        case closing
    }

    /// What arrived while a request was being answered: a request part, or a parse error.
    private enum Inbound {
        case part(HTTPServerRequestPart)
        case failed(RequestDecoder.Failure)
    }

    let loop: LoopContext
    let secureListener: Bool
    private var context: ChannelHandlerContext?
    private var peer = Peer.unknown
    private var state = State.idle
    private var decoder = RequestDecoder()
    private var queued = CircularBuffer<Inbound>()
    private var drainingQueue = false
    /// Refusals of this client in a row on this connection: slowed down, then closed.
    private var refusals = RefusalStreak()
    private var readHeld = false
    /// Closes the connection after `idle_timeout` without a request; a request starting and a
    /// response written count as activity.
    var idleWatch = IdleWatch()
    /// Whether the current read cycle delivered any request part, and whether it carried request
    /// bytes at all: bytes without a part are a partial head.
    private var partThisRead = false
    private var bytesThisRead = false
    /// The slow-sender check while a head or body is incomplete across read cycles.
    private var slowSender: SlowSenderCheck?

    /// `peer` is the TCP peer as the accept path resolved it; when not given (tests), it is read
    /// when the channel becomes active.
    init(loop: LoopContext, secureListener: Bool, peer: Peer? = nil) {
        self.loop = loop
        self.secureListener = secureListener
        if let peer { self.peer = peer }
    }

    /// The exchange whose answer is awaited, if any.
    var currentExchange: ProxyExchange? {
        if case .answering(_, let exchange) = state { return exchange }
        return nil
    }

    /// The state's name, for tests and debugging.
    var stateName: String {
        switch state {
        case .idle: "idle"
        case .receiving: "receiving"
        case .answering: "answering"
        case .closing: "closing"
        }
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loop.connections[ObjectIdentifier(self)] = self
        if context.channel.isActive, peer.address == Peer.unknown.address { peer = Peer(context.channel.remoteAddress, state: loop.state) }
        IdleWatch.touch(self, on: context.eventLoop)
    }

    func channelActive(context: ChannelHandlerContext) {
        if peer.address == Peer.unknown.address { peer = Peer(context.channel.remoteAddress, state: loop.state) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionEnded()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        connectionEnded()
        self.context = nil
    }

    /// The client is gone: an exchange in progress is told (it settles what it took, answers nobody).
    private func connectionEnded() {
        idleWatch.cancel()
        slowSender?.cancel()
        slowSender = nil
        loop.connections[ObjectIdentifier(self)] = nil
        if case .answering(_, let exchange) = state {
            loop.inFlight -= 1
            exchange?.ownerGone()
        }
        state = .closing
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesThisRead = true
        if case .closing = state { return }
        do {
            try decoder.feed(unwrapInboundIn(data)) { part in received(.part(part)) }
        } catch {
            received(.failed(error))
        }
    }

    /// A decoded part or a parse error: handled now, or queued behind the request being answered.
    private func received(_ inbound: Inbound) {
        partThisRead = true
        switch state {
        case .closing: return
        case .answering: queued.append(inbound)
        case .idle, .receiving:
            if drainingQueue { queued.append(inbound) } else { process(inbound) }
        }
    }

    private func process(_ inbound: Inbound) {
        switch inbound {
        case .part(let part): handle(part)
        case .failed(let failure): fail(failure)
        }
    }

    /// A read cycle ended: if it left a head or a body incomplete, make sure a slow-sender check runs.
    func channelReadComplete(context: ChannelHandlerContext) {
        defer { partThisRead = false; bytesThisRead = false }
        switch state {
        case .idle where bytesThisRead && !partThisRead && queued.isEmpty && slowSender == nil:
            slowSender = SlowSenderCheck(stage: .head(since: context.eventLoop.now), owner: self, loop: context.eventLoop,
                                         config: loop.state.config)
        case .receiving(let req) where slowSender == nil || slowSender?.isHead == true:
            slowSender?.cancel()
            slowSender = SlowSenderCheck(stage: .body(since: context.eventLoop.now, request: req), owner: self, loop: context.eventLoop,
                                         config: loop.state.config)
        default:
            break
        }
        context.fireChannelReadComplete()
    }

    /// The slow-sender check's verdict: the head or body did not arrive in time.
    func tooSlow(_ stage: SlowSenderCheck.Stage) {
        slowSender = nil
        let req: InboundRequest
        switch (stage, state) {
        case (.body, .receiving(let current)):
            req = current
        case (.head, .idle):
            req = unparsedRequest()
        default:
            return
        }
        respondEarly(req, .problem(.requestTimeout, requestID: req.requestID, by: .stage(.http),
                                   note: stage.isHead ? "request head not complete in time" : "request body slower than min_body_rate"))
    }

    /// The check's view of the body received so far.
    var bodyBytesReceived: Int {
        if case .receiving(let req) = state { return req.bodyBytes }
        return 0
    }

    /// Reads are held only while pipelined input is already waiting: holding them for every
    /// request in flight would cost two `epoll_ctl` calls per request.
    func read(context: ChannelHandlerContext) {
        if case .answering = state, !queued.isEmpty {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// An error from below (TLS, the socket): nothing can be answered on this connection any more.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close()
    }

    /// Shutdown: close now if idle, else after the response in progress.
    func drain() {
        if case .idle = state, queued.isEmpty { close() }
    }

    /// Shutdown deadline passed: close whatever the state.
    func forceClose() {
        close()
    }

    // MARK: Requests

    private func handle(_ part: HTTPServerRequestPart) {
        switch (part, state) {
        case (.head(let head), .idle):
            begin(head)
        case (.body(var bytes), .receiving(let req)):
            receiveBody(&bytes, for: req)
        case (.end, .receiving(let req)):
            answer(req)
        default:
            break  // parts of a request already answered early (its body is not read)
        }
    }

    private func begin(_ head: HTTPRequestHead) {
        let now = context.map { IdleWatch.touch(self, on: $0.eventLoop) } ?? .now()
        if slowSender?.isHead == true { slowSender?.cancel(); slowSender = nil }
        let req = RequestIntake.begin(head, peer: peer, secureListener: secureListener, loop: loop, at: now)
        if let early = req.early, early.closeConnection {
            respondEarly(req, early)  // faulty framing: nothing after this head can be trusted
            return
        }
        if let tooLarge = RequestDispatch.bodyTooLarge(req) {
            respondEarly(req, tooLarge)
            return
        }
        if req.early == nil, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            context?.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
        }
        state = .receiving(req)
    }

    private func receiveBody(_ bytes: inout ByteBuffer, for req: InboundRequest) {
        req.bodyBytes += bytes.readableBytes
        if req.bodyBytes > req.maxBody {
            respondEarly(req, .problem(.bodyTooLarge, requestID: req.requestID, by: .stage(.bodyLimit), note: "body over limit"))
            return
        }
        if req.early == nil {
            if req.body == nil { req.body = bytes } else { req.body!.writeBuffer(&bytes) }
        }
    }

    /// Answers before the request is complete; the connection closes after the response, so the
    /// rest of the request is never read.
    private func respondEarly(_ req: InboundRequest, _ response: Response) {
        var response = response
        response.closeConnection = true
        state = .answering(req, nil)
        loop.inFlight += 1
        deliver(response, for: req)
    }

    /// The request is complete: answer it.
    private func answer(_ req: InboundRequest) {
        if slowSender != nil { slowSender?.cancel(); slowSender = nil }
        loop.inFlight += 1
        switch RequestDispatch.answer(req, loop: loop, owner: self) {
        case .now(let response):
            state = .answering(req, nil)
            deliver(response, for: req)
        case .exchange(let exchange):
            state = .answering(req, exchange)
            exchange.start()
        }
    }

    func exchange(_ exchange: ProxyExchange, answered response: consuming Response) {
        guard case .answering(let req, let current) = state, current === exchange else { return }
        deliver(consume response, for: req)
    }

    /// Unparseable input: a 400 (431 for an oversized head), then the connection closes.
    private func fail(_ failure: RequestDecoder.Failure) {
        let req: InboundRequest
        if case .receiving(let current) = state {
            req = current
        } else {
            req = unparsedRequest()
        }
        let problem: Problem = failure == .headTooLarge ? .headersTooLarge : .badRequest
        respondEarly(req, .problem(problem, requestID: req.requestID, by: .stage(.http), note: "parse error: \(failure)"))
    }

    /// What a 400/408/431 answers when no head could be read: method `-`, no target, a new id.
    private func unparsedRequest() -> InboundRequest {
        let head = HTTPRequestHead(version: .http1_1, method: .RAW(value: "-"), uri: "")
        return InboundRequest(head: head, state: loop.state, requestID: loop.requestIDs.next(),
                              client: peer.client(head.headers, identity: loop.state.config.clientIdentity),
                              keepAlive: false, secure: secureListener)
    }

    // MARK: Writing

    /// Counts `response` in the connection's run of refusals and writes it — after the run's delay,
    /// if it earned one (``RefusalStreak``); the request stays the one being answered meanwhile, so
    /// nothing more is read or answered on this connection.
    private func deliver(_ response: consuming Response, for req: InboundRequest) {
        guard let context, case .answering(let current, _) = state, current === req else { return }
        guard let delay = refusals.answerDelay(for: response, trustedProxy: peer.isTrustedProxy, loop: loop) else {
            return write(consume response, for: req)
        }
        let delayed = consume response  // handed to the timer (an escaping closure cannot consume a parameter)
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            self?.write(delayed, for: req)
        }
    }

    /// Writes `response` to `req`, then moves on to the next pipelined request (or closes).
    private func write(_ response: consuming Response, for req: InboundRequest) {
        guard let context, case .answering(let current, let exchange) = state, current === req else { return }
        loop.inFlight -= 1
        let refusedEnough = refusals.closes(after: loop.state.config.closeAfterRefusals)
        if refusedEnough { loop.closedAfterRefusals += 1 }
        let closes = response.closeConnection
        let keepAlive = req.keepAlive && !closes && !loop.draining && !refusedEnough
        let buffer = ResponseDelivery.render(consume response, for: req, from: exchange, keepAlive: keepAlive, loop: loop,
                                             allocator: context.channel.allocator)
        state = .idle
        // Shutting down: the next pipelined request, if the client already sent one, still gets an
        // answer (503, then the connection closes) rather than being dropped unanswered.
        let answerQueued = loop.draining && req.keepAlive && !closes && !refusedEnough && !queued.isEmpty
        if !keepAlive && !answerQueued {
            closeAfterWriting(buffer, context: context)
            return
        }
        context.writeAndFlush(NIOAny(buffer), promise: nil)
        loop.responseBuffers.give(buffer)
        processQueued()
        if case .idle = state {
            IdleWatch.touch(self, on: context.eventLoop)
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
        state = .closing
        queued.removeAll()
        idleWatch.cancel()
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

    /// Handles what waited while the last request was answered, until a request is being
    /// answered again.
    private func processQueued() {
        guard !drainingQueue else { return }
        drainingQueue = true
        defer { drainingQueue = false }
        while let next = queued.first {
            switch state {
            case .answering, .closing: return
            case .idle, .receiving: break
            }
            queued.removeFirst()
            process(next)
        }
    }

    // MARK: Idle connections

    var idleStatus: IdleWatch.Status {
        switch state {
        case .closing: .closing
        case .answering: .busy
        case .idle, .receiving: .idle
        }
    }

    var idleTimeout: TimeAmount { TimeAmount(loop.state.config.idleTimeout) }

    func closeIdle() { close() }

    private func close() {
        if case .closing = state { return }
        if case .answering(_, let exchange) = state {
            loop.inFlight -= 1
            exchange?.ownerGone()
        }
        state = .closing
        context?.close(promise: nil)
    }
}
