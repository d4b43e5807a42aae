import NIOCore

/// Byte buffers one event loop reuses for the bytes it sends (client responses, upstream
/// requests), so that a request in the steady state allocates none: each `ByteBuffer` costs two
/// heap allocations (its storage object and its bytes).
///
/// A buffer handed back with ``give(_:)`` may still be in use — queued behind a slow socket, or
/// held by an upstream call that can still be retried. That is safe: ``take(capacity:allocator:)``
/// clears it, and `ByteBuffer.clear(minimumCapacity:)` keeps the memory only when nothing else
/// references it, else allocates new memory and leaves the old to its other holder. Reuse is an
/// optimisation; sharing is never possible.
///
/// Bounded: at most `maxSpares` buffers of at most `maxCapacity` bytes each are kept; a larger one
/// (a big response) is let go rather than held by an idle loop. Loop-confined, no locks.
final class BufferShelf {
    private var spares: [ByteBuffer] = []
    let maxSpares: Int
    let maxCapacity: Int

    init(maxSpares: Int, maxCapacity: Int = 64 * 1024) {
        self.maxSpares = maxSpares
        self.maxCapacity = maxCapacity
        spares.reserveCapacity(maxSpares)
    }

    /// An empty buffer of at least `capacity` bytes: a kept one if there is any.
    func take(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var buffer = spares.popLast() else { return allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }

    /// Keeps `buffer` for a later ``take(capacity:allocator:)`` when there is room and it is small enough.
    func give(_ buffer: ByteBuffer) {
        guard spares.count < maxSpares, buffer.capacity <= maxCapacity else { return }
        spares.append(buffer)
    }

    /// Buffers kept now.
    var count: Int { spares.count }
}
