import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import TollgateCore

/// Serves one HTTP/2 stream: one request, one response. Its HEADERS become the `HTTPRequestHead`
/// the gateway reads (``HTTP2Fields``), so a request takes exactly the path an HTTP/1.1 request
/// takes: ``RequestIntake``, ``RequestDispatch`` (route, policies, budget, upstream), and
/// ``ResponseDelivery`` (one log line, one count). The answer leaves as one HEADERS frame and at
/// most one DATA frame, the last of them ending the stream.
///
/// Invariants:
/// - Exactly one response per stream, unless the client resets the stream first; then an exchange
///   in progress is told (``ProxyExchange/ownerGone()``) and settles what it took.
/// - A body over the route's limit is answered with 413 and the stream is reset after the answer
///   (its remaining DATA is never read); other streams go on.
/// - A body must keep arriving at `min_body_rate` after `request_head_timeout` (408, stream reset).
/// - Answers that end the connection on HTTP/1.1 (a framing fault, a ban, a run of refusals) end
///   the HTTP/2 connection gracefully after this answer (GOAWAY).
final class HTTP2StreamHandler: ChannelInboundHandler, ExchangeOwner, SlowSenderOwner {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private enum State {
        case idle
        case receiving(InboundRequest)
        case answering(InboundRequest, ProxyExchange?)
        case done
    }

    private let connection: HTTP2Connection
    private var loop: LoopContext { connection.loop }
    private var context: ChannelHandlerContext?
    private var state = State.idle
    /// Answered before the whole request arrived: the stream is reset after the answer.
    private var answeredEarly = false
    private var slowSender: SlowSenderCheck?

    init(connection: HTTP2Connection) {
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        streamEnded()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        streamEnded()
        context.fireChannelInactive()
    }

    /// The stream is gone (answered, or reset by the client).
    private func streamEnded() {
        slowSender?.cancel()
        slowSender = nil
        if case .answering(_, let exchange) = state {
            loop.inFlight -= 1
            exchange?.ownerGone()
        }
        state = .done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let endStream: Bool
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            endStream = headers.endStream
            if case .idle = state {
                guard let head = HTTP2Fields.requestHead(headers.headers) else { return context.close(promise: nil) }
                begin(head)
            }  // else trailers: nothing in them is used
        case .data(let data):
            endStream = data.endStream
            if case .receiving(let req) = state, case .byteBuffer(let bytes) = data.data, bytes.readableBytes > 0 {
                receiveBody(bytes, for: req)
            }
        default:
            return
        }
        if endStream, case .receiving(let req) = state { answer(req) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .receiving(let req) = state, slowSender == nil {
            slowSender = SlowSenderCheck(stage: .body(since: context.eventLoop.now, request: req), owner: self,
                                         loop: context.eventLoop, config: loop.state.config)
        }
        context.fireChannelReadComplete()
    }

    var bodyBytesReceived: Int {
        if case .receiving(let req) = state { return req.bodyBytes }
        return 0
    }

    func tooSlow(_ stage: SlowSenderCheck.Stage) {
        slowSender = nil
        guard case .receiving(let req) = state else { return }
        respondEarly(req, .problem(.requestTimeout, requestID: req.requestID, by: .stage(.http),
                                   note: "request body slower than min_body_rate"))
    }

    // MARK: Requests

    private func begin(_ head: HTTPRequestHead) {
        let req = RequestIntake.begin(head, peer: connection.peer, secureListener: true, loop: loop)
        req.keepAlive = false
        req.overHTTP2 = true
        if let early = req.early, early.closeConnection { return respondEarly(req, early) }
        if let tooLarge = RequestDispatch.bodyTooLarge(req) { return respondEarly(req, tooLarge) }
        state = .receiving(req)
    }

    private func receiveBody(_ bytes: ByteBuffer, for req: InboundRequest) {
        req.bodyBytes += bytes.readableBytes
        if req.bodyBytes > req.maxBody {
            return respondEarly(req, .problem(.bodyTooLarge, requestID: req.requestID, by: .stage(.bodyLimit), note: "body over limit"))
        }
        guard req.early == nil else { return }
        var bytes = bytes
        if req.body == nil { req.body = bytes } else { req.body!.writeBuffer(&bytes) }
    }

    private func respondEarly(_ req: InboundRequest, _ response: Response) {
        slowSender?.cancel()
        slowSender = nil
        answeredEarly = true
        state = .answering(req, nil)
        loop.inFlight += 1
        deliver(response, for: req)
    }

    private func answer(_ req: InboundRequest) {
        slowSender?.cancel()
        slowSender = nil
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

    func exchange(_ exchange: ProxyExchange, answered response: Response) {
        guard case .answering(let req, let current) = state, current === exchange else { return }
        deliver(response, for: req)
    }

    // MARK: Writing

    /// Counts `response` in the connection's run of refusals and writes it, after the run's delay
    /// if it earned one.
    private func deliver(_ response: Response, for req: InboundRequest) {
        guard let context, case .answering(let current, _) = state, current === req else { return }
        guard let delay = connection.refusals.answerDelay(for: response, trustedProxy: connection.peer.isTrustedProxy, loop: loop) else {
            return write(response, for: req)
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            self?.write(response, for: req)
        }
    }

    private func write(_ response: Response, for req: InboundRequest) {
        guard let context, case .answering(let current, let exchange) = state, current === req else { return }
        loop.inFlight -= 1
        state = .done
        let refusedEnough = connection.refusals.closes(after: loop.state.config.closeAfterRefusals)
        if refusedEnough { loop.closedAfterRefusals += 1 }
        let endsConnection = refusedEnough || response.closeConnection
        let (fields, body) = ResponseDelivery.parts(response, for: req, from: exchange, loop: loop, allocator: context.channel.allocator)
        let sendsBody = body.map { $0.readableBytes > 0 } == true && req.head.method != .HEAD
        let headers = wrapOutboundOut(.headers(.init(headers: fields, endStream: !sendsBody)))
        let written: EventLoopFuture<Void>
        if sendsBody, let body {
            context.write(headers, promise: nil)
            written = context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))))
        } else {
            written = context.writeAndFlush(headers)
        }
        if answeredEarly {
            // The client may still be sending: reset the stream once the answer is out.
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
        if endsConnection { connection.closeGracefully() }
    }
}
