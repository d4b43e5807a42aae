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
    private var completion: ((Result<UpstreamResponse, UpstreamFailure>) -> Void)?

    init(endpoint: UpstreamEndpoint) {
        self.endpoint = endpoint
    }

    var isUsable: Bool { channel?.isActive == true && completion == nil }

    /// Sends `call`'s request; `completion` runs once, on this connection's event loop.
    func send(_ call: UpstreamCall, completion: @escaping (Result<UpstreamResponse, UpstreamFailure>) -> Void) {
        guard let channel else { return completion(.failure(.closedBeforeResponse)) }
        uses += 1
        parser = UpstreamResponseParser(maxBodyBytes: call.maxResponseBytes, requestWasHEAD: call.isHEAD,
                                        allocator: channel.allocator)
        self.completion = completion
        // No promise: a failed write surfaces as errorCaught or channelInactive, which fail the exchange.
        channel.writeAndFlush(call.request, promise: nil)
    }

    /// Closes the connection; an exchange in progress is dropped without calling its completion.
    func abort() {
        completion = nil
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
        let done = completion
        completion = nil
        parser = nil
        if case .success(let response) = result, !response.keepAlive {
            channel?.close(promise: nil)
        }
        done?(result)
    }

    private func fail(_ failure: UpstreamFailure) {
        guard completion != nil else { return }
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
