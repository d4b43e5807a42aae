import Foundation

/// A ban: one address, one network, one API key, one page session or one email domain refused until it expires (or
/// for good) — added by an operator (CLI, admin API, dashboard) or by an automatic rule.
public struct Ban: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// One IPv4 or IPv6 address.
        case address
        /// A network in CIDR form (`203.0.113.0/24`, `2001:db8::/48`).
        case prefix
        /// An API key or client key, by its id (`tg_live_<id>` or the id alone).
        case key
        /// A page session (the page-token session cookie's value).
        case session
        /// An email domain and its subdomains: no verification links for its addresses, and its
        /// verified sessions refused (the two-step sign-up).
        case domain
    }

    /// Assigned by the store (0 until stored).
    public var id: Int64
    public var kind: Kind
    /// The canonical value: `203.0.113.7`, `203.0.113.0/24`, a key id, a session id.
    public var value: String
    public var reason: String
    public var createdAt: Int64
    /// Unix seconds; nil: until removed.
    public var expiresAt: Int64?
    /// Who added it: an admin token's name, `cli`, or `auto:<rule>`.
    public var createdBy: String

    public init(id: Int64 = 0, kind: Kind, value: String, reason: String, createdAt: Int64, expiresAt: Int64?, createdBy: String) {
        self.id = id
        self.kind = kind
        self.value = value
        self.reason = reason
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.createdBy = createdBy
    }

    public func isActive(at now: Int64) -> Bool { expiresAt.map { $0 > now } ?? true }

    /// The canonical form of `value` for `kind`, or why it is not acceptable: exactly what the admin
    /// API's schema describes (no surrounding spaces, no zone ids). A network's host bits are
    /// cleared (`203.0.113.9/24` is `203.0.113.0/24`).
    public static func canonical(kind: Kind, value: String) -> Result<String, BanValueError> {
        let plainText = !value.contains("%") && !(value.contains(":") && value.contains("."))  // no zone ids, no IPv4 tails
        let prefixText = value.split(separator: "/").dropFirst().first
        let plainPrefix = prefixText.map { $0 == "0" || !$0.hasPrefix("0") } ?? true
        switch kind {
        case .address:
            guard !value.contains("/"), plainText, let bytes = IPAddress.parse(value), let key = ClientKey(address: bytes) else {
                return .failure(BanValueError("must be one IPv4 or IPv6 address, e.g. 203.0.113.7"))
            }
            return .success(key.description)
        case .prefix:
            guard value.contains("/"), plainText, plainPrefix, let cidr = CIDR(value) else {
                return .failure(BanValueError("must be a network in CIDR form, e.g. 203.0.113.0/24 or 2001:db8::/48"))
            }
            return .success(ClientKey(cidr: cidr).description)
        case .key:
            guard (4...64).contains(value.utf8.count), value.utf8.allSatisfy({ $0 < 0x80 && (Character(Unicode.Scalar($0)).isLetter || Character(Unicode.Scalar($0)).isNumber) }) else {
                return .failure(BanValueError("must be an API key id (4 to 64 letters and digits), as `tollgate keys list` shows it"))
            }
            return .success(value)
        case .session:
            guard (8...128).contains(value.utf8.count),
                  value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: ",") }) else {
                return .failure(BanValueError("must be a session id (8 to 128 printable characters)"))
            }
            return .success(value)
        case .domain:
            let lowered = value.lowercased()
            guard value.allSatisfy(\.isASCII), EmailAddress.isHostname(Array(lowered.utf8)) else {
                return .failure(BanValueError("must be a domain name, e.g. mail.example.com"))
            }
            return .success(lowered)
        }
    }
}

public struct BanValueError: Error, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
}

/// The bans in force at one moment, immutable: networks (addresses are `/32`/`/128` networks) in an
/// ``AddressSet``, keys and sessions in dictionaries. An entry that expires stays until the next
/// snapshot but no longer matches.
public struct BanList: Sendable {
    public private(set) var networks = AddressSet<Ban>()
    public private(set) var keys: [String: Ban] = [:]
    public private(set) var sessions: [String: Ban] = [:]
    public private(set) var domains: [String: Ban] = [:]

    public init(_ bans: [Ban] = []) {
        for ban in bans { add(ban) }
    }

    public var isEmpty: Bool { networks.isEmpty && keys.isEmpty && sessions.isEmpty && domains.isEmpty }
    public var count: Int { networks.count + keys.count + sessions.count + domains.count }

    public mutating func add(_ ban: Ban) {
        switch ban.kind {
        case .address, .prefix:
            if let network = Self.network(ban.value) { networks.insert(network, ban) }
        case .key: keys[ban.value] = ban
        case .session: sessions[ban.value] = ban
        case .domain: domains[ban.value] = ban
        }
    }

    /// The ban on `address` (a whole address) or a network holding it, if active at `now`.
    public func ban(address: ClientKey, now: Int64) -> Ban? {
        guard let ban = networks.lookup(address), ban.isActive(at: now) else { return nil }
        return ban
    }

    public func ban(key id: String, now: Int64) -> Ban? {
        guard let ban = keys[id], ban.isActive(at: now) else { return nil }
        return ban
    }

    public func ban(session: String, now: Int64) -> Ban? {
        guard let ban = sessions[session], ban.isActive(at: now) else { return nil }
        return ban
    }

    /// The active ban on `domain` or a parent domain of it.
    public func ban(domain: String, now: Int64) -> Ban? {
        var rest = Substring(domain)
        while true {
            if let ban = domains[String(rest)], ban.isActive(at: now) { return ban }
            guard let dot = rest.firstIndex(of: ".") else { return nil }
            rest = rest[rest.index(after: dot)...]
        }
    }

    static func network(_ canonical: String) -> ClientKey? {
        if canonical.contains("/") { return CIDR(canonical).map(ClientKey.init(cidr:)) }
        return IPAddress.parse(canonical).flatMap { ClientKey(address: $0) }
    }
}
