import Crypto
import Foundation

/// Signs and checks verification links, and names addresses by keyed hash.
///
/// A link token is `v1.<key id>.<payload>.<mac>` (base64url), the MAC an HMAC-SHA256 over the rest
/// with the current signing key (earlier keys still verify, for rotation). The payload is the issue
/// time (8 bytes, Unix ms), a random nonce (12, for single use), a hash binding it to the page
/// session that asked (16), the address hash (16) and the domain in clear: the link carries what the
/// session becomes verified as, so nothing is stored per link until it is used.
public struct VerificationLinks: Sendable {
    /// What a valid link stands for.
    public struct Link: Sendable, Equatable {
        public let nonce: Data
        public let issuedMillis: Int64
        public let email: VerifiedEmail
    }

    /// Why a link is not accepted. `forged` covers every malformed or unsigned token.
    public enum Refusal: String, Error, Sendable, Equatable {
        case forged = "link-invalid"
        case expired = "link-expired"
        case otherSession = "link-other-session"
        case used = "link-used"
        /// The gateway cannot remember more confirmations right now (its table is full of live ones).
        case full = "link-unavailable"
    }

    private let keys: [(id: String, key: SymmetricKey)]
    private let hashKey: SymmetricKey
    public let ttlMillis: Int64

    /// `secrets` must hold the config's keys and hash key; missing ones are left out (the loader
    /// reports them first).
    public init(config: VerificationConfig, secrets: [String: String]) {
        keys = config.keys.compactMap { name in
            secrets[name].map { (String(Data(SHA256.hash(data: Data(("verify:" + name).utf8))).prefix(3).base64URL),
                                 SymmetricKey(data: Data($0.utf8))) }
        }
        hashKey = SymmetricKey(data: Data((secrets[config.hashKey] ?? "").utf8))
        ttlMillis = config.linkTTL.milliseconds
    }

    /// The stored name of an address: `e-` and 22 base64url characters of an HMAC of its normalized
    /// form. Stable while the hash key is; not reversible without it.
    public func addressHash(_ address: EmailAddress) -> String {
        "e-" + Data(HMAC<SHA256>.authenticationCode(for: Data(("email\u{0}" + address.normalized).utf8), using: hashKey))
            .prefix(16).base64URL
    }

    /// A link token for `address`, asked for by page session `session` (the cookie value).
    public func issue(for address: EmailAddress, session: String, nowMillis: Int64) -> String {
        var payload = Data()
        withUnsafeBytes(of: nowMillis.bigEndian) { payload.append(contentsOf: $0) }
        payload.append(contentsOf: (0..<12).map { _ in UInt8.random(in: 0...255) })
        payload.append(Self.binding(session))
        payload.append(Data(base64URL: addressHash(address).dropFirst(2)) ?? Data(count: 16))
        payload.append(Data(address.domain.utf8))
        let (id, key) = keys[0]
        let signed = "v1.\(id).\(payload.base64URL)"
        return signed + "." + Data(HMAC<SHA256>.authenticationCode(for: Data(signed.utf8), using: key)).base64URL
    }

    /// Checks a token opened by `session` (nil: the browser has no issued session) at `nowMillis`.
    /// Single use is the caller's part (``VerifiedSessions/confirm(_:session:verifiedFor:nowMillis:)``).
    public func check(_ token: String, session: String?, nowMillis: Int64) -> Result<Link, Refusal> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= 600, parts.count == 4, parts[0] == "v1",
              let key = keys.first(where: { $0.id == parts[1] })?.key,
              let payload = Data(base64URL: parts[2]), payload.count > 52, payload.count <= 52 + 253,
              let mac = Data(base64URL: parts[3]),
              HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data("v1.\(parts[1]).\(parts[2])".utf8), using: key),
              let domain = String(data: payload.suffix(from: payload.startIndex + 52), encoding: .utf8)
        else { return .failure(.forged) }
        let issued = payload.prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
        guard nowMillis - issued <= ttlMillis, nowMillis >= issued - 60_000 else { return .failure(.expired) }
        let start = payload.startIndex
        guard let session, ConstantTime.equal(payload[(start + 20)..<(start + 36)], Self.binding(session)) else {
            return .failure(.otherSession)
        }
        let hash = "e-" + Data(payload[(start + 36)..<(start + 52)]).base64URL
        return .success(Link(nonce: Data(payload[(start + 8)..<(start + 20)]), issuedMillis: issued,
                             email: VerifiedEmail(addressHash: hash, domain: domain, untilMillis: 0)))
    }

    static func binding(_ session: String) -> Data {
        Data(SHA256.hash(data: Data(("verify-session\u{0}" + session).utf8))).prefix(16)
    }
}

/// The verified address a session stands for: its keyed hash, its domain, and until when.
public struct VerifiedEmail: Sendable, Equatable {
    public var addressHash: String
    public var domain: String
    /// Unix milliseconds.
    public var untilMillis: Int64

    public init(addressHash: String, domain: String, untilMillis: Int64) {
        self.addressHash = addressHash
        self.domain = domain
        self.untilMillis = untilMillis
    }
}
