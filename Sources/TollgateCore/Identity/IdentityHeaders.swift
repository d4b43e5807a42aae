import Crypto
import Foundation

/// The caller's identity as the upstream sees it: `X-Tollgate-Auth` (the method), `-Subject`,
/// `-Key-Id`, `-Client-Id`, `-Scopes` and `-Roles`, each value with bytes outside visible ASCII (and `%`)
/// percent-encoded, so nothing a token carries can break a header line or add one. The client's own headers of these names never reach the
/// upstream: a route cannot forward them (config error), and the upstream request is built from
/// scratch.
///
/// With `identity.header_signing_secret`, `X-Tollgate-Identity-Signature: t=<unix>,v1=<hex>` is
/// HMAC-SHA256 over `t`, the request id and the header values, one per line in the order above,
/// so an upstream reachable by others can tell these headers came from the gateway.
public struct IdentityHeaders: Sendable {
    private let key: SymmetricKey?

    public init(signingSecret: String?) {
        key = signingSecret.map { SymmetricKey(data: Data($0.utf8)) }
    }

    public static func values(_ caller: Caller) -> [(String, String)] {
        var out = [("X-Tollgate-Auth", caller.method.rawValue), ("X-Tollgate-Subject", Self.headerSafe(caller.subject))]
        if let id = caller.keyID { out.append(("X-Tollgate-Key-Id", id)) }
        if let id = caller.clientID { out.append(("X-Tollgate-Client-Id", Self.headerSafe(id))) }
        out.append(("X-Tollgate-Scopes", caller.scopes.map(Self.headerSafe).joined(separator: " ")))
        out.append(("X-Tollgate-Roles", caller.roles.map(Self.headerSafe).joined(separator: " ")))
        return out
    }

    /// Visible ASCII stays as it is; `%`, spaces, controls and non-ASCII bytes become `%XX`.
    public static func headerSafe(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: "%") }) else { return text }
        var out = ""
        for b in text.utf8 {
            if b > 0x20, b < 0x7F, b != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "%" + Hex.encode([b]).uppercased()
            }
        }
        return out
    }

    /// The text signed for `values` (also what an upstream recomputes).
    public static func signedText(_ values: [(String, String)], requestID: String, time: Int64) -> String {
        ([String(time), requestID] + values.map { "\($0.0.lowercased()):\($0.1)" }).joined(separator: "\n")
    }

    func render<Sink: TextSink>(_ caller: Caller, requestID: String, now: Int64, into head: inout Sink) {
        let values = Self.values(caller)
        for (name, value) in values {
            head.append(name)
            head.append(": ")
            head.append(value)
            head.append("\r\n")
        }
        if let key {
            let mac = HMAC<SHA256>.authenticationCode(for: Data(Self.signedText(values, requestID: requestID, time: now).utf8), using: key)
            head.append("X-Tollgate-Identity-Signature: t=\(now),v1=\(Hex.encode(mac))\r\n")
        }
    }
}
