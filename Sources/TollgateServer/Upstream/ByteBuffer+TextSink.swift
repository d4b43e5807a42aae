import NIOCore
import TollgateCore

/// The upstream request head is rendered straight into the buffer that is sent.
extension ByteBuffer: TextSink {
    public mutating func append(_ text: String) { writeString(text) }
    public mutating func append(_ text: Substring) { writeSubstring(text) }
    public mutating func appendASCII(_ byte: UInt8) { writeInteger(byte) }
    public mutating func append(utf8 bytes: UnsafeBufferPointer<UInt8>) { writeBytes(bytes) }
    public mutating func reserve(_ bytes: Int) { reserveCapacity(minimumWritableBytes: bytes) }

    /// The digits written in one go into the buffer's memory (the default writes a byte at a time).
    public mutating func appendDecimal(_ value: Int64) {
        var magnitude = value.magnitude
        var count = value < 0 ? 2 : 1
        var rest = magnitude
        while rest >= 10 { rest /= 10; count += 1 }
        writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
            var i = count
            repeat {
                i -= 1
                out[i] = UInt8(truncatingIfNeeded: magnitude % 10) + 0x30
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { out[0] = UInt8(ascii: "-") }
            return count
        }
    }
}
