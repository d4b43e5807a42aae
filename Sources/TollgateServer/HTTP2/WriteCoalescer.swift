import NIOCore

/// Between TLS and HTTP/2 on an HTTP/2 connection: the writes and flushes of one round of the
/// event loop become one write and one flush, at the end of the round.
///
/// - Flushes: each stream's answer flushes when it is written — usually when its upstream
///   answered, outside this connection's reads — so without this every answer on a busy
///   connection costs its own `write` system call; with it, the answers that became ready in the
///   same round leave together.
/// - Writes: `NIOHTTP2Handler` writes each frame as one or two buffers (a DATA frame's header and
///   its payload apart), and TLS seals each buffer written as its own record. Small buffers are
///   copied into one, so an answer (HEADERS and DATA: three buffers) is one record, and the
///   answers of a round share records. A buffer of ``passThroughBytes`` or more (a large body)
///   is not copied: what was gathered goes first, then it, in order.
///
/// Invariants: bytes leave in the order they were written; a flush asked for is always made, in
/// the same round of the loop (`execute`), never dropped; a close waiting behind it writes and
/// flushes first (so a GOAWAY written before the close leaves); every write's promise completes
/// when the write that carries its bytes does, or fails when the channel goes first.
final class WriteCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Buffers this large are passed on as they are, not copied.
    static let passThroughBytes = 4096

    private var gathered: ByteBuffer?
    private var promises: [EventLoopPromise<Void>] = []
    private var flushPending = false
    private var removed = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .byteBuffer(var bytes) = unwrapOutboundIn(data), bytes.readableBytes < Self.passThroughBytes else {
            writeGathered(context: context)
            return context.write(data, promise: promise)
        }
        if gathered == nil {
            gathered = context.channel.allocator.buffer(capacity: Self.passThroughBytes)
        }
        gathered!.writeBuffer(&bytes)
        if let promise { promises.append(promise) }
    }

    func flush(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = bound.value
            guard !coalescer.removed else { return }
            coalescer.flushNow(context: context)
        }
    }

    /// The channel is gone with bytes still gathered: their writes fail, as queued writes do.
    func handlerRemoved(context: ChannelHandlerContext) {
        removed = true
        gathered = nil
        let waiting = promises
        promises.removeAll()
        for promise in waiting { promise.fail(ChannelError.ioOnClosedChannel) }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if flushPending || gathered != nil { flushNow(context: context) }
        context.close(mode: mode, promise: promise)
    }

    private func flushNow(context: ChannelHandlerContext) {
        flushPending = false
        writeGathered(context: context)
        context.flush()
    }

    /// Passes on what was gathered, as one buffer; its promise completes the gathered writes' ones.
    private func writeGathered(context: ChannelHandlerContext) {
        guard let bytes = gathered else { return }
        gathered = nil
        guard !promises.isEmpty else { return context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil) }
        let waiting = promises
        promises.removeAll(keepingCapacity: true)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { result in
            for promise in waiting { promise.completeWith(result) }
        }
    }
}
