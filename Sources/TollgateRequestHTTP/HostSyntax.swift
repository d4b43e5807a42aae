/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2–3), over bytes: a reg-name or IPv4 address, or an IP
/// literal in brackets, then an optional port of up to 5 digits. One definition for the two places
/// that check it: `RequestFraming` (the `Host` field) and ``RequestDecoder`` (an absolute-form
/// target's authority). Runs on every request: no `Character` walks.
package enum HostSyntax {
    /// Whether `b` is a host with an optional port. Empty is valid (an authority without a host);
    /// callers that need a host check for that themselves.
    package static func isValid(_ b: UnsafeRawBufferPointer) -> Bool {
        var end = b.count
        if b.first == UInt8(ascii: "[") {
            guard let close = b.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
            for i in 1..<close where !(isHexDigit(b[i]) || b[i] == UInt8(ascii: ":") || b[i] == UInt8(ascii: ".")) {
                return false
            }
            return close + 1 == b.count || isPort(b, from: close + 1)
        }
        if let colon = b.lastIndex(of: UInt8(ascii: ":")) {
            guard isPort(b, from: colon) else { return false }
            end = colon
        }
        for i in 0..<end where !isRegNameByte(b[i]) { return false }
        return true
    }

    /// `":" *5DIGIT` from `start` to the end.
    private static func isPort(_ b: UnsafeRawBufferPointer, from start: Int) -> Bool {
        guard start < b.count, b[start] == UInt8(ascii: ":"), b.count - start - 1 <= 5 else { return false }
        for i in (start + 1)..<b.count where !(b[i] >= 0x30 && b[i] <= 0x39) { return false }
        return true
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
    }

    /// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2).
    private static func isRegNameByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"): true
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="): true
        default: false
        }
    }
}
