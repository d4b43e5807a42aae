import Crypto
import Foundation

/// The text of a key Tollgate issues: `tg_live_<id>_<secret><check>` for API keys and
/// `tg_inst_<id>_<secret><check>` for per-install client keys.
///
/// - `id`: 12 base62 characters, public; the store looks the key up by it and lists show it.
/// - `secret`: 22 base62 characters from the system's secure random source (≥ 130 bits).
/// - `check`: 6 base62 characters of CRC-32 over everything before it, so a mistyped or truncated
///   key is refused without a store lookup, and a secret scanner can tell a real key from noise.
///
/// Only a keyed hash of the whole text is stored (``APIKeyHasher``); the text is shown once.
public struct APIKeyText: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case api
        case install
        /// An operator's admin-API token (`tollgate admin-tokens create`).
        case admin

        public var prefix: String {
            switch self {
            case .api: "tg_live_"
            case .install: "tg_inst_"
            case .admin: "tg_adm_"
            }
        }
    }

    public let kind: Kind
    public let id: String
    public let text: String

    static let idLength = 12
    static let secretLength = 22
    static let checkLength = 6
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A new random key of `kind`.
    public static func generate(_ kind: Kind) -> APIKeyText {
        let id = randomBase62(idLength)
        let body = kind.prefix + id + "_" + randomBase62(secretLength)
        let text = body + base62(crc32(Array(body.utf8)), width: checkLength)
        return APIKeyText(kind: kind, id: id, text: text)
    }

    /// Parses `text`; nil unless it has a known prefix, the exact shape and a matching checksum.
    public init?(parsing text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        let kinds = Kind.allCases
        guard let kind = kinds.first(where: { utf8.starts(with: $0.prefix.utf8) }) else { return nil }
        let p = kind.prefix.utf8.count
        guard utf8.count == p + Self.idLength + 1 + Self.secretLength + Self.checkLength,
              utf8[p + Self.idLength] == UInt8(ascii: "_") else { return nil }
        let idBytes = utf8[p..<(p + Self.idLength)]
        let rest = utf8[(p + Self.idLength + 1)...]
        guard idBytes.allSatisfy(Self.isBase62), rest.allSatisfy(Self.isBase62) else { return nil }
        let checked = utf8.count - Self.checkLength
        guard Self.base62(Self.crc32(utf8[..<checked]), width: Self.checkLength).utf8.elementsEqual(utf8[checked...]) else { return nil }
        self.init(kind: kind, id: String(decoding: idBytes, as: UTF8.self), text: String(text))
    }

    private init(kind: Kind, id: String, text: String) {
        self.kind = kind
        self.id = id
        self.text = text
    }

    static func isBase62(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }

    /// Uniform base62 characters by rejection sampling (bytes ≥ 248 are drawn again).
    static func randomBase62(_ count: Int) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var rng = SystemRandomNumberGenerator()
        while out.count < count {
            let b = UInt8.random(in: 0...255, using: &rng)
            if b < 248 { out.append(alphabet[Int(b % 62)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func base62(_ value: UInt32, width: Int) -> String {
        var v = UInt64(value)
        var out = [UInt8](repeating: alphabet[0], count: width)
        for i in stride(from: width - 1, through: 0, by: -1) {
            out[i] = alphabet[Int(v % 62)]
            v /= 62
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (IEEE 802.3), as zlib computes it.
    static func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = crcTable[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

/// The keyed hash keys and client secrets are stored as: HMAC-SHA256 under a secret that lives
/// outside the store (`identity.key_hash_secret`), so a copy of the database alone cannot be used
/// to test guesses offline. Comparison is in constant time.
public struct APIKeyHasher: Sendable {
    /// The HMAC with its key already absorbed: each hash copies it instead of redoing the key
    /// schedule (measured: the key set-up was half the cost of checking a key).
    private let keyed: HMAC<SHA256>

    public init(secret: String) {
        keyed = HMAC<SHA256>(key: SymmetricKey(data: SHA256.hash(data: Data(("tollgate-key-hash:" + secret).utf8))))
    }

    public func hash(_ text: String) -> [UInt8] {
        var mac = keyed
        var text = text
        text.withUTF8 { mac.update(data: UnsafeRawBufferPointer($0)) }
        return Array(mac.finalize())
    }

    /// Whether `text` hashes to `stored`, in time independent of where they differ.
    public func matches(_ text: String, _ stored: [UInt8]) -> Bool {
        ConstantTime.equal(hash(text), stored)
    }
}
