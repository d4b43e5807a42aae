import NIOCore
import TollgateCore

/// The upstream request head is rendered straight into the buffer that is sent.
extension ByteBuffer: TextSink {
    public mutating func append(_ text: String) { writeString(text) }
    public mutating func append(_ text: Substring) { writeSubstring(text) }
    public mutating func appendASCII(_ byte: UInt8) { writeInteger(byte) }
    public mutating func reserve(_ bytes: Int) { reserveCapacity(minimumWritableBytes: bytes) }
}
