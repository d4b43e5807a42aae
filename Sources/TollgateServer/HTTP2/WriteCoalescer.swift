import NIOCore

/// Between TLS and HTTP/2 on an HTTP/2 connection: the flushes asked for during one round of the
/// event loop become one, at the end of the round. Each stream's answer flushes when it is written
/// — usually when its upstream answered, outside this connection's reads — so without this every
/// answer on a busy connection costs its own TLS record and `write` system call; with it, the
/// answers that became ready in the same round leave together.
///
/// Invariant: a flush asked for is always made, in the same round of the loop (`execute`), never
/// dropped; a close waiting behind it flushes first (so a GOAWAY written before the close leaves);
/// writes are passed on at once, only the flush waits.
final class FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    private var pending = false

    func flush(context: ChannelHandlerContext) {
        guard !pending else { return }
        pending = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = bound.value
            coalescer.pending = false
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if pending {
            pending = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}
