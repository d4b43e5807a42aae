import NIOCore
import NIOEmbedded
import Testing
@testable import TollgateServer

/// A kept buffer's memory is reused only when nothing else holds it; a buffer still held (a write
/// queued behind a slow socket) is never written over.
@Suite struct BufferShelfTests {
    private func address(_ buffer: ByteBuffer) -> UInt {
        buffer.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
    }

    @Test func aBufferNobodyHoldsIsReusedEmpty() {
        let shelf = BufferShelf(maxSpares: 2)
        var first = shelf.take(capacity: 256, allocator: ByteBufferAllocator())
        first.writeString("HTTP/1.1 200 OK\r\n")
        let memory = address(first)
        shelf.give(first)
        first = ByteBuffer()  // the write is done: only the shelf holds it
        let second = shelf.take(capacity: 256, allocator: ByteBufferAllocator())
        #expect(address(second) == memory)
        #expect(second.readableBytes == 0)
    }

    @Test func aBufferStillHeldElsewhereIsNeverWrittenOver() {
        let shelf = BufferShelf(maxSpares: 2)
        var queued = shelf.take(capacity: 256, allocator: ByteBufferAllocator())
        queued.writeString("first response")
        shelf.give(queued)  // handed back while `queued` is still waiting to be written
        var next = shelf.take(capacity: 256, allocator: ByteBufferAllocator())
        next.writeString("second response, longer than the first")
        #expect(address(next) != address(queued))
        #expect(String(buffer: queued) == "first response")
        #expect(String(buffer: next) == "second response, longer than the first")
    }

    @Test func growsTheBufferItReusesWhenAskedForMore() {
        let shelf = BufferShelf(maxSpares: 1)
        shelf.give(ByteBufferAllocator().buffer(capacity: 64))
        let buffer = shelf.take(capacity: 4096, allocator: ByteBufferAllocator())
        #expect(buffer.capacity >= 4096)
    }

    @Test func keepsAtMostMaxSparesOfAtMostMaxCapacity() {
        let shelf = BufferShelf(maxSpares: 2, maxCapacity: 1024)
        shelf.give(ByteBufferAllocator().buffer(capacity: 4096))  // too big: let go
        #expect(shelf.count == 0)
        for _ in 0..<3 { shelf.give(ByteBufferAllocator().buffer(capacity: 128)) }
        #expect(shelf.count == 2)
    }
}
