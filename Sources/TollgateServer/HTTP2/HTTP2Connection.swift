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

    /// An error `NIOHTTP2Handler` reports. A connection error (a flood bound, a framing or HPACK
    /// fault; GOAWAY already sent) or a transport error closes the connection; a stream error
    /// (``endsConnection(_:)`` false: that stream was reset) does not. Connection errors are logged
    /// at `info` with their kind and the client's address, no request data — except the one a
    /// graceful close (shutdown, idle, a refusal run) ends with: once the gateway's GOAWAY was sent
    /// and no stream is open, NIO counts the client's answer to the close's PING as I/O on a closed
    /// connection. Transport errors (a reset socket, TLS) close without a line, as on HTTP/1.1.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard Self.endsConnection(error) else { return }  // that stream was reset; too many in a row escalate
        if error is any NIOHTTP2Error, !(error is NIOHTTP2Errors.IOOnClosedConnection) {
            loop.state.logger.info("HTTP/2 connection ended by a protocol error", metadata: [
                "client": "\(peer.address)", "error": "\(type(of: error))"])
        }
        context.close(promise: nil)
    }

    /// Whether `error`, as `NIOHTTP2Handler` reports it, was a connection error (GOAWAY sent) rather
    /// than a stream error (that stream reset, reported the same way, unwrapped): a malformed header
    /// block or a `content-length` that does not match the DATA. More than 200 stream errors in
    /// 30 s become a connection error (`ExcessiveStreamErrors`).
    static func endsConnection(_ error: any Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.StreamError, is NIOHTTP2Errors.ForbiddenHeaderField, is NIOHTTP2Errors.MissingPseudoHeader,
             is NIOHTTP2Errors.DuplicatePseudoHeader, is NIOHTTP2Errors.PseudoHeaderAfterRegularHeader,
             is NIOHTTP2Errors.UnknownPseudoHeader, is NIOHTTP2Errors.UnsupportedPseudoHeader, is NIOHTTP2Errors.InvalidPseudoHeaders,
             is NIOHTTP2Errors.MissingHostHeader, is NIOHTTP2Errors.DuplicateHostHeader, is NIOHTTP2Errors.EmptyPathHeader,
             is NIOHTTP2Errors.InvalidPseudoHeaderValue, is NIOHTTP2Errors.TrailersWithoutEndStream,
             is NIOHTTP2Errors.InvalidHTTP2HeaderFieldName, is NIOHTTP2Errors.InvalidHTTP2HeaderFieldValue,
             is NIOHTTP2Errors.ContentLengthViolated, is NIOHTTP2Errors.ContentLengthHeadersMismatch,
             is NIOHTTP2Errors.ContentLengthHeaderNegative, is NIOHTTP2Errors.ContentLengthHeaderMalformedValue:
            false
        default:
            true
        }
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
