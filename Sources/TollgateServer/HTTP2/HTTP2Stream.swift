import NIOCore
import NIOHTTP1
import NIOHTTP2
import TollgateCore

/// One HTTP/2 stream: one request, one response. Not a channel: its connection
/// (``HTTP2Connection``) hands it its frames and writes its answer. Its HEADERS become the
/// `HTTPRequestHead` the gateway reads (``HTTP2Fields``), so a request takes exactly the path an
/// HTTP/1.1 request takes: ``RequestIntake``, ``RequestDispatch`` (route, policies, budget,
/// upstream), and ``ResponseDelivery`` (one log line, one count). The answer leaves as one HEADERS
/// frame and at most one DATA frame, the last of them ending the stream.
///
/// Invariants:
/// - Exactly one response per stream, unless the stream closes first (the client reset it, or the
///   connection ended); then an exchange in progress is told (``ProxyExchange/ownerGone()``) and
///   settles what it took, and nothing is written.
/// - A complete request is answered when the read that completed it has been handled
///   (``HTTP2Connection`` calls ``answer()`` then): a stream opened and reset in the same read never
///   reaches the policies or the upstream.
/// - A body over the route's limit is answered with 413 and the stream is reset (RST_STREAM
///   NO_ERROR, RFC 9113 §8.1) once the answer is written; other streams go on.
/// - A body must keep arriving at `min_body_rate` after `request_head_timeout` (408, reset the same).
/// - Answers that end the connection on HTTP/1.1 (a framing fault, a ban, a run of refusals) end
///   the HTTP/2 connection gracefully after this answer (GOAWAY).
/// - Bound to its connection's event loop.
final class HTTP2Stream: ExchangeOwner, SlowSenderOwner {
    private enum State {
        /// Created; its HEADERS not yet read.
        case idle
        /// The request's body is still arriving.
        case receiving(InboundRequest)
        /// The request is whole; it is answered at the end of the read.
        case complete(InboundRequest)
        case answering(InboundRequest, ProxyExchange?)
        case done
    }

    let id: HTTP2StreamID
    private let connection: HTTP2Connection
    private var loop: LoopContext { connection.loop }
    private var state = State.idle
    /// Answered before the whole request arrived: the stream is reset after the answer.
    private var answeredEarly = false
    private var slowSender: SlowSenderCheck?

    init(id: HTTP2StreamID, connection: HTTP2Connection) {
        self.id = id
        self.connection = connection
    }

    /// The stream's first HEADERS frame carried `head`; `ended` when that frame ended the stream.
    /// Called once the connection holds the stream: an early answer may close it at once.
    func begin(_ head: HTTPRequestHead, ended: Bool) {
        let req = RequestIntake.begin(head, peer: connection.peer, secureListener: true, loop: loop)
        req.keepAlive = false
        req.overHTTP2 = true
        state = .receiving(req)
        if let early = req.early, early.closeConnection { return respondEarly(req, early) }
        if let tooLarge = RequestDispatch.bodyTooLarge(req) { return respondEarly(req, tooLarge) }
        if ended {
            state = .complete(req)
        } else {
            slowSender = SlowSenderCheck(stage: .body(since: loop.eventLoop.now, request: req), owner: self,
                                         loop: loop.eventLoop, config: loop.state.config)
        }
    }

    /// Whether the request is receiving its body (its flow-control window is worth refilling).
    var isReceiving: Bool {
        if case .receiving = state { true } else { false }
    }

    /// Whether the request is whole and waits for ``answer()``.
    var isComplete: Bool {
        if case .complete = state { true } else { false }
    }

    /// A DATA frame's bytes, or (`bytes` nil) trailers: nothing in them is used.
    func receive(_ bytes: ByteBuffer?, ended: Bool) {
        guard case .receiving(let req) = state else { return }
        if let bytes, bytes.readableBytes > 0 {
            req.bodyBytes += bytes.readableBytes
            if req.bodyBytes > req.maxBody {
                return respondEarly(req, .problem(.bodyTooLarge, requestID: req.requestID, by: .stage(.bodyLimit), note: "body over limit"))
            }
            if req.early == nil {
                var bytes = bytes
                if req.body == nil { req.body = bytes } else { req.body!.writeBuffer(&bytes) }
            }
        }
        if ended {
            cancelSlowSender()
            state = .complete(req)
        }
    }

    /// The stream closed (answered and flushed, reset by the client, or the connection ended).
    func closed() {
        cancelSlowSender()
        if case .answering(_, let exchange) = state {
            loop.inFlight -= 1
            exchange?.ownerGone()
        }
        state = .done
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

    private func cancelSlowSender() {
        slowSender?.cancel()
        slowSender = nil
    }

    // MARK: Answering

    private func respondEarly(_ req: InboundRequest, _ response: Response) {
        cancelSlowSender()
        answeredEarly = true
        state = .answering(req, nil)
        loop.inFlight += 1
        deliver(response, for: req)
    }

    /// Answers the whole request: at once, or through its exchange.
    func answer() {
        guard case .complete(let req) = state else { return }
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

    /// Counts `response` in the connection's run of refusals and writes it, after the run's delay
    /// if it earned one.
    private func deliver(_ response: consuming Response, for req: InboundRequest) {
        guard let delay = connection.refusals.answerDelay(for: response, trustedProxy: connection.peer.isTrustedProxy, loop: loop) else {
            return write(consume response, for: req)
        }
        let delayed = consume response  // handed to the timer (an escaping closure cannot consume a parameter)
        loop.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            self?.write(delayed, for: req)
        }
    }

    private func write(_ response: consuming Response, for req: InboundRequest) {
        guard case .answering(let current, let exchange) = state, current === req else { return }
        loop.inFlight -= 1
        state = .done
        let refusedEnough = connection.refusals.closes(after: loop.state.config.closeAfterRefusals)
        if refusedEnough { loop.closedAfterRefusals += 1 }
        let closes = response.closeConnection
        let (fields, body) = ResponseDelivery.parts(consume response, for: req, from: exchange, loop: loop, allocator: connection.allocator,
                                                    firstOnConnection: !connection.answeredBefore)
        connection.answeredBefore = true
        let sendsBody = body.map { $0.readableBytes > 0 } == true && req.head.method != .HEAD
        connection.write(.headers(.init(headers: fields, endStream: !sendsBody)), on: id, flush: !sendsBody, reset: answeredEarly && !sendsBody)
        if sendsBody, let body {
            connection.write(.data(.init(data: .byteBuffer(body), endStream: true)), on: id, flush: true, reset: answeredEarly)
        }
        if refusedEnough || closes { connection.closeGracefully() }
    }
}
