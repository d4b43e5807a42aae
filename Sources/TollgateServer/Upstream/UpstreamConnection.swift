import NIOCore
import TollgateUpstreamHTTP

/// One connection to an upstream, carrying one request at a time. Lives on one event loop.
final class UpstreamConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let endpoint: UpstreamEndpoint
    private(set) var channel: Channel?
    /// Called when the connection closes, so the pool can forget it.
    var onClose: ((UpstreamConnection) -> Void)?
    /// Requests already carried; more than zero means it came from the pool.
    private(set) var uses = 0

    private var parser: UpstreamResponseParser?
    /// The call in progress and the pool to tell when it ends (a method call, not a closure: no
    /// allocation per call).
    private var pending: (pool: UpstreamPool, exchange: UpstreamPool.Exchange)?

    init(endpoint: UpstreamEndpoint) {
        self.endpoint = endpoint
    }

    var isUsable: Bool { channel?.isActive == true && pending == nil }

    /// Sends `exchange`'s request; `pool.completed(_:on:_:)` runs once with its outcome, on this
    /// connection's event loop.
    func send(_ exchange: UpstreamPool.Exchange, for pool: UpstreamPool) {
        guard let channel else { return pool.completed(exchange, on: self, .failure(.closedBeforeResponse)) }
        let call = exchange.call
        uses += 1
        parser = UpstreamResponseParser(maxBodyBytes: call.maxResponseBytes, requestWasHEAD: call.isHEAD)
        pending = (pool, exchange)
        // No promise: a failed write surfaces as errorCaught or channelInactive, which fail the exchange.
        channel.writeAndFlush(call.request, promise: nil)
    }

    /// Closes the connection; an exchange in progress is dropped without telling the pool.
    func abort() {
        pending = nil
        parser = nil
        channel?.close(promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        channel = context.channel
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard parser != nil else {
            // Bytes nobody asked for: the connection cannot be trusted any more.
            context.close(promise: nil)
            return
        }
        do {
            if let response = try parser!.feed(&bytes) {
                finish(.success(response))
            }
        } catch {
            fail(Self.failure(error))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if parser != nil {
            do {
                let response = try parser!.finish()
                finish(.success(response))
            } catch {
                fail(parser!.receivedAnything ? Self.failure(error) : .closedBeforeResponse)
            }
        }
        onClose?(self)
        onClose = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if parser != nil {
            fail(parser!.receivedAnything ? .invalidResponse("\(error)") : .closedBeforeResponse)
        }
        context.close(promise: nil)
    }

    private func finish(_ result: Result<UpstreamResponse, UpstreamFailure>) {
        let done = pending
        pending = nil
        parser = nil
        if case .success(let response) = result, !response.keepAlive {
            channel?.close(promise: nil)
        }
        if let done { done.pool.completed(done.exchange, on: self, result) }
    }

    private func fail(_ failure: UpstreamFailure) {
        guard pending != nil else { return }
        channel?.close(promise: nil)
        finish(.failure(failure))
    }

    private static func failure(_ error: UpstreamResponseParser.Failure) -> UpstreamFailure {
        switch error {
        case .bodyTooLarge: .responseTooLarge
        case .headTooLarge: .invalidResponse("head too large")
        case .malformed(let why): .invalidResponse(why)
        case .unexpectedEnd: .invalidResponse("connection closed mid-response")
        }
    }
}
