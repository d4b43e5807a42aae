import NIOCore
import NIOHTTP2
import TollgateCore

/// One HTTP/2 client connection, between `NIOHTTP2Handler` and the connection manager in its
/// channel's pipeline. It serves every stream itself, from frames: there is no channel per
/// stream. Each stream is an ``HTTP2Stream`` in ``streams``, from its first HEADERS frame until
/// `NIOHTTP2Handler` reports it closed (answered, reset by the client, or the connection gone).
///
/// - The connection manager (graceful GOAWAY) counts the streams this connection serves: it is
///   told of each one opened and closed here, and the handler's own stream events are not passed
///   on. Those can report a stream closed that was never reported open (one whose first HEADERS
///   failed validation), which the manager does not expect.
/// - The idle timeout is ours (``IdleWatch``, as on HTTP/1.1): the last stream closing counts as
///   activity, and a connection without open streams for `idle_timeout` is closed gracefully. The
///   manager's own would start and cancel a timer for every stream.
/// - A malformed header block (``HTTP2Fields``: RFC 9113 §8.2–8.3, checked here, not by
///   NIOHTTP2) resets its stream with `PROTOCOL_ERROR`; the connection's ``malformedBlockLimit``+1st
///   ends it with GOAWAY `ENHANCE_YOUR_CALM` (the bound NIOHTTP2 keeps on stream errors).
/// - Requests made whole by a read are answered when that read has been handled
///   (`channelReadComplete`), in the order they became whole: a stream the client reset within
///   the same read is gone by then (rapid reset costs no policy run and no upstream call).
/// - Inbound flow control is ours (`NIOHTTP2Handler` enforces the windows, the multiplexer used
///   to refill them): the connection's window, and a stream's while its body is arriving, are
///   refilled to ``window`` when they fall below half of it. Bodies are bounded by the route's
///   `max_body`, so the refill never lets more in than a request may hold.
/// - The client's run of refusals (``RefusalStreak``) is the connection's, not a stream's: a client
///   cannot restart its run by opening a new stream. A run that reaches `close_after_refusals`, a
///   ban, or a framing fault ends the connection gracefully (``closeGracefully()``).
/// - Closing is always graceful first: GOAWAY, the streams already open are answered, then the
///   connection closes (the connection manager does this; `shutdown_grace` bounds it).
/// - Bound to its channel's event loop.
final class HTTP2Connection: ChannelInboundHandler, ClientConnection, IdleWatched {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// The size inbound flow-control windows are kept at: HTTP/2's initial window, which the
    /// gateway's SETTINGS leave as it is.
    static let window = 65_535
    /// Malformed header blocks a connection may send (each resets its stream); the next one ends it.
    static let malformedBlockLimit = 200

    let loop: LoopContext
    let peer: Peer
    /// The connection manager's: told of each stream opened and closed.
    private let streamCounter: NIOHTTP2ServerConnectionManagementHandler.HTTP2StreamDelegate
    var refusals = RefusalStreak()
    /// Whether a response went out on this connection already (HPACK: see ``HTTP2Fields``).
    var answeredBefore = false
    private var context: ChannelHandlerContext?
    private var closing = false
    private var streams: [HTTP2StreamID: HTTP2Stream] = [:]
    /// Streams whose request a read made whole, to answer at the end of that read.
    private var whole: [HTTP2Stream] = []
    /// Frames written since the last flush (window updates during a read).
    private var unflushed = false
    private var malformedBlocks = 0
    /// The highest stream opened, for a GOAWAY that ends the connection.
    private var lastOpened = HTTP2StreamID.rootStream
    var idleWatch = IdleWatch()

    init(loop: LoopContext, peer: Peer, streamCounter: NIOHTTP2ServerConnectionManagementHandler.HTTP2StreamDelegate) {
        self.loop = loop
        self.peer = peer
        self.streamCounter = streamCounter
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loop.connections[ObjectIdentifier(self)] = self
        IdleWatch.touch(self, on: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        loop.connections[ObjectIdentifier(self)] = nil
        closeAllStreams()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        loop.connections[ObjectIdentifier(self)] = nil
        closeAllStreams()
        context.fireChannelInactive()
    }

    /// The connection is gone: every stream still open is closed (an exchange in progress is told).
    private func closeAllStreams() {
        idleWatch.cancel()
        let open = streams.values
        streams = [:]
        whole = []
        for stream in open { stream.closed() }
    }

    // MARK: Frames in

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let headers):
            if let stream = streams[frame.streamID] {
                guard HTTP2Fields.validTrailers(headers.headers) else { return malformed(frame.streamID, context: context) }
                stream.receive(nil, ended: headers.endStream)  // trailers
                if stream.isComplete { whole.append(stream) }
                return
            }
            guard let head = HTTP2Fields.requestHead(headers.headers) else { return malformed(frame.streamID, context: context) }
            let stream = HTTP2Stream(id: frame.streamID, connection: self)
            streams[frame.streamID] = stream
            lastOpened = frame.streamID
            streamCounter.streamCreated(frame.streamID, channel: context.channel)
            stream.begin(head, ended: headers.endStream)
            if stream.isComplete { whole.append(stream) }
        case .data(let data):
            guard let stream = streams[frame.streamID] else { return }
            if case .byteBuffer(let bytes) = data.data { stream.receive(bytes, ended: data.endStream) } else { stream.receive(nil, ended: data.endStream) }
            if stream.isComplete { whole.append(stream) }
        default:
            // RST_STREAM arrives as a StreamClosedEvent; the other frames are NIOHTTP2Handler's,
            // and the manager's to see (the answer to its PING of a graceful close).
            context.fireChannelRead(data)
        }
    }

    /// A malformed header block (RFC 9113 §8.1.1): a stream error, that stream only — until the
    /// connection has sent more than ``malformedBlockLimit``, which ends it.
    private func malformed(_ id: HTTP2StreamID, context: ChannelHandlerContext) {
        malformedBlocks += 1
        guard malformedBlocks > Self.malformedBlockLimit else {
            return context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.protocolError))), promise: nil)
        }
        guard malformedBlocks == Self.malformedBlockLimit + 1 else { return }  // closing already
        closing = true
        loop.state.logger.info("HTTP/2 connection ended by a protocol error", metadata: [
            "client": "\(peer.address)", "error": "malformed header blocks"])
        let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastOpened, errorCode: .enhanceYourCalm, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
        context.close(promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // By index: an answer can end the connection, which empties the list.
        var next = 0
        while next < whole.count {
            next += 1
            whole[next - 1].answer()  // a stream closed since is no longer complete
        }
        whole.removeAll(keepingCapacity: true)
        if unflushed {
            unflushed = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let closed as StreamClosedEvent:
            guard let stream = streams.removeValue(forKey: closed.streamID) else { return }
            stream.closed()
            streamCounter.streamClosed(closed.streamID, channel: context.channel)
            if streams.isEmpty { IdleWatch.touch(self, on: context.eventLoop) }
        case is NIOHTTP2StreamCreatedEvent:
            return
        case let window as NIOHTTP2WindowUpdatedEvent:
            refill(window)
            context.fireUserInboundEventTriggered(event)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Refills an inbound window that fell below half of ``window``: the connection's always, a
    /// stream's only while its body is arriving.
    private func refill(_ event: NIOHTTP2WindowUpdatedEvent) {
        guard let context, let size = event.inboundWindowSize, size < Self.window / 2 else { return }
        guard event.streamID == .rootStream || streams[event.streamID]?.isReceiving == true else { return }
        let update = HTTP2Frame(streamID: event.streamID, payload: .windowUpdate(windowSizeIncrement: Self.window - size))
        context.write(wrapOutboundOut(update), promise: nil)
        unflushed = true
    }

    // MARK: Frames out

    /// Writes a frame of stream `id`'s answer. `reset` (which flushes): once it is written, the
    /// stream is reset (RST_STREAM NO_ERROR) if the client has not ended it — the answer came before
    /// the whole request, whose remaining DATA is not wanted.
    func write(_ payload: HTTP2Frame.FramePayload, on id: HTTP2StreamID, flush: Bool, reset: Bool) {
        guard let context else { return }
        let frame = wrapOutboundOut(HTTP2Frame(streamID: id, payload: payload))
        guard reset else {
            if flush { context.writeAndFlush(frame, promise: nil) } else { context.write(frame, promise: nil) }
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(frame, promise: written)
        written.futureResult.assumeIsolated().whenComplete { [self] _ in
            guard let context = self.context, streams[id] != nil else { return }
            context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.noError))), promise: nil)
        }
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

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
    /// than a stream error (that stream reset; reported wrapped in `StreamError` to a handler that
    /// serves frames): a `content-length` that does not match the DATA, say. (Header blocks are
    /// checked by ``HTTP2Fields``; with NIO's validation off, its header-field errors cannot occur.)
    /// More than 200 stream errors in 30 s become a connection error (`ExcessiveStreamErrors`).
    static func endsConnection(_ error: any Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.StreamError, is NIOHTTP2Errors.TrailersWithoutEndStream,
             is NIOHTTP2Errors.ContentLengthViolated, is NIOHTTP2Errors.ContentLengthHeadersMismatch,
             is NIOHTTP2Errors.ContentLengthHeaderNegative, is NIOHTTP2Errors.ContentLengthHeaderMalformedValue:
            false
        default:
            true
        }
    }

    /// Sends GOAWAY; the streams already open are answered, then the connection closes. Asked for
    /// from inside a stream's answer, it is done on the loop's next turn, from the pipeline's head,
    /// once that answer's frames and its stream's close have gone through `NIOHTTP2Handler` and
    /// the connection manager.
    func closeGracefully() {
        guard !closing, let context else { return }
        closing = true
        let pipeline = context.pipeline
        context.eventLoop.assumeIsolated().execute {
            pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    func drain() { closeGracefully() }

    var idleStatus: IdleWatch.Status { closing ? .closing : streams.isEmpty ? .idle : .busy }

    var idleTimeout: TimeAmount { TimeAmount(loop.state.config.idleTimeout) }

    func closeIdle() { closeGracefully() }

    func forceClose() { context?.close(promise: nil) }
}
