import NIOHPACK
import NIOHTTP1
import TollgateCore
import TollgateUpstreamHTTP

/// The two translations a stream needs, without NIO's HTTP/1 codec in between: its request
/// fields into the `HTTPRequestHead` the gateway reads, and a response straight into HPACK fields
/// (names already lowercase, as RFC 9113 §8.2.1 requires; the codec lowercased each name per
/// response and sent the end of the stream as one more, empty, DATA frame).
enum HTTP2Fields {
    /// The request head of a stream's first HEADERS frame: method, target (`:path`), version 2.0,
    /// and its regular fields, with `host` from `:authority` when the client sent no `host`. Nil —
    /// the stream is reset — when the block is malformed by RFC 9113 §8.2–8.3 (NIOHTTP2's own
    /// check is off: it checked every response too, which the gateway builds valid, and cost 4 % of
    /// an HTTP/2 request):
    /// - pseudo-fields first, each at most once, only `:method`, `:scheme`, `:authority` and
    ///   `:path`; `:method`, `:scheme` and a non-empty `:path` present (so no CONNECT, which the
    ///   gateway does not serve); their values without controls, space or DEL;
    /// - regular field names lowercase tokens, values without NUL, CR or LF (smuggling into the
    ///   upstream's HTTP/1.1 otherwise), no connection-specific field, `te` only as `trailers`.
    static func requestHead(_ block: HPACKHeaders) -> HTTPRequestHead? {
        var method: String?
        var scheme = false
        var path: String?
        var authority: String?
        var regular = false
        var host = false
        var fields: [(String, String)] = []
        fields.reserveCapacity(block.count)
        for (name, value, _) in block {
            if name.utf8.first == UInt8(ascii: ":") {
                guard !regular, isPseudoValue(value) else { return nil }
                switch name {
                case ":method" where method == nil: method = value
                case ":scheme" where !scheme: scheme = true
                case ":path" where path == nil && !value.isEmpty: path = value
                case ":authority" where authority == nil: authority = value
                default: return nil  // repeated, empty :path, :status, :protocol, unknown
                }
            } else {
                regular = true
                guard isRegular(name, value) else { return nil }
                switch name {
                case "te" where value != "trailers": return nil
                case "host": host = true
                default: break
                }
                fields.append((name, value))
            }
        }
        guard let method, scheme, let path else { return nil }
        if !host, let authority { fields.append(("host", authority)) }
        return HTTPRequestHead(version: HTTPVersion(major: 2, minor: 0), method: HTTPMethod(rawValue: method), uri: path,
                               headers: HTTPHeaders(fields))
    }

    /// Whether a trailer block is well-formed: regular fields only, by the rules of a request's.
    static func validTrailers(_ block: HPACKHeaders) -> Bool {
        block.allSatisfy { name, value, _ in name.utf8.first != UInt8(ascii: ":") && isRegular(name, value) }
    }

    /// A regular field RFC 9113 §8.2 allows: a lowercase token name that is not connection-specific
    /// (§8.2.2), a value without NUL, CR or LF (§8.2.1; leading and trailing space are tolerated,
    /// as NIOHTTP2 and browsers do).
    private static func isRegular(_ name: String, _ value: String) -> Bool {
        guard !name.isEmpty, name.utf8.allSatisfy(isLowercaseTokenByte), !value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) else {
            return false
        }
        switch name {
        case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade": return false
        default: return true
        }
    }

    /// `tchar` of RFC 9110 §5.6.2 without the uppercase letters.
    private static func isLowercaseTokenByte(_ byte: UInt8) -> Bool {
        UpstreamResponseParser.isTokenByte(byte) && !(UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// A pseudo-field value: no control byte, space or DEL (each becomes part of the upstream's
    /// request line or `Host`).
    private static func isPseudoValue(_ value: String) -> Bool {
        !value.utf8.contains { $0 <= 0x20 || $0 == 0x7F }
    }

    /// The gateway's own fields for every response, lowercase.
    private static let securityFields = ResponseEncoder.securityFields.map { ($0.0.lowercased(), $0.1) }

    /// The response's fields as ``ResponseEncoder/write(_:problemText:requestID:keepAlive:hsts:into:)``
    /// sends them over HTTP/1.1, in the same order, lowercase, after `:status`, without `Connection`.
    ///
    /// HPACK indexing: every field enters the connection's dynamic table (a value seen again costs
    /// a byte, a name seen again names its entry) except `x-request-id`, whose value is new in every
    /// response: it is indexed on the connection's first response only — which puts its name in
    /// the table — and after that sent as a literal naming that entry, never indexed (RFC 7541
    /// §7.1.3). Indexed every time, request ids filled the 4 KiB table (one entry of ~56 bytes per
    /// response) with values never seen again, and NIO's encoder compares every entry in the table
    /// for each field it looks up: 5 % of an HTTP/2 request's CPU.
    static func response(_ response: Response, problemText: String?, requestID: String, hsts: String?,
                         firstOnConnection: Bool = true) -> HPACKHeaders {
        var fields = HPACKHeaders()
        fields.reserveCapacity(11 + response.headers.count)
        fields.add(name: ":status", value: String(response.status))
        if let type = response.contentType { fields.add(name: "content-type", value: type) }
        fields.add(name: "content-length", value: String(response.body?.readableBytes ?? problemText?.utf8.count ?? 0))
        fields.add(name: "cache-control", value: response.cacheControl)
        fields.add(name: "x-request-id", value: requestID, indexing: firstOnConnection ? .indexable : .nonIndexable)
        for (name, value) in securityFields { fields.add(name: name, value: value) }
        fields.add(name: "content-security-policy", value: response.isPage ? ResponseEncoder.pageCSPValue : ResponseEncoder.apiCSPValue)
        if let hsts { fields.add(name: "strict-transport-security", value: hsts) }
        for (name, value) in response.headers { fields.add(name: name.lowercased(), value: value) }
        if let limits = response.rateLimit {
            fields.add(name: "ratelimit-policy", value: limits.policy)
            fields.add(name: "ratelimit", value: limits.value)
        }
        return fields
    }
}
