import NIOCore
import NIOEmbedded
import Testing
@testable import TollgateServer

/// The HTTP/2 connection's write coalescer: the small writes of one loop round leave as one
/// buffer (one TLS record), in order, at the round's end; large buffers are not copied; promises
/// and closes keep their meaning.
@Suite struct WriteCoalescerTests {
    private func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(WriteCoalescer())
        return channel
    }

    private func written(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while var buffer = try channel.readOutbound(as: IOData.self).flatMap({ if case .byteBuffer(let b) = $0 { b } else { nil } }) {
            out.append(buffer.readString(length: buffer.readableBytes) ?? "")
        }
        return out
    }

    @Test func theSmallWritesOfARoundLeaveAsOneBufferAtItsEnd() throws {
        let channel = try channel()
        // An answer as NIOHTTP2Handler writes it: HEADERS, then a DATA frame's header and payload.
        let written1 = channel.eventLoop.makePromise(of: Void.self)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "HEADERS|")), promise: nil)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "DATA-HEAD|")), promise: nil)
        channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: "payload|")), promise: written1)
        channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: "second answer")), promise: nil)
        #expect(try written(channel).isEmpty)  // nothing before the round ends
        channel.embeddedEventLoop.run()
        #expect(try written(channel) == ["HEADERS|DATA-HEAD|payload|second answer"])
        #expect(try written1.futureResult.wait() == ())
        // The next round starts afresh.
        channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: "next")), promise: nil)
        channel.embeddedEventLoop.run()
        #expect(try written(channel) == ["next"])
    }

    @Test func largeBuffersAreNotCopiedAndKeepTheirPlace() throws {
        let channel = try channel()
        let large = String(repeating: "L", count: WriteCoalescer.passThroughBytes)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "a|")), promise: nil)
        channel.write(IOData.byteBuffer(ByteBuffer(string: large)), promise: nil)
        channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: "|b")), promise: nil)
        channel.embeddedEventLoop.run()
        #expect(try written(channel) == ["a|", large, "|b"])
    }

    @Test func aCloseWritesAndFlushesWhatWaitsFirst() throws {
        let channel = try channel()
        channel.write(IOData.byteBuffer(ByteBuffer(string: "GOAWAY")), promise: nil)
        channel.flush()
        let closed = channel.close()
        #expect(try written(channel) == ["GOAWAY"])
        channel.embeddedEventLoop.run()
        try closed.wait()
    }

    @Test func aGatheredWritesPromiseCompletesWhenItsBytesAreWritten() throws {
        let channel = try channel()
        var completed = 0
        for text in ["a", "b"] {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenSuccess { completed += 1 }
            channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: text)), promise: promise)
        }
        #expect(completed == 0)  // still gathered
        channel.embeddedEventLoop.run()
        #expect(try written(channel) == ["ab"])
        #expect(completed == 2)
    }

    @Test func gatheredWritesFailWhenTheChannelGoesFirst() throws {
        let channel = EmbeddedChannel()
        let coalescer = WriteCoalescer()
        try channel.pipeline.syncOperations.addHandler(coalescer)
        let promise = channel.eventLoop.makePromise(of: Void.self)
        var failure: (any Error)?
        promise.futureResult.assumeIsolated().whenFailure { failure = $0 }
        channel.write(IOData.byteBuffer(ByteBuffer(string: "never sent")), promise: promise)
        try channel.pipeline.syncOperations.removeHandler(coalescer).wait()
        channel.embeddedEventLoop.run()
        #expect(failure as? ChannelError == .ioOnClosedChannel)
        #expect(try written(channel).isEmpty)
    }
}
