/// `addresses: { allow: [...], deny: [...] }`, gateway-wide or on a route: which client addresses
/// may be served. A denied address is refused even when an allow entry also holds it; with an
/// allow list, every address outside it is refused. The address is the resolved client (through
/// trusted proxies), checked whole — not reduced to the limits' IPv6 prefix.
public struct AddressRules: Sendable {
    public var allow: [CIDR]
    public var deny: [CIDR]
    private var allowSet = AddressSet<Bool>()
    private var denySet = AddressSet<Bool>()

    public init(allow: [CIDR] = [], deny: [CIDR] = []) {
        self.allow = allow
        self.deny = deny
        for cidr in allow { allowSet.insert(cidr, true) }
        for cidr in deny { denySet.insert(cidr, true) }
    }

    public var isEmpty: Bool { allow.isEmpty && deny.isEmpty }

    /// Whether `address` (a whole address) may be served.
    public func admits(_ address: ClientKey) -> Bool {
        if denySet.contains(address) { return false }
        return allow.isEmpty || allowSet.contains(address)
    }
}

extension AddressRules: Equatable {
    public static func == (lhs: AddressRules, rhs: AddressRules) -> Bool {
        lhs.allow == rhs.allow && lhs.deny == rhs.deny
    }
}

extension Problem {
    /// A client address outside the route's (or gateway's) address rules.
    public static let addressDenied = Problem(status: 403, code: "address-denied", title: "Forbidden",
                                              detail: "Requests from this network are not accepted.")
    /// A banned client (address, network, key or session).
    public static let banned = Problem(status: 403, code: "banned", title: "Forbidden",
                                       detail: "This client is banned for now.")
}
