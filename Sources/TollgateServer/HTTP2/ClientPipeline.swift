import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS
import TollgateCore

/// The handlers of a client connection, by protocol. Over TLS the protocol is what ALPN chose:
/// `h2` when `tls.http2` offers it, else HTTP/1.1 (also when the client names none).
enum ClientPipeline {
    /// TLS, then the protocol ALPN chooses. The handshake and the choice must be done within
    /// `request_head_timeout`, or the connection is closed (no protocol handler is there yet to
    /// time it out). A connection that closes first cancels the deadline, which would otherwise
    /// keep the channel alive until it fired.
    static func secure(_ channel: any Channel, context tls: NIOSSLContext, loop: LoopContext, peer: Peer) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(NIOSSLServerHandler(context: tls))
        let deadline = handshakeDeadline(channel, in: TimeAmount(loop.state.config.requestHeadTimeout))
        try sync.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
            deadline.cancel()
            return channel.eventLoop.makeCompletedFuture {
                switch result {
                case .negotiated("h2"):
                    try http2(channel, loop: loop, peer: peer)
                case .negotiated("http/1.1"), .fallback:
                    try http1(channel, loop: loop, peer: peer, secure: true)
                case .negotiated:
                    throw NIOHTTP2Errors.invalidALPNToken()
                }
            }
        })
    }

    /// Closes `channel` after `timeout` unless cancelled first; cancelled when the channel closes.
    static func handshakeDeadline(_ channel: any Channel, in timeout: TimeAmount) -> Scheduled<Void> {
        let deadline = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in deadline.cancel() }
        return deadline
    }

    /// HTTP/1.1: ``ClientConnectionHandler``, which decodes the bytes itself.
    static func http1(_ channel: any Channel, loop: LoopContext, peer: Peer, secure: Bool) throws {
        try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler(loop: loop, secureListener: secure, peer: peer))
    }

    /// HTTP/2: ``WriteCoalescer``, `NIOHTTP2Handler` with the config's limits and the bounds on
    /// HTTP/2's floods, ``HTTP2Connection``, which serves the streams from their frames (no
    /// channel per stream, and its own idle timeout), and the connection manager (graceful
    /// GOAWAY), which counts the streams the connection tells it of.
    static func http2(_ channel: any Channel, loop: LoopContext, peer: Peer) throws {
        let config = loop.state.config
        let limits = config.tls?.http2 ?? HTTP2Limits()
        let manager = NIOHTTP2ServerConnectionManagementHandler(eventLoop: channel.eventLoop, configuration: .init(
            maxIdleTime: nil, maxAge: nil, maxGraceTime: TimeAmount(config.shutdownGrace), keepalive: nil))
        // Without a stream initializer, NIOHTTP2Handler hands on frames.
        let handler = NIOHTTP2Handler(mode: .server, connectionConfiguration: connectionConfiguration(limits),
                                      streamConfiguration: streamConfiguration)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(WriteCoalescer())
        try sync.addHandler(handler)
        try sync.addHandler(HTTP2Connection(loop: loop, peer: peer, streamCounter: manager.http2StreamDelegate))
        try sync.addHandler(manager)
        // The handler and the manager start on channelActive, which passed before ALPN chose h2.
        try sync.context(handler: handler).fireChannelActive()
    }

    /// What the gateway announces (SETTINGS) and enforces on every HTTP/2 connection.
    static func connectionConfiguration(_ limits: HTTP2Limits) -> NIOHTTP2Handler.ConnectionConfiguration {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        // Request header blocks are checked by HTTP2Fields (RFC 9113 §8.2–8.3); NIO's check would
        // run on every response too, which the gateway builds valid.
        c.headerBlockValidation = .disabled
        c.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderListSize),
        ]
        // CONTINUATION floods: a header block in more than 5 CONTINUATION frames ends the connection.
        c.maximumSequentialContinuationFrames = 5
        // SETTINGS/PING floods whose answers the client does not read: 1 000 queued answers at most.
        c.maximumBufferedControlFrames = 1_000
        // PING, SETTINGS, PRIORITY floods: 200 in 30 s (NIO's default), then GOAWAY.
        c.controlFrameRateLimit.maximumCount = 200
        c.controlFrameRateLimit.windowLength = .seconds(30)
        return c
    }

    /// Rapid reset (CVE-2023-44487): a client resetting over 200 streams in 30 s gets GOAWAY.
    static let streamConfiguration: NIOHTTP2Handler.StreamConfiguration = {
        var s = NIOHTTP2Handler.StreamConfiguration()
        s.streamResetFrameRateLimit.maximumCount = 200
        s.streamResetFrameRateLimit.windowLength = .seconds(30)
        return s
    }()
}
