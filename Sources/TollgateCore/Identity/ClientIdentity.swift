/// Which address a request comes from, in a way a client cannot spoof.
///
/// The TCP peer is the client unless it is a configured trusted proxy. Only then is the forwarding
/// header read, right to left: each trusted hop is skipped, and the first address that is not a
/// trusted proxy is the client. A malformed entry ends the walk at the last trusted hop, so garbage
/// never becomes an identity (and a client cannot pick a fresh identity per request by sending
/// garbage). Headers sent by a client that is not a trusted proxy are ignored completely.
public struct ClientIdentity: Sendable {
    /// The header a trusted proxy uses to pass the client address on.
    public enum ForwardingHeader: String, Sendable, CaseIterable {
        /// `X-Forwarded-For: client, proxy1, proxy2`
        case xForwardedFor = "x-forwarded-for"
        /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`
        case forwarded
    }

    public let trustedProxies: [CIDR]
    public let header: ForwardingHeader
    public let ipv4Prefix: Int
    public let ipv6Prefix: Int

    public init(trustedProxies: [CIDR], header: ForwardingHeader = .xForwardedFor, ipv4Prefix: Int = 32, ipv6Prefix: Int = 64) {
        self.trustedProxies = trustedProxies
        self.header = header
        self.ipv4Prefix = ipv4Prefix
        self.ipv6Prefix = ipv6Prefix
    }

    public func isTrusted(_ address: [UInt8]) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }

    /// The client's address bytes, given the TCP peer and the request's header fields.
    public func resolve(peer: [UInt8], headers: [(name: String, value: String)]) -> [UInt8] {
        resolve(peer: peer, fields: HeaderList(headers))
    }

    public func resolve(peer: [UInt8], fields: any HeaderFields) -> [UInt8] {
        guard !trustedProxies.isEmpty, isTrusted(peer) else { return peer }
        var entries: [Substring] = []
        for (_, value) in fields.all(header.rawValue) {
            entries += value.split(separator: ",", omittingEmptySubsequences: false)
        }
        var current = peer
        for entry in entries.reversed() {
            guard isTrusted(current) else { return current }
            let text = header == .forwarded ? Self.forwardedFor(entry) : entry.trimmingWhitespace()
            guard let text, let address = Self.parseAddress(text) else { return current }
            current = address
        }
        return current
    }

    /// The key limits are counted by, for a resolved address.
    public func key(for address: [UInt8]) -> ClientKey {
        ClientKey(bytes: address, ipv4Prefix: ipv4Prefix, ipv6Prefix: ipv6Prefix) ?? ClientKey(high: 0, low: 0)
    }

    /// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`.
    static func parseAddress(_ text: String) -> [UInt8]? {
        var s = Substring(text)
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let rest = s[s.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isNumber) && rest.count > 1) else { return nil }
            s = s[s.index(after: s.startIndex)..<close]
            return IPAddress.parseV6(s)
        }
        if s.contains(".") {
            if let colon = s.firstIndex(of: ":") {
                let port = s[s.index(after: colon)...]
                guard !port.isEmpty, port.allSatisfy(\.isNumber) else { return nil }
                s = s[..<colon]
            }
            return IPAddress.parseV4(s)
        }
        return s.contains(":") ? IPAddress.parseV6(s) : nil
    }

    /// The `for=` value of one RFC 7239 element, unquoted; nil when absent or `unknown`/obfuscated.
    static func forwardedFor(_ element: Substring) -> String? {
        for pair in element.split(separator: ";") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[0].trimmingWhitespace().lowercased() == "for" else { continue }
            var value = kv[1].trimmingWhitespace()
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else { return nil }
                value = String(value.dropFirst().dropLast())
            }
            return value
        }
        return nil
    }
}
