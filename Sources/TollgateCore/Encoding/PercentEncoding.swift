/// Percent-encoding for URL components (RFC 3986).
public enum PercentEncoding {
    /// Decodes `%XX` escapes (and `+` as space when `plusIsSpace`). Nil when an escape is malformed
    /// or the result is not valid UTF-8. The bytes are decoded in a temporary buffer (on the stack
    /// for the short values requests carry), so a result short enough for Swift's inline strings
    /// costs no allocation.
    public static func decode(_ s: Substring, plusIsSpace: Bool) -> String? {
        // Over the contiguous UTF-8 bytes of a native string (always, for what the data plane
        // decodes): a loop over a buffer, not Substring's generic iterator.
        if let decoded = s.utf8.withContiguousStorageIfAvailable({ decode(bytes: $0, of: s, plusIsSpace: plusIsSpace) }) {
            return decoded
        }
        var copy = String(s)
        return copy.withUTF8 { decode(bytes: $0, of: s, plusIsSpace: plusIsSpace) }
    }

    private static func decode(bytes: UnsafeBufferPointer<UInt8>, of s: Substring, plusIsSpace: Bool) -> String? {
        var escaped = false
        for b in bytes where b == UInt8(ascii: "%") || (plusIsSpace && b == UInt8(ascii: "+")) {
            escaped = true
            break
        }
        if !escaped { return String(s) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes.count) { out -> String? in
            var n = 0
            var i = 0
            var highBits: UInt8 = 0
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "%") {
                    guard i + 2 < bytes.count, let h = hexValue(bytes[i + 1]), let l = hexValue(bytes[i + 2]) else { return nil }
                    out[n] = h << 4 | l
                    i += 3
                } else {
                    out[n] = plusIsSpace && b == UInt8(ascii: "+") ? 0x20 : b
                    i += 1
                }
                highBits |= out[n]
                n += 1
            }
            let decoded = UnsafeBufferPointer(rebasing: out[..<n])
            // ASCII is valid UTF-8 as it stands; only other bytes go through validation, whose
            // generic path cost more than the rest of the decoding (bench/micro).
            return highBits < 0x80 ? String(decoding: decoded, as: UTF8.self) : String(validating: decoded, as: UTF8.self)
        }
    }

    /// Encodes everything but RFC 3986 unreserved characters, so the result is safe in a path segment
    /// or a query name or value.
    public static func encode(_ s: String) -> String {
        if s.utf8.allSatisfy(isUnreserved) { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count * 3)
        append(s, to: &out)
        return out
    }

    /// Appends `s` encoded as ``encode(_:)`` does, without a string of its own.
    public static func append<Sink: TextSink>(_ s: String, to out: inout Sink) {
        var contiguous = s  // withUTF8 is mutating (it may make a bridged string contiguous); `s` stays readable
        contiguous.withUTF8 { bytes in
            // Runs of unreserved bytes go in one move each (a byte at a time cost an append call per byte).
            var run = 0
            for i in bytes.indices where !isUnreserved(bytes[i]) {
                if run < i { out.append(utf8: UnsafeBufferPointer(rebasing: bytes[run..<i])) }
                out.appendASCII(UInt8(ascii: "%"))
                out.appendASCII(hexDigits[Int(bytes[i] >> 4)])
                out.appendASCII(hexDigits[Int(bytes[i] & 0xF)])
                run = i + 1
            }
            if run < bytes.count { out.append(utf8: UnsafeBufferPointer(rebasing: bytes[run...])) }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    private static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }
}

/// `application/x-www-form-urlencoded` query strings.
public enum QueryString {
    /// The decoded name/value pairs of `query` (the part after `?`), or nil if an escape is malformed.
    public static func parse(_ query: Substring) -> [(name: String, value: String)]? {
        var pairs: [(name: String, value: String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring
            let value: Substring
            if let eq = part.firstIndex(of: "=") {
                name = part[..<eq]
                value = part[part.index(after: eq)...]
            } else {
                name = part
                value = ""
            }
            guard let n = PercentEncoding.decode(name, plusIsSpace: true),
                  let v = PercentEncoding.decode(value, plusIsSpace: true) else { return nil }
            pairs.append((n, v))
        }
        return pairs
    }
}
