import TollgateCore

/// Appending log-line pieces to bytes: each piece is one copy into the array (the access log
/// rendered into a `String` paid `String`'s append path, about 30 times a line, 4 % of a logged
/// request's CPU). A string's bytes go through ``TextSink``'s `append(_:)` (one copy of its UTF-8
/// storage).
extension Array where Element == UInt8 {
    /// A literal, as its UTF-8 bytes.
    @inline(__always)
    mutating func appendStatic(_ text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }

    /// `text` as a JSON string, quoted; escaped as ``JSONValue/writeString(_:into:)`` does (which
    /// runs only for text that needs it: a quote, a backslash, `<`, `>`, `&` or a control byte).
    mutating func appendJSONString(_ text: String) {
        let plain = text.utf8.withContiguousStorageIfAvailable { bytes in
            !bytes.contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x3C || $0 == 0x3E || $0 == 0x26 }
        } ?? false
        if plain {
            append(0x22)
            append(text)
            append(0x22)
        } else {
            var escaped = ""
            JSONValue.writeString(text, into: &escaped)
            append(escaped)
        }
    }

    /// `value` (≥ 0) in decimal, at least `width` digits (zero-padded).
    mutating func appendDigits(_ value: Int, width: Int = 1) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var rest = value.magnitude
        var count = 0
        Swift.withUnsafeMutableBytes(of: &digits) { out in
            repeat {
                out[19 - count] = UInt8(truncatingIfNeeded: rest % 10) + 0x30
                rest /= 10
                count += 1
            } while rest > 0 || count < Swift.min(width, 20)
            append(contentsOf: UnsafeRawBufferPointer(rebasing: out[(20 - count)...]))
        }
    }
}
