import NIOCore
import NIOHTTP2
import TollgateCore

/// One HTTP/2 client connection, last in its channel's pipeline (after `NIOHTTP2Handler` and the
/// connection manager): what its streams share, and how shutdown reaches it.
///
/// - The client's run of refusals (``RefusalStreak``) is the connection's, not a stream's: a client
///   cannot restart its run by opening a new stream. A run that reaches `close_after_refusals`, a
///   ban, or a framing fault ends the connection gracefully (``closeGracefully()``).
/// - Closing is always graceful first: GOAWAY, the streams already open are answered, then the
///   connection closes (the connection manager does this; `shutdown_grace` bounds it).
/// - Bound to its channel's event loop.
final class HTTP2Connection: ChannelInboundHandler, ClientConnection {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    let loop: LoopContext
    let peer: Peer
    var refusals = RefusalStreak()
    private var context: ChannelHandlerContext?
    private var closing = false

    init(loop: LoopContext, peer: Peer) {
        self.loop = loop
        self.peer = peer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loop.connections[ObjectIdentifier(self)] = self
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        loop.connections[ObjectIdentifier(self)] = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        loop.connections[ObjectIdentifier(self)] = nil
        context.fireChannelInactive()
    }

    /// A connection error (a flood bound, a framing or HPACK fault): `NIOHTTP2Handler` has sent
    /// GOAWAY with the error's code; the connection closes. Stream errors reset only their stream
    /// and do not reach this handler.
    /// Logged at `info` with the error's kind (the client's address, no request data), except the
    /// one a graceful close (shutdown, idle, a refusal run) ends with: once the gateway's GOAWAY was
    /// sent and no stream is open, NIO treats the client's answer to the close's PING as I/O on a
    /// closed connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !(error is NIOHTTP2Errors.IOOnClosedConnection) {
            loop.state.logger.info("HTTP/2 connection ended by a protocol error", metadata: [
                "client": "\(peer.address)", "error": "\(type(of: error))"])
        }
        context.close(promise: nil)
    }

    /// Sends GOAWAY; the streams already open are answered, then the connection closes. Done on
    /// the loop's next turn: asked for from inside a stream's answer, the GOAWAY would otherwise
    /// overtake that answer's frames still on their way through the multiplexer.
    func closeGracefully() {
        guard !closing, let context else { return }
        closing = true
        let pipeline = context.pipeline
        context.eventLoop.assumeIsolated().execute {
            pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    func drain() { closeGracefully() }

    func forceClose() { context?.close(promise: nil) }
}
