/// Percent-encoding for URL components (RFC 3986).
public enum PercentEncoding {
    /// Decodes `%XX` escapes (and `+` as space when `plusIsSpace`). Nil when an escape is malformed
    /// or the result is not valid UTF-8. The bytes are decoded in a temporary buffer (on the stack
    /// for the short values requests carry), so a result short enough for Swift's inline strings
    /// costs no allocation.
    public static func decode(_ s: Substring, plusIsSpace: Bool) -> String? {
        let utf8 = s.utf8
        if !utf8.contains(UInt8(ascii: "%")) && !(plusIsSpace && utf8.contains(UInt8(ascii: "+"))) {
            return String(s)
        }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: utf8.count) { bytes -> String? in
            var n = 0
            var it = utf8.makeIterator()
            while let b = it.next() {
                if b == UInt8(ascii: "%") {
                    guard let h = it.next().flatMap(hexValue), let l = it.next().flatMap(hexValue) else { return nil }
                    bytes[n] = h << 4 | l
                } else if plusIsSpace && b == UInt8(ascii: "+") {
                    bytes[n] = 0x20
                } else {
                    bytes[n] = b
                }
                n += 1
            }
            return String(validating: UnsafeBufferPointer(rebasing: bytes[..<n]), as: UTF8.self)
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
        if s.utf8.allSatisfy(isUnreserved) { return out.append(s) }
        for b in s.utf8 {
            if isUnreserved(b) {
                out.appendASCII(b)
            } else {
                out.appendASCII(UInt8(ascii: "%"))
                out.appendASCII(hexDigits[Int(b >> 4)])
                out.appendASCII(hexDigits[Int(b & 0xF)])
            }
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
