import Crypto
import Foundation
import Synchronization

/// Page-load tokens: what a page gets when it loads and must show with each API call.
///
/// A token is `v1.<key id>.<payload>.<mac>` (base64url), the MAC an HMAC-SHA256 over the rest with
/// the current signing key; during a key rotation tokens signed with the previous key are still
/// accepted. The payload holds the issue time, a random nonce (for use counting) and hashes of what
/// the token is bound to: the session cookie the gateway set, and optionally the client's address
/// prefix and user agent. A token is accepted only between `min_age` (a script must wait like a
/// page) and `max_age`, at most `max_uses` times.
public final class PageTokens: Sendable {
    public struct Config: Sendable, Equatable {
        /// Secret names; the first signs, all verify (rotation).
        public var keys: [String]
        public var path: String
        public var minAge: Duration
        public var maxAge: Duration
        public var maxUses: Int
        public var bindAddress: Bool
        public var bindUserAgent: Bool
        public var cookie: String
        /// Most token nonces tracked for use counting; beyond it new tokens are refused (fail closed).
        public var maxTracked: Int
        /// How many tokens one client address may get (GCRA, burst = the count).
        public var issueRate: Rate = Rate("30/min")!

        public init(keys: [String], path: String, minAge: Duration, maxAge: Duration, maxUses: Int,
                    bindAddress: Bool, bindUserAgent: Bool, cookie: String, maxTracked: Int) {
            self.keys = keys
            self.path = path
            self.minAge = minAge
            self.maxAge = maxAge
            self.maxUses = maxUses
            self.bindAddress = bindAddress
            self.bindUserAgent = bindUserAgent
            self.cookie = cookie
            self.maxTracked = maxTracked
        }
    }

    /// Why a token was refused. Codes are deliberately coarse: a forger learns only "invalid".
    public enum Refusal: String, Sendable, Equatable {
        case missing = "token-missing"
        case invalid = "token-invalid"
        case tooYoung = "token-too-young"
        case expired = "token-expired"
        case usedUp = "token-used-up"
    }

    public let config: Config
    private let keys: [(id: String, key: SymmetricKey)]
    /// Uses per token nonce (milliseconds); bounded by `maxTracked`, full → new tokens refused.
    private let uses: Mutex<BoundedTable<Data, (count: Int, expires: Int64)>>
    private let journal: (any UseJournal)?
    /// Uses to tell the other gateways of a cluster (nil: one gateway).
    public let shared: SharedUses?
    /// The prefix of a token use in ``SharedUses``.
    public static let sharedPrefix = "token:"

    /// `secrets` must hold every name in `config.keys`. With a journal, use counts survive restarts.
    public init(config: Config, secrets: [String: String], journal: (any UseJournal)? = nil, nowMillis: Int64 = 0,
                shared: SharedUses? = nil) {
        self.shared = shared
        self.config = config
        self.keys = config.keys.compactMap { name in
            secrets[name].map { (Self.keyID(name), SymmetricKey(data: Data($0.utf8))) }
        }
        self.journal = journal
        var table = BoundedTable<Data, (count: Int, expires: Int64)>(capacity: config.maxTracked, sweepInterval: 100)
        for entry in (try? journal?.tokenUses(nowMillis: nowMillis)) ?? [] {
            _ = table.insert(entry.nonce, (entry.uses, entry.expiresMillis), now: nowMillis) { $0.expires }
        }
        uses = Mutex(table)
    }

    static func keyID(_ name: String) -> String {
        String(Data(SHA256.hash(data: Data(name.utf8))).prefix(3).base64URL)
    }

    /// A new token for a session, at `nowMillis`.
    public func issue(session: String, address: String, userAgent: String, nowMillis: Int64) -> String {
        var payload = Data()
        withUnsafeBytes(of: nowMillis.bigEndian) { payload.append(contentsOf: $0) }
        payload.append(contentsOf: (0..<12).map { _ in UInt8.random(in: 0...255) })
        payload.append(binding(session: session, address: address, userAgent: userAgent))
        let (id, key) = keys[0]
        let signed = "v1.\(id).\(payload.base64URL)"
        return signed + "." + Data(HMAC<SHA256>.authenticationCode(for: Data(signed.utf8), using: key)).base64URL
    }

    /// Checks a token presented with `session` (the cookie), counting a use if it is accepted.
    public func verify(_ token: String?, session: String?, address: String, userAgent: String, nowMillis: Int64) -> Refusal? {
        guard let token, !token.isEmpty else { return .missing }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "v1", token.utf8.count < 512,
              let key = keys.first(where: { $0.id == parts[1] })?.key,
              let payload = Data(base64URL: parts[2]), payload.count == 8 + 12 + 16,
              let mac = Data(base64URL: parts[3]),
              HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data("v1.\(parts[1]).\(parts[2])".utf8), using: key)
        else { return .invalid }
        guard let session, ConstantTime.equal(payload.suffix(16), binding(session: session, address: address, userAgent: userAgent)) else {
            return .invalid
        }
        let issued = payload.prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
        let age = nowMillis - issued
        if age < config.minAge.milliseconds { return .tooYoung }
        if age > config.maxAge.milliseconds { return .expired }
        let nonce = Data(payload[8..<20])
        let expires = issued + config.maxAge.milliseconds
        let counted = uses.withLock { table -> Int? in
            if let entry = table[nonce] {
                guard entry.count < config.maxUses else { return nil }
                table.update(nonce, (entry.count + 1, entry.expires))
                return entry.count + 1
            }
            // A full table of live tokens refuses new ones (fail closed), in O(1).
            return table.insert(nonce, (1, expires), now: nowMillis) { $0.expires } ? 1 : nil
        }
        guard let counted else { return .usedUp }
        journal?.recordTokenUse(nonce: nonce, uses: counted, expiresMillis: expires)
        shared?.record(Self.sharedPrefix + nonce.base64URL)
        return nil
    }

    /// Counts `count` uses another gateway made of the token with `nonce` (from ``SharedUses``): kept
    /// until the longest a token can live from now, since its issue time is not sent.
    public func addRemoteUses(_ item: String, count: Int, nowMillis: Int64) {
        guard item.hasPrefix(Self.sharedPrefix), let nonce = Data(base64URL: item.dropFirst(Self.sharedPrefix.count)),
              nonce.count == 12, count > 0 else { return }
        uses.withLock { table in
            if let entry = table[nonce] {
                table.update(nonce, (entry.count + count, entry.expires))
            } else {
                _ = table.insert(nonce, (count, nowMillis + config.maxAge.milliseconds), now: nowMillis) { $0.expires }
            }
        }
    }

    /// 16 bytes standing for what the token is bound to.
    private func binding(session: String, address: String, userAgent: String) -> Data {
        var text = "s=" + session
        if config.bindAddress { text += "\u{0}a=" + address }
        if config.bindUserAgent { text += "\u{0}u=" + userAgent }
        return Data(SHA256.hash(data: Data(text.utf8))).prefix(16)
    }

    /// A new session id for the cookie: 16 random bytes and a 12-byte MAC of them under the signing
    /// key, so that a session the gateway issued can later be told from an invented one without
    /// storing it (``isIssuedSession(_:)``). Base64url, 38 characters.
    public func newSession() -> String {
        let random = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
        return (random + Self.sessionMAC(random, key: keys[0].key)).base64URL
    }

    /// Whether `cookie` is a session id this gateway issued under one of its current keys. Budgets
    /// and limits per session count only such sessions: any other value is attacker-chosen.
    public func isIssuedSession(_ cookie: String?) -> Bool {
        guard let cookie, cookie.utf8.count == 38, let raw = Data(base64URL: Substring(cookie)), raw.count == 28 else { return false }
        let random = raw.prefix(16)
        let mac = raw.suffix(12)
        return keys.contains { ConstantTime.equal(Self.sessionMAC(random, key: $0.key), mac) }
    }

    private static func sessionMAC(_ random: Data, key: SymmetricKey) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data("tollgate-session\u{0}".utf8) + random, using: key)).prefix(12)
    }
}


extension Data {
    var base64URL: String { Base64URL.encode(self) }

    /// Canonical base64url only (``Base64URL/decode(_:)``): a token has exactly one text that verifies,
    /// so flipping the unused low bits of its last character makes it a forgery, not a second copy.
    init?(base64URL text: Substring) {
        guard let bytes = Base64URL.decode(text.utf8) else { return nil }
        self.init(bytes)
    }
}

/// A short, non-reversible name for a session cookie, for budgets and the ledger (the cookie itself
/// is a credential and is never stored).
public enum SessionTag {
    public static func of(_ cookie: String) -> String {
        "s-" + Data(SHA256.hash(data: Data(("session:" + cookie).utf8))).prefix(9).base64URL
    }
}
