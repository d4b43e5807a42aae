import Crypto
import Foundation
import Synchronization

/// Self-hosted proof-of-work challenges in ALTCHA's format, so its widget works too.
///
/// A challenge is `{algorithm: "SHA-256", challenge, salt, maxnumber, signature}` where
/// `challenge = SHA-256(salt + number)` for a secret random `number ≤ maxnumber`, and `signature =
/// HMAC-SHA256(key, challenge)`. The client searches for `number` and sends it back with the other
/// fields. The salt carries, in its query part, the expiry and what the challenge is bound to (the
/// route and the client); since the challenge hash covers the salt and the signature covers the
/// challenge, no field can be changed or moved to another challenge (the splice of CVE-2025-68113).
/// Verification is O(1): one hash, one HMAC. A solved challenge is accepted once.
public final class ProofOfWork: Sendable {
    public struct Config: Sendable, Equatable {
        public var key: String
        public var expires: Duration
        /// Difficulty (maxnumber) for a client within the soft rate; it doubles per step of load.
        public var baseDifficulty: Int
        public var maxDifficulty: Int

        public init(key: String, expires: Duration, baseDifficulty: Int, maxDifficulty: Int) {
            self.key = key
            self.expires = expires
            self.baseDifficulty = baseDifficulty
            self.maxDifficulty = maxDifficulty
        }
    }

    public let config: Config
    private let key: SymmetricKey
    /// Solved challenges until they expire (Unix seconds); full → further solutions refused.
    private let used: Mutex<BoundedTable<String, Int64>>
    static let maxTracked = 1_000_000

    private let journal: (any UseJournal)?
    /// Solutions to tell the other gateways of a cluster (nil: one gateway).
    public let shared: SharedUses?
    /// The prefix of a solved challenge in ``SharedUses``.
    public static let sharedPrefix = "pow:"

    /// With a journal, solved challenges stay refused across restarts.
    public init(config: Config, secret: String, journal: (any UseJournal)? = nil, nowSeconds: Int64 = 0, shared: SharedUses? = nil) {
        self.shared = shared
        self.config = config
        self.key = SymmetricKey(data: Data(secret.utf8))
        self.journal = journal
        var table = BoundedTable<String, Int64>(capacity: Self.maxTracked, sweepInterval: 1)
        for entry in (try? journal?.solvedChallenges(nowSeconds: nowSeconds)) ?? [] {
            _ = table.insert(entry.challenge, entry.expiresSeconds, now: nowSeconds) { $0 + 1 }
        }
        used = Mutex(table)
    }

    /// A new challenge for `route` and `client` at difficulty `maxNumber`.
    public func challenge(route: String, client: String, maxNumber: Int, nowSeconds: Int64) -> JSONValue {
        let expires = nowSeconds + config.expires.components.seconds
        let random = Data((0..<12).map { _ in UInt8.random(in: 0...255) }).hex
        let salt = "\(random)?expires=\(expires)&route=\(PercentEncoding.encode(route))&client=\(Self.clientTag(client))&"
        let number = Int.random(in: 0...maxNumber)
        let challenge = Data(SHA256.hash(data: Data((salt + String(number)).utf8))).hex
        return .object([
            JSONMember("algorithm", .string("SHA-256")),
            JSONMember("challenge", .string(challenge)),
            JSONMember("maxnumber", .number(String(maxNumber))),
            JSONMember("salt", .string(salt)),
            JSONMember("signature", .string(Data(HMAC<SHA256>.authenticationCode(for: Data(challenge.utf8), using: key)).hex)),
        ])
    }

    public enum Refusal: String, Sendable, Equatable {
        case malformed = "solution-malformed"
        case wrong = "solution-wrong"
        case expired = "challenge-expired"
        case otherRoute = "challenge-other-route"
        case replayed = "solution-replayed"
    }

    /// Checks a solution (base64 of the JSON the client sends back), and remembers it as used.
    public func verify(_ encoded: String, route: String, client: String, nowSeconds: Int64) -> Refusal? {
        guard encoded.utf8.count < 2048, let data = Data(base64Encoded: encoded),
              case .object? = try? JSONParser.parse(Array(data)), let json = try? JSONParser.parse(Array(data)),
              json["algorithm"] == .string("SHA-256"),
              case .string(let challenge)? = json["challenge"], case .string(let salt)? = json["salt"],
              case .string(let signature)? = json["signature"], case .number(let numberText)? = json["number"],
              let number = Int(numberText), number >= 0 else { return .malformed }
        guard Data(SHA256.hash(data: Data((salt + String(number)).utf8))).hex == challenge,
              let mac = Data(hex: signature),
              HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(challenge.utf8), using: key) else { return .wrong }
        let params = Self.params(salt)
        guard let expires = params["expires"].flatMap({ Int64($0) }) else { return .malformed }
        guard expires >= nowSeconds else { return .expired }
        guard params["route"] == PercentEncoding.encode(route), params["client"] == Self.clientTag(client) else { return .otherRoute }
        let refusal = used.withLock { table -> Refusal? in
            if table[challenge] != nil { return .replayed }
            // Valid through its `expires` second; a full table refuses (fail closed), in O(1).
            return table.insert(challenge, expires, now: nowSeconds) { $0 + 1 } ? nil : .replayed
        }
        if refusal == nil {
            journal?.recordSolved(challenge: challenge, expiresSeconds: expires)
            shared?.record(Self.sharedPrefix + challenge)
        }
        return refusal
    }

    /// A challenge another gateway accepted a solution of (from ``SharedUses``): refused here from now
    /// on, for as long as a challenge can be valid.
    public func addRemoteSolution(_ item: String, nowSeconds: Int64) {
        guard item.hasPrefix(Self.sharedPrefix) else { return }
        let challenge = String(item.dropFirst(Self.sharedPrefix.count))
        guard challenge.utf8.count == 64 else { return }
        used.withLock { table in
            if table[challenge] == nil { _ = table.insert(challenge, nowSeconds + config.expires.components.seconds, now: nowSeconds) { $0 + 1 } }
        }
    }

    /// A short, non-reversible tag of the client key (the salt is visible to the client).
    static func clientTag(_ client: String) -> String {
        Data(SHA256.hash(data: Data(("client:" + client).utf8))).prefix(6).hex
    }

    static func params(_ salt: String) -> [String: String] {
        guard let q = salt.firstIndex(of: "?") else { return [:] }
        var out: [String: String] = [:]
        for pair in salt[salt.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            // A repeated parameter is a splice attempt: keep the first, and the check above fails.
            if kv.count == 2, out[String(kv[0])] == nil { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    /// Difficulty for a client whose recent load is `level` steps over the soft rate:
    /// `base × 2^level`, at most `maxDifficulty`.
    public func difficulty(level: Int) -> Int {
        let shifted = config.baseDifficulty << min(max(0, level), 30)
        return min(config.maxDifficulty, max(config.baseDifficulty, shifted))
    }
}
