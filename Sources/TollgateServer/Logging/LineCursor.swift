import TollgateCore

/// Writes a log line's pieces into memory reserved for the whole line: each piece is one copy and
/// one bounds check, with no capacity check or uniqueness test per piece (appending each piece to
/// an `Array` took ~30 of both per access-log line). The caller reserves at most as much as the
/// line can take (``jsonBound(_:)`` per string); a piece that would pass the end traps rather than
/// write past it.
struct LineCursor {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    /// Bytes written so far.
    private(set) var count = 0

    init(_ memory: UnsafeMutableRawBufferPointer) {
        base = memory.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 1)!  // an empty buffer takes nothing
        capacity = memory.count
    }

    /// The most bytes `text` can take as a JSON string: 6 per byte (`\u00XX`) and its quotes.
    static func jsonBound(_ text: some StringProtocol) -> Int {
        6 * text.utf8.count + 2
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= capacity - count, "log line longer than the room reserved for it")
        if let source = bytes.baseAddress { (base + count).copyMemory(from: source, byteCount: bytes.count) }
        count += bytes.count
    }

    @inline(__always)
    mutating func put(_ byte: UInt8) {
        precondition(count < capacity, "log line longer than the room reserved for it")
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// A literal, as its UTF-8 bytes.
    @inline(__always)
    mutating func put(_ text: StaticString) {
        text.withUTF8Buffer { put(UnsafeRawBufferPointer($0)) }
    }

    /// The UTF-8 bytes of `text`, as they are.
    mutating func putUTF8(_ text: some StringProtocol) {
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { put(UnsafeRawBufferPointer($0)) }
        if copied == nil {
            for byte in text.utf8 { put(byte) }
        }
    }

    /// `text` as a JSON string, quoted; escaped as ``JSONValue/writeString(_:into:)`` does (which
    /// runs only for text that needs it: a quote, a backslash, `<`, `>`, `&` or a control byte).
    mutating func putJSONString(_ text: some StringProtocol) {
        let plain = text.utf8.withContiguousStorageIfAvailable { bytes in
            !bytes.contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x3C || $0 == 0x3E || $0 == 0x26 }
        } ?? false
        if plain {
            put(UInt8(ascii: "\""))
            putUTF8(text)
            put(UInt8(ascii: "\""))
        } else {
            var escaped = ""
            JSONValue.writeString(String(text), into: &escaped)
            putUTF8(escaped)
        }
    }

    /// `value` (≥ 0) in decimal, at least `width` digits (zero-padded; at most 20).
    mutating func putDigits(_ value: Int, width: Int = 1) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var rest = value.magnitude
        var used = 0
        Swift.withUnsafeMutableBytes(of: &digits) { out in
            repeat {
                out[19 - used] = UInt8(truncatingIfNeeded: rest % 10) + 0x30
                rest /= 10
                used += 1
            } while rest > 0 || used < Swift.min(width, 20)
            put(UnsafeRawBufferPointer(rebasing: out[(20 - used)...]))
        }
    }
}

extension Array where Element == UInt8 {
    /// Bytes written through a cursor over `bound` bytes of room (the tests, the clock's cached prefix).
    init(atMost bound: Int, _ write: (inout LineCursor) -> Void) {
        self.init(unsafeUninitializedCapacity: bound) { memory, initialized in
            var cursor = LineCursor(UnsafeMutableRawBufferPointer(memory))
            write(&cursor)
            initialized = cursor.count
        }
    }
}
