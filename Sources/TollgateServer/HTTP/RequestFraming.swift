import NIOHTTP1
import TollgateCore
import TollgateRequestHTTP

/// The RFC 9112 request rules that need the whole head, checked on every request head (HTTP/1.1
/// from ``RequestDecoder``, HTTP/2 streams too) before anything else. Each violation is answered
/// and the connection closed: after a framing fault nothing later on the connection can be trusted
/// to start where it seems to. The decoder reads nothing after a head whose framing it refuses and
/// relies on this answering it (`RequestDecoderTests` checks every such head gets a violation).
///
/// | rule | answer |
/// |---|---|
/// | HTTP/1.1 without `Host`, two `Host` lines, or an invalid `Host` value (§3.2) | 400 |
/// | HTTP/1.0 with `Transfer-Encoding` (§6.1: framing is faulty, even with a Content-Length) | 400 |
/// | a transfer coding other than `chunked` before the final `chunked` (§6.1: `gzip, chunked`) | 501 |
/// | `Content-Length` and `Transfer-Encoding` together (§6.1) | 400 |
/// | a request target over 8 KiB (§3) | 414 |
enum RequestFraming {
    static let maxTargetBytes = 8 * 1024

    /// Whether the connection may carry another request after `head`: ``ConnectionOptions``' rule,
    /// the one ``RequestDecoder`` stops reading by (never on HTTP/2, whose streams end alone). One
    /// pass over the fields, nothing allocated (NIO's `isKeepAlive` split a `Connection` value into
    /// arrays on every head our decoder builds: three allocations per browser request).
    static func keepsConnection(_ head: HTTPRequestHead) -> Bool {
        guard head.version.major == 1 else { return false }
        var connection = ConnectionOptions()
        var upgrade = false
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 7 where name.lowercased() == "upgrade":
                upgrade = true
            case 10 where name.lowercased() == "connection":
                var value = value
                value.withUTF8 { connection.read(UnsafeRawBufferPointer($0)) }
            default:
                break
            }
        }
        return connection.keepConnection(minor: head.version.minor, upgrade: upgrade)
    }

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

    /// `uri-host [ ":" port ]` (RFC 3986, ``HostSyntax``). Empty is allowed (an authority without a host).
    static func isValidHost(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { HostSyntax.isValid(UnsafeRawBufferPointer($0)) }
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
