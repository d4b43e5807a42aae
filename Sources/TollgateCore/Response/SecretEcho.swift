#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds a route's injected secret in bytes about to reach the client.
///
/// A paid API that echoes the request (a `request` or `debug` member, a header that repeats the
/// target) would hand the key to the page. Every relayed response — body after projection, content
/// type and passed headers — is searched for each form in which the secret left the gateway or may
/// come back: its raw value, percent-encoded (upper- and lower-case hex), the Basic credential in
/// base64, and each of those as a JSON string body would hold it (escaped quotes, `\/`). A hit
/// means the response is refused whole; what was found is never logged, only where.
///
/// Cost: one substring search per form over bytes the gateway already holds; forms are built once per route.
/// A secret shorter than a few bytes could match ordinary text and make a route answer 502; keys of
/// paid APIs are long and random, so that is accepted rather than weakening the check.
public struct SecretEcho: Sendable {
    /// Byte strings that must never reach a client, longest first.
    public let forms: [[UInt8]]

    /// The forms of `secret` as injected by `auth`.
    public init(secret: String, auth: UpstreamAuth) {
        var base: [String] = [secret]
        let encoded = PercentEncoding.encode(secret)
        base.append(encoded)
        base.append(Self.lowercasingEscapes(encoded))
        if case .basic(let user, _) = auth {
            base.append(Base64.encode(Array("\(user):\(secret)".utf8)))
        }
        var all: [String] = []
        for form in base {
            var quoted = ""
            JSONValue.writeString(form, into: &quoted)
            let escaped = String(quoted.dropFirst().dropLast())
            for variant in [form, escaped, escaped.replacingAll("/", with: "\\/")] where !variant.isEmpty && !all.contains(variant) {
                all.append(variant)
            }
        }
        forms = all.sorted { $0.utf8.count > $1.utf8.count }.map { Array($0.utf8) }
    }

    /// True when any form of the secret occurs in `bytes`.
    public func occurs(in bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return false }
        for form in forms where form.count <= bytes.count {
            let hit = form.withUnsafeBytes { needle in Self.find(needle, in: base, count: bytes.count) }
            if hit { return true }
        }
        return false
    }

    /// `memmem` (a GNU extension Swift's Glibc module does not expose) from `memchr` and `memcmp`.
    private static func find(_ needle: UnsafeRawBufferPointer, in base: UnsafeRawPointer, count: Int) -> Bool {
        let n = needle.count
        let first = Int32(needle[0])
        var start = 0
        while count - start >= n {
            guard let candidate = memchr(base + start, first, count - start - n + 1) else { return false }
            if memcmp(candidate, needle.baseAddress!, n) == 0 { return true }
            start = base.distance(to: UnsafeRawPointer(candidate)) + 1
        }
        return false
    }

    /// True when any form of the secret occurs in `text`.
    public func occurs(in text: String) -> Bool {
        var copy = text
        return copy.withUTF8 { occurs(in: UnsafeRawBufferPointer($0)) }
    }

    /// `%2F` → `%2f`: some servers re-encode what they echo with lower-case hex.
    private static func lowercasingEscapes(_ s: String) -> String {
        var out: [UInt8] = []
        var afterPercent = 0
        for b in s.utf8 {
            if b == UInt8(ascii: "%") {
                afterPercent = 2
                out.append(b)
            } else if afterPercent > 0 {
                afterPercent -= 1
                out.append(b >= 0x41 && b <= 0x46 ? b | 0x20 : b)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
