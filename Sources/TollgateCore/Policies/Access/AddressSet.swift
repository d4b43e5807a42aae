/// A set of IPv4 and IPv6 networks, each with a value, that answers "which network holds this
/// address" with one hash lookup per distinct prefix length present — not one comparison per
/// network, so ten thousand banned prefixes cost what three prefix lengths cost.
///
/// Addresses are ``ClientKey``s over the IPv6 space (IPv4 mapped as `::ffff:a.b.c.d`); an IPv4
/// network `/n` is stored at `/96+n`. When networks nest, the longest (most specific) one answers.
public struct AddressSet<Value: Sendable>: Sendable {
    /// Prefix lengths present, longest first, each with its networks.
    private var levels: [(length: UInt8, networks: [ClientKey: Value])] = []

    public init() {}

    public var isEmpty: Bool { levels.isEmpty }
    public var count: Int { levels.reduce(0) { $0 + $1.networks.count } }

    /// Adds (or replaces) the network `cidr`.
    public mutating func insert(_ cidr: CIDR, _ value: Value) {
        insert(ClientKey(cidr: cidr), value)
    }

    /// Adds (or replaces) the network `network` (a key at its prefix length).
    public mutating func insert(_ network: ClientKey, _ value: Value) {
        let length = network.prefixLength
        if let i = levels.firstIndex(where: { $0.length == length }) {
            levels[i].networks[network] = value
        } else {
            levels.append((length, [network: value]))
            levels.sort { $0.length > $1.length }
        }
    }

    /// The value of the most specific network holding `address` (a whole address: `/128`).
    public func lookup(_ address: ClientKey) -> Value? {
        for level in levels {
            if let value = level.networks[address.masked(to: level.length)] { return value }
        }
        return nil
    }

    public func contains(_ address: ClientKey) -> Bool { lookup(address) != nil }

    /// Every network and its value.
    public var all: [(network: ClientKey, value: Value)] {
        levels.flatMap { level in level.networks.map { ($0.key, $0.value) } }
    }
}

extension ClientKey {
    /// The network `cidr` as a key at its prefix length in the IPv6 space.
    public init(cidr: CIDR) {
        let v6Length = cidr.network.count == 4 ? 96 + cidr.prefixLength : cidr.prefixLength
        let key = ClientKey(bytes: cidr.network, ipv4Prefix: 32, ipv6Prefix: 128)!
        self = key.masked(to: UInt8(v6Length))
    }

    /// A whole address (`/128`, IPv4 mapped) from 4 or 16 bytes.
    public init?(address bytes: [UInt8]) {
        self.init(bytes: bytes, ipv4Prefix: 32, ipv6Prefix: 128)
    }

    /// This address reduced to its first `length` bits (IPv6 bits: an IPv4 /24 is 120).
    public func masked(to length: UInt8) -> ClientKey {
        let l = Int(min(length, 128))
        let highMask: UInt64 = l >= 64 ? .max : (l == 0 ? 0 : ~(UInt64.max >> UInt64(l)))
        let lowMask: UInt64 = l <= 64 ? 0 : (l == 128 ? .max : ~(UInt64.max >> UInt64(l - 64)))
        return ClientKey(high: high & highMask, low: low & lowMask, prefixLength: UInt8(l))
    }
}
