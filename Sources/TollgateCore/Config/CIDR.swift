/// An IPv4 or IPv6 network such as `10.0.0.0/8` or `2001:db8::/32`.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    /// Network address bytes (4 for IPv4, 16 for IPv6).
    public let network: [UInt8]
    public let prefixLength: Int
    public let description: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress.parse(String(parts[0])) else { return nil }
        let bits = address.count * 8
        let length: Int
        if parts.count == 2 {
            guard let l = Int(parts[1]), (0...bits).contains(l) else { return nil }
            length = l
        } else {
            length = bits
        }
        network = IPAddress.mask(address, prefixLength: length)
        prefixLength = length
        description = text
    }

    /// Whether `address` (4 or 16 bytes) lies in this network. IPv4-mapped IPv6 addresses match IPv4 networks.
    public func contains(_ address: [UInt8]) -> Bool {
        var address = address
        if network.count == 4, address.count == 16, address.starts(with: IPAddress.v4MappedPrefix) {
            address = Array(address[12...])
        }
        guard address.count == network.count else { return false }
        return IPAddress.mask(address, prefixLength: prefixLength) == network
    }
}

/// Textual IP addresses to bytes.
public enum IPAddress {
    static let v4MappedPrefix: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]

    /// 4 bytes for a dotted IPv4 address, 16 for IPv6 (with `::` compression and an optional embedded IPv4 tail).
    public static func parse(_ text: String) -> [UInt8]? {
        if text.contains(":") { return parseV6(Substring(text)) }
        return parseV4(Substring(text))
    }

    static func parseV4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), p.allSatisfy(\.isNumber),
                  !(p.count > 1 && p.hasPrefix("0")), let v = UInt8(p) else { return nil }
            bytes.append(v)
        }
        return bytes
    }

    static func parseV6(_ s: Substring) -> [UInt8]? {
        var s = s
        if let zone = s.firstIndex(of: "%") { s = s[..<zone] }
        let halves = s.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String, allowV4Tail: Bool) -> [UInt8]? {
            if part.isEmpty { return [] }
            var out: [UInt8] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, item) in items.enumerated() {
                if allowV4Tail && i == items.count - 1 && item.contains(".") {
                    guard let v4 = parseV4(item) else { return nil }
                    out += v4
                } else {
                    guard (1...4).contains(item.count), let v = UInt16(item, radix: 16) else { return nil }
                    out += [UInt8(v >> 8), UInt8(v & 0xFF)]
                }
            }
            return out
        }
        if halves.count == 1 {
            guard let all = groups(halves[0], allowV4Tail: true), all.count == 16 else { return nil }
            return all
        }
        guard let head = groups(halves[0], allowV4Tail: false), let tail = groups(halves[1], allowV4Tail: true),
              head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    static func mask(_ address: [UInt8], prefixLength: Int) -> [UInt8] {
        var out = address
        for i in 0..<out.count {
            let bitsHere = max(0, min(8, prefixLength - i * 8))
            out[i] &= bitsHere == 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
        return out
    }
}
