/// A client's address as a fixed-size key: 16 bytes, IPv4 mapped into IPv6 (`::ffff:a.b.c.d`),
/// already reduced to the configured prefix (an IPv6 client is its /64 by default).
/// Hashing and comparing it costs two integer operations: it is what rate limits are keyed by.
public struct ClientKey: Hashable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64
    /// Prefix length the key was reduced to, in IPv6 bits (128 for a whole address).
    public let prefixLength: UInt8

    public init(high: UInt64, low: UInt64, prefixLength: UInt8 = 128) {
        self.high = high
        self.low = low
        self.prefixLength = prefixLength
    }

    /// A key from 4 or 16 address bytes; IPv4 (and IPv4-mapped IPv6) keep `ipv4Prefix` bits,
    /// other IPv6 addresses `ipv6Prefix` bits.
    public init?(bytes: [UInt8], ipv4Prefix: Int = 32, ipv6Prefix: Int = 64) {
        var b16: [UInt8]
        var prefix: Int
        if bytes.count == 4 {
            b16 = IPAddress.v4MappedPrefix + bytes
            prefix = 96 + ipv4Prefix
        } else if bytes.count == 16 {
            b16 = bytes
            prefix = bytes.starts(with: IPAddress.v4MappedPrefix) ? 96 + ipv4Prefix : ipv6Prefix
        } else {
            return nil
        }
        b16 = IPAddress.mask(b16, prefixLength: prefix)
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in 0..<8 { high = high << 8 | UInt64(b16[i]) }
        for i in 8..<16 { low = low << 8 | UInt64(b16[i]) }
        self.init(high: high, low: low, prefixLength: UInt8(prefix))
    }

    /// A key from a textual address.
    public init?(_ text: String, ipv4Prefix: Int = 32, ipv6Prefix: Int = 64) {
        guard let bytes = IPAddress.parse(text) else { return nil }
        self.init(bytes: bytes, ipv4Prefix: ipv4Prefix, ipv6Prefix: ipv6Prefix)
    }

    public var isIPv4: Bool { high == 0 && low >> 32 == 0xFFFF }

    /// `203.0.113.7`, `203.0.113.0/24`, `2001:db8:1:2::/64`.
    public var description: String {
        if isIPv4 {
            let v = UInt32(truncatingIfNeeded: low)
            let text = "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
            return prefixLength == 128 ? text : "\(text)/\(Int(prefixLength) - 96)"
        }
        var groups: [String] = []
        for i in 0..<8 {
            let word = i < 4 ? high >> (48 - 16 * UInt64(i)) : low >> (48 - 16 * UInt64(i - 4))
            groups.append(String(word & 0xFFFF, radix: 16))
        }
        // Compress the longest run of zero groups.
        var best = (start: -1, length: 0)
        var i = 0
        while i < 8 {
            if groups[i] == "0" {
                var j = i
                while j < 8 && groups[j] == "0" { j += 1 }
                if j - i > best.length && j - i > 1 { best = (i, j - i) }
                i = j
            } else {
                i += 1
            }
        }
        var text: String
        if best.start >= 0 {
            let head = groups[..<best.start].joined(separator: ":")
            let tail = groups[(best.start + best.length)...].joined(separator: ":")
            text = head + "::" + tail
        } else {
            text = groups.joined(separator: ":")
        }
        return prefixLength == 128 ? text : "\(text)/\(prefixLength)"
    }
}
