import NIOHPACK
import NIOHTTP1
import TollgateCore

/// The two translations a stream needs, without NIO's HTTP/1 codec in between: its request
/// fields into the `HTTPRequestHead` the gateway reads, and a response straight into HPACK fields
/// (names already lowercase, as RFC 9113 §8.2.1 requires; the codec lowercased each name per
/// response and sent the end of the stream as one more, empty, DATA frame).
enum HTTP2Fields {
    /// Fields RFC 9113 §8.2.2 forbids in HTTP/2: a request carrying one is malformed.
    private static let connectionSpecific: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]

    /// The request head of a stream's first HEADERS frame: method, target (`:path`), version 2.0,
    /// and its regular fields, with `host` from `:authority` when the client sent no `host`. Nil —
    /// the stream is reset — when a pseudo-field is missing or a connection-specific field is there
    /// (`NIOHTTP2Handler` refuses most malformed blocks; it lets `transfer-encoding` through).
    static func requestHead(_ block: HPACKHeaders) -> HTTPRequestHead? {
        var method: String?
        var path: String?
        var authority: String?
        var fields: [(String, String)] = []
        fields.reserveCapacity(block.count)
        var host = false
        for (name, value, _) in block {
            if name.utf8.first == UInt8(ascii: ":") {
                switch name {
                case ":method": method = value
                case ":path": path = value
                case ":authority": authority = value
                default: break  // :scheme; anything else NIOHTTP2 refused
                }
            } else {
                if name == "host" { host = true }
                if connectionSpecific.contains(name) { return nil }
                fields.append((name, value))
            }
        }
        guard let method, let path else { return nil }
        if !host, let authority { fields.append(("host", authority)) }
        return HTTPRequestHead(version: HTTPVersion(major: 2, minor: 0), method: HTTPMethod(rawValue: method), uri: path,
                               headers: HTTPHeaders(fields))
    }

    /// The gateway's own fields for every response, lowercase.
    private static let securityFields = ResponseEncoder.securityFields.map { ($0.0.lowercased(), $0.1) }

    /// The response's fields as ``ResponseEncoder/write(_:problemText:requestID:keepAlive:hsts:into:)``
    /// sends them over HTTP/1.1, in the same order, lowercase, after `:status`, without `Connection`.
    ///
    /// HPACK indexing: only fields whose value is the same response after response (status, type,
    /// cache policy, the security fields, `ratelimit-policy`) enter the connection's dynamic table,
    /// so after the first response each costs a byte. Values that change per response (length,
    /// request id, `ratelimit`) and the route's own fields (relayed from the upstream, set by
    /// policies: any value) are sent literally, never indexed (RFC 7541 §7.1.3): entered, they would
    /// fill the table with values never seen again, and NIO's encoder compares every name in the
    /// table for each field it looks up — 5 % of an HTTP/2 request's CPU before.
    static func response(_ response: Response, problemText: String?, requestID: String, hsts: String?) -> HPACKHeaders {
        var fields = HPACKHeaders()
        fields.reserveCapacity(11 + response.headers.count)
        fields.add(name: ":status", value: String(response.status))
        if let type = response.contentType { fields.add(name: "content-type", value: type) }
        fields.add(name: "content-length", value: String(response.body?.readableBytes ?? problemText?.utf8.count ?? 0), indexing: .nonIndexable)
        fields.add(name: "cache-control", value: response.cacheControl)
        fields.add(name: "x-request-id", value: requestID, indexing: .nonIndexable)
        for (name, value) in securityFields { fields.add(name: name, value: value) }
        fields.add(name: "content-security-policy", value: response.isPage ? ResponseEncoder.pageCSPValue : ResponseEncoder.apiCSPValue)
        if let hsts { fields.add(name: "strict-transport-security", value: hsts) }
        for (name, value) in response.headers { fields.add(name: name.lowercased(), value: value, indexing: .nonIndexable) }
        if let limits = response.rateLimit {
            fields.add(name: "ratelimit-policy", value: limits.policy)
            fields.add(name: "ratelimit", value: limits.value, indexing: .nonIndexable)
        }
        return fields
    }
}
