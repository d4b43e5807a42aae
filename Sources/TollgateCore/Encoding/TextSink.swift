/// Where rendered protocol text goes: a `String` (tests, config-time rendering) or, in the data
/// plane, the outgoing `ByteBuffer` itself, so a request head is written once, straight into the
/// bytes that are sent, with no `String` of its own. TollgateCore has no NIO: the server makes
/// `ByteBuffer` conform.
public protocol TextSink {
    mutating func append(_ text: String)
    mutating func append(_ text: Substring)
    /// One byte of ASCII (`byte` < 0x80).
    mutating func appendASCII(_ byte: UInt8)
    /// Bytes that are valid UTF-8 on their own (ASCII runs and pre-rendered text), in one move.
    mutating func append(utf8 bytes: UnsafeBufferPointer<UInt8>)
    /// Room for `bytes` more, so the appends that follow do not grow the storage piece by piece.
    mutating func reserve(_ bytes: Int)
    /// `value` in decimal ASCII (a leading `-` when negative), without a `String` for it.
    mutating func appendDecimal(_ value: Int64)
}

extension TextSink {
    @inlinable
    public mutating func appendDecimal(_ value: Int64) {
        if value < 0 { appendASCII(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var divisor: UInt64 = 1
        while magnitude / divisor >= 10 { divisor *= 10 }
        while divisor > 0 {
            appendASCII(UInt8(truncatingIfNeeded: magnitude / divisor) + 0x30)
            magnitude %= divisor
            divisor /= 10
        }
    }
}

extension String: TextSink {
    public mutating func append(_ text: String) { self += text }
    public mutating func append(_ text: Substring) { self += text }
    public mutating func appendASCII(_ byte: UInt8) { unicodeScalars.append(Unicode.Scalar(byte)) }
    public mutating func append(utf8 bytes: UnsafeBufferPointer<UInt8>) { self += String(decoding: bytes, as: UTF8.self) }
    public mutating func reserve(_ bytes: Int) { reserveCapacity(utf8.count + bytes) }
}

/// Bytes in an array: the sink the data plane renders upstream request heads into (a buffer its
/// event loop reuses). Rendering into a concrete type of this module runs specialized; the same
/// generic renderer called with a sink from another module (NIO's `ByteBuffer`) made a protocol
/// call for every piece it wrote.
extension Array: TextSink where Element == UInt8 {
    /// Native strings are copied from their UTF-8 storage in one move (the generic
    /// `append(contentsOf: text.utf8)` walked a sequence copy per piece).
    public mutating func append(_ text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ append(contentsOf: $0) }) == nil { append(contentsOf: text.utf8) }
    }
    public mutating func append(_ text: Substring) {
        if text.utf8.withContiguousStorageIfAvailable({ append(contentsOf: $0) }) == nil { append(contentsOf: text.utf8) }
    }
    public mutating func appendASCII(_ byte: UInt8) { append(byte) }
    public mutating func append(utf8 bytes: UnsafeBufferPointer<UInt8>) { append(contentsOf: bytes) }
    public mutating func reserve(_ bytes: Int) { reserveCapacity(count + bytes) }
}
