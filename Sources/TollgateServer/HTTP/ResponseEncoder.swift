import NIOCore
import TollgateCore

/// Encodes a ``Response`` for HTTP/1.1, by hand into one buffer: status line, headers, the
/// gateway's own headers, body; no `HTTPHeaders` values built on the way. HTTP/2 responses carry
/// the same fields from the same constants (``HTTP2Fields``).
enum ResponseEncoder {
    /// Sent on every response.
    static let securityFields = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer")]
    /// For API and problem responses: nothing may load or frame them.
    static let apiCSPValue = "default-src 'none'; frame-ancestors 'none'"
    /// For pages served by file routes: same-origin scripts, styles and calls only.
    static let pageCSPValue = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    /// The end of the `X-Request-ID` line, the security fields and the CSP line, in one piece each
    /// for API and page responses: one copy per response instead of five.
    static let securityAndAPICSP = "\r\n" + securityLines + "Content-Security-Policy: \(apiCSPValue)\r\n"
    static let securityAndPageCSP = "\r\n" + securityLines + "Content-Security-Policy: \(pageCSPValue)\r\n"
    private static let securityLines = securityFields.map { "\($0.0): \($0.1)\r\n" }.joined()
    /// `HTTP/1.1 <status> <reason>\r\n` for every status the gateway can send, made once.
    static let statusLines = (0..<600).map { "HTTP/1.1 \($0) \(reasonPhrase($0))\r\n" }

    /// The `Strict-Transport-Security` value of a config (nil: HSTS switched off with `tls.hsts: false`).
    static func hstsValue(_ config: GatewayConfig) -> String? {
        let hsts = config.tls.map { $0.hsts } ?? HSTS.standard
        return hsts.map { $0.headerValue }
    }

    /// The `Strict-Transport-Security` line of a config, for HTTP/1.1.
    static func hstsLine(_ config: GatewayConfig) -> String? {
        hstsValue(config).map { "Strict-Transport-Security: \($0)\r\n" }
    }

    /// Writes `response` into `buffer`: status line, its headers, the gateway's own headers, body
    /// (`problemText` for a problem answer: its document, rendered by the caller). `hsts` is the
    /// line to send (secure requests only).
    static func write(_ response: Response, problemText: String? = nil, requestID: String, keepAlive: Bool, hsts: String?,
                      into buffer: inout ByteBuffer) {
        if statusLines.indices.contains(response.status) {
            buffer.writeString(statusLines[response.status])
        } else {
            buffer.writeString("HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n")
        }
        if let type = response.contentType {
            buffer.writeStaticString("Content-Type: ")
            buffer.writeString(type)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("Content-Length: ")
        buffer.appendDecimal(Int64(response.body?.readableBytes ?? problemText?.utf8.count ?? 0))
        buffer.writeStaticString("\r\nCache-Control: ")
        buffer.writeString(response.cacheControl)
        buffer.writeStaticString("\r\nX-Request-ID: ")
        buffer.writeString(requestID)
        buffer.writeString(response.isPage ? securityAndPageCSP : securityAndAPICSP)
        if let hsts { buffer.writeString(hsts) }
        for (name, value) in response.headers {
            buffer.writeString(name)
            buffer.writeString(": ")
            buffer.writeString(value)
            buffer.writeString("\r\n")
        }
        if let limits = response.rateLimit {
            buffer.writeStaticString("RateLimit-Policy: ")
            buffer.writeString(limits.policy)
            buffer.writeStaticString("\r\nRateLimit: ")
            limits.render(into: &buffer)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString(keepAlive ? "\r\n" : "Connection: close\r\n\r\n")
        if var body = response.body { buffer.writeBuffer(&body) } else if let problemText { buffer.writeString(problemText) }
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 303: "See Other"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 402: "Payment Required"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status"
        }
    }
}
