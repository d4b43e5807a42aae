import NIOCore
import TollgateCore

/// Encodes a ``Response`` by hand into one buffer: status line, headers, the gateway's own headers,
/// body. No `HTTPHeaders` values are built on the way.
enum ResponseEncoder {
    /// Sent on every response.
    static let securityHeaders = "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
    /// For API and problem responses: nothing may load or frame them.
    static let apiCSP = "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
    /// For pages served by file routes: same-origin scripts, styles and calls only.
    static let pageCSP = "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n"
    /// The `Strict-Transport-Security` line of a config (nil: HSTS switched off with `tls.hsts: false`).
    static func hstsLine(_ config: GatewayConfig) -> String? {
        let hsts = config.tls.map { $0.hsts } ?? HSTS.standard
        return hsts.map { "Strict-Transport-Security: \($0.headerValue)\r\n" }
    }

    /// Writes `response` into `buffer`: status line, its headers, the gateway's own headers, body
    /// (`problemText` for a problem answer: its document, rendered by the caller). `hsts` is the
    /// line to send (secure requests only).
    static func write(_ response: Response, problemText: String? = nil, requestID: String, keepAlive: Bool, hsts: String?,
                      into buffer: inout ByteBuffer) {
        buffer.writeString("HTTP/1.1 ")
        buffer.writeString(String(response.status))
        buffer.writeString(" ")
        buffer.writeString(reasonPhrase(response.status))
        buffer.writeString("\r\n")
        if let type = response.contentType {
            buffer.writeString("Content-Type: ")
            buffer.writeString(type)
            buffer.writeString("\r\n")
        }
        buffer.writeString("Content-Length: ")
        buffer.writeString(String(response.body?.readableBytes ?? problemText?.utf8.count ?? 0))
        buffer.writeString("\r\nCache-Control: ")
        buffer.writeString(response.cacheControl)
        buffer.writeString("\r\nX-Request-ID: ")
        buffer.writeString(requestID)
        buffer.writeString("\r\n")
        buffer.writeString(securityHeaders)
        buffer.writeString(response.isPage ? pageCSP : apiCSP)
        if let hsts { buffer.writeString(hsts) }
        for (name, value) in response.headers {
            buffer.writeString(name)
            buffer.writeString(": ")
            buffer.writeString(value)
            buffer.writeString("\r\n")
        }
        if let limits = response.rateLimit {
            buffer.writeString("RateLimit-Policy: ")
            buffer.writeString(limits.policy)
            buffer.writeString("\r\nRateLimit: ")
            limits.render { buffer.writeString($0) }
            buffer.writeString("\r\n")
        }
        if !keepAlive { buffer.writeString("Connection: close\r\n") }
        buffer.writeString("\r\n")
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
