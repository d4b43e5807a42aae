/// Renders the HTTP/1.1 request sent to the paid API for one validated client request.
///
/// Everything that does not depend on the request (host, the injected secret, fixed parameters) is
/// rendered once at start-up; per request only the target, forwarded headers and body are added.
/// The client's own query string, headers and body never reach the upstream: only validated
/// parameters, fixed parameters and allow-listed headers do.
public struct UpstreamRequestTemplate: Sendable {
    public let method: String
    /// `Host`, auth and other constant header lines, each ending in CRLF.
    private let constantHeaders: String
    private let pathTemplate: String
    private let placeholders: Set<String>
    /// Static query text from the URL, plus fixed parameters and a query secret, already encoded.
    private let constantQuery: String
    private let fixedBody: [JSONMember]
    private let forwardHeaders: [String]
    private let sendsBody: Bool
    /// Renders the caller's identity (routes with `auth`).
    private let identityHeaders: IdentityHeaders?
    /// What follows the path and the client's parameters up to the request id's value, rendered
    /// once: the constant query (after `?`, or after `&` when parameters came first), the version,
    /// the constant headers and `X-Request-ID: ` — one copy per request instead of five appends.
    private let tailAfterPath: [UInt8]
    private let tailAfterParams: [UInt8]
    /// The method and a space, and the path when it has no placeholders.
    private let lineStart: [UInt8]
    /// A method with a body but none to send: `Content-Length: 0` so the upstream does not wait.
    private let sendsEmptyLength: Bool

    public init(route: RouteConfig, upstream: UpstreamConfig, secrets: [String: String], identityHeaders: IdentityHeaders? = nil) {
        self.identityHeaders = identityHeaders
        method = upstream.method
        pathTemplate = upstream.url.pathTemplate
        placeholders = Set(upstream.url.placeholders)
        forwardHeaders = route.forwardHeaders
        fixedBody = route.fixedBody
        sendsBody = !route.fixedBody.isEmpty || route.params.contains { $0.location == .body }

        var query: [String] = upstream.url.staticQuery.isEmpty ? [] : [upstream.url.staticQuery]
        for (name, value) in route.fixedQuery {
            query.append(PercentEncoding.encode(name) + "=" + PercentEncoding.encode(value))
        }
        var headers = "Host: \(upstream.url.hostHeader)\r\nUser-Agent: tollgate\r\nAccept: application/json\r\n"
        if let auth = upstream.auth, let secret = secrets[auth.secretName] {
            switch auth {
            case .header(let name, _): headers += "\(name): \(secret)\r\n"
            case .query(let name, _): query.append(PercentEncoding.encode(name) + "=" + PercentEncoding.encode(secret))
            case .bearer: headers += "Authorization: Bearer \(secret)\r\n"
            case .basic(let user, _): headers += "Authorization: Basic \(Base64.encode(Array("\(user):\(secret)".utf8)))\r\n"
            }
        }
        constantHeaders = headers
        constantQuery = query.joined(separator: "&")
        let rest = " HTTP/1.1\r\n" + headers + "X-Request-ID: "
        tailAfterPath = Array(((constantQuery.isEmpty ? "" : "?" + constantQuery) + rest).utf8)
        tailAfterParams = Array(((constantQuery.isEmpty ? "" : "&" + constantQuery) + rest).utf8)
        lineStart = Array((method + " " + (placeholders.isEmpty ? pathTemplate : "")).utf8)
        sendsEmptyLength = !sendsBody && ["POST", "PUT", "PATCH"].contains(method)
    }

    /// Room for a head with a few short parameters, so a buffer made this size is not grown while
    /// the head is written (a longer one grows it once).
    public var typicalHeadBytes: Int { constantHeaders.utf8.count + pathTemplate.utf8.count + constantQuery.utf8.count + 352 }

    /// The request head (request line and headers, ending with the blank line) and body, as a
    /// string (tests; the data plane renders into its buffer with ``render(_:requestID:into:)``).
    public func render(_ request: RequestView, requestID: String) -> (head: String, body: [UInt8]) {
        var head = ""
        let body = render(request, requestID: requestID, into: &head)
        return (head, body)
    }

    /// Appends the request head to `head` (the data plane's reused bytes) and returns the body: the
    /// generic renderer below, specialized here for bytes. `request` is only read; it is `inout` so
    /// that a caller holding it in a class property passes it in place — passed by value, it was
    /// copied whole (every field retained, then released) for each call.
    public func render(_ request: inout RequestView, requestID: String, into head: inout [UInt8]) -> [UInt8] {
        write(request, requestID: requestID, into: &head)
    }

    /// Writes the request head into `head` — the query straight into it, no string per parameter —
    /// and returns the body, which follows the head.
    public func render<Sink: TextSink>(_ request: RequestView, requestID: String, into head: inout Sink) -> [UInt8] {
        write(request, requestID: requestID, into: &head)
    }

    private func write<Sink: TextSink>(_ request: RequestView, requestID: String, into head: inout Sink) -> [UInt8] {
        var path = pathTemplate
        var bodyMembers: [JSONMember] = []
        var queryBytes = constantQuery.utf8.count
        for param in request.params {
            if !placeholders.isEmpty, placeholders.contains(param.name) {
                path = path.replacingAll("{\(param.name)}", with: PercentEncoding.encode(param.value.text))
            } else if param.location == .body {
                bodyMembers.append(JSONMember(param.name, param.value.json))
            } else {
                queryBytes += param.name.utf8.count + param.value.text.utf8.count * 3 + 2
            }
        }

        head.reserve(constantHeaders.utf8.count + path.utf8.count + queryBytes + 96)
        lineStart.withUnsafeBufferPointer { head.append(utf8: $0) }
        if !placeholders.isEmpty { head.append(path) }
        var separator = UInt8(ascii: "?")
        for param in request.params where param.location != .body && (placeholders.isEmpty || !placeholders.contains(param.name)) {
            head.appendASCII(separator)
            separator = UInt8(ascii: "&")
            PercentEncoding.append(param.name, to: &head)
            head.appendASCII(UInt8(ascii: "="))
            PercentEncoding.append(param.value.text, to: &head)
        }
        (separator == UInt8(ascii: "?") ? tailAfterPath : tailAfterParams).withUnsafeBufferPointer { head.append(utf8: $0) }
        head.append(requestID)
        head.append("\r\n")
        if let identityHeaders, let caller = request.caller {
            identityHeaders.render(caller, requestID: requestID, now: request.wallMillis / 1000, into: &head)
        }
        for name in forwardHeaders {
            for (n, v) in request.headers.all(name) {
                head.append(n)
                head.append(": ")
                head.append(v)
                head.append("\r\n")
            }
        }
        var body: [UInt8] = []
        if sendsBody {
            body = Array(JSONValue.object(bodyMembers + fixedBody).serialized.utf8)
            head.append("Content-Type: application/json\r\nContent-Length: \(body.count)\r\n")
        } else if sendsEmptyLength {
            head.append("Content-Length: 0\r\n")
        }
        head.append("\r\n")
        return body
    }
}

extension String {
    /// Replaces every occurrence of `target` (no Foundation needed).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        out += rest
        return out
    }
}

/// Standard base64, for `Authorization: Basic`.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
