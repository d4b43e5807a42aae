import NIOHTTP1
import TollgateCore

/// The RFC 9112 request rules NIO's decoder leaves to the server, checked on every request head
/// before anything else. Each violation is answered and the connection closed: after a framing
/// fault nothing later on the connection can be trusted to start where it seems to.
///
/// | rule | answer |
/// |---|---|
/// | HTTP/1.1 without `Host`, two `Host` lines, or an invalid `Host` value (§3.2) | 400 |
/// | HTTP/1.0 with `Transfer-Encoding` (§6.1: framing is faulty, even with a Content-Length) | 400 |
/// | a transfer coding other than `chunked` (§6.1; NIO passes `gzip, chunked` through) | 501 |
/// | `Content-Length` and `Transfer-Encoding` together (§6.1; NIO refuses most forms too) | 400 |
/// | a request target over 8 KiB (§3) | 414 |
enum RequestFraming {
    static let maxTargetBytes = 8 * 1024

    /// The answer a head that breaks a rule gets, with a note for the log; nil when it is fine.
    static func violation(_ head: HTTPRequestHead) -> (problem: Problem, note: String)? {
        if head.uri.utf8.count > maxTargetBytes {
            return (.uriTooLong, "request target of \(head.uri.utf8.count) bytes")
        }
        // One pass over the fields, nothing allocated unless a rule is broken.
        var hosts = 0
        var host: String?
        var transferEncoding = false
        var unknownCoding: Substring?
        var contentLength = false
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where name.lowercased() == "host":
                hosts += 1
                host = value
            case 14 where name.lowercased() == "content-length":
                contentLength = true
            case 17 where name.lowercased() == "transfer-encoding":
                transferEncoding = true
                for coding in value.split(separator: ",") where unknownCoding == nil && coding.trimmingWhitespace().lowercased() != "chunked" {
                    unknownCoding = coding
                }
            default:
                break
            }
        }
        if head.version.major == 1, head.version.minor >= 1, hosts == 0 { return (.badRequest, "no Host header") }
        if hosts > 1 { return (.badRequest, "\(hosts) Host headers") }
        if let host, !isValidHost(host) { return (.badRequest, "invalid Host header") }
        guard transferEncoding else { return nil }
        if head.version.major == 1, head.version.minor == 0 { return (.badRequest, "HTTP/1.0 request with Transfer-Encoding") }
        if contentLength { return (.badRequest, "both Content-Length and Transfer-Encoding") }
        if let coding = unknownCoding {
            return (.notImplemented, "transfer coding \(coding.trimmingWhitespace().prefix(32)) not supported")
        }
        return nil
    }

    /// `uri-host [ ":" port ]` (RFC 3986): a reg-name or IPv4 address, or an IP literal in
    /// brackets, then optional digits. Empty is allowed (an authority without a host).
    static func isValidHost(_ value: String) -> Bool {
        var value = value
        return value.withUTF8(isValidHost(bytes:))
    }

    /// ``isValidHost(_:)`` over the value's bytes (it runs on every request: no `Character` walks).
    private static func isValidHost(bytes b: UnsafeBufferPointer<UInt8>) -> Bool {
        var end = b.count
        if b.first == UInt8(ascii: "[") {
            guard let close = b.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
            for i in 1..<close where !(isHexDigit(b[i]) || b[i] == UInt8(ascii: ":") || b[i] == UInt8(ascii: ".")) {
                return false
            }
            return close + 1 == b.count || isPort(b, from: close + 1)
        }
        if let colon = b.lastIndex(of: UInt8(ascii: ":")) {
            guard isPort(b, from: colon) else { return false }
            end = colon
        }
        for i in 0..<end where !isRegNameByte(b[i]) { return false }
        return true
    }

    /// `":" *5DIGIT` from `start` to the end.
    private static func isPort(_ b: UnsafeBufferPointer<UInt8>, from start: Int) -> Bool {
        guard start < b.count, b[start] == UInt8(ascii: ":"), b.count - start - 1 <= 5 else { return false }
        for i in (start + 1)..<b.count where !(b[i] >= 0x30 && b[i] <= 0x39) { return false }
        return true
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
    }

    /// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2).
    private static func isRegNameByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"): true
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="): true
        default: false
        }
    }

    /// The path and query of an absolute-form target (`http://authority/path?query`, §3.2.2), which
    /// a server must accept; its authority is not used (routes match on the path alone). Nil when
    /// `uri` is not absolute-form.
    static func originForm(ofAbsolute uri: String) -> Substring? {
        let lower = uri.prefix(8).lowercased()
        let schemeLength: Int
        if lower.hasPrefix("http://") { schemeLength = 7 } else if lower.hasPrefix("https://") { schemeLength = 8 } else { return nil }
        let afterScheme = uri.index(uri.startIndex, offsetBy: schemeLength)
        let rest = uri[afterScheme...]
        guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let authority = rest[..<slash]
        guard !authority.isEmpty, isValidHost(String(authority)) else { return nil }
        return rest[slash] == "/" ? rest[slash...] : Substring("/" + rest[slash...])
    }
}

extension Problem {
    static let uriTooLong = Problem(status: 414, code: "uri-too-long", title: "URI Too Long",
                                    detail: "The request target is longer than the gateway accepts.")
    static let notImplemented = Problem(status: 501, code: "not-implemented", title: "Not Implemented",
                                        detail: "The request uses a transfer coding the gateway does not support.")
}
