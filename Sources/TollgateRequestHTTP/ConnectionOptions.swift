import TollgateUpstreamHTTP

/// What a request's `Connection` fields say about the connection after it (RFC 9112 §9.3, §9.6):
/// `close` ends it; on HTTP/1.0 it ends unless `keep-alive` is asked for. One rule for the decoder,
/// which reads nothing after a request that ends its connection, and for the gateway, which
/// answers that request with `Connection: close`.
package struct ConnectionOptions {
    package private(set) var close = false
    package private(set) var keepAlive = false

    package init() {}

    /// Adds the options of one `Connection` field value: comma-separated, in any case.
    package mutating func read(_ value: UnsafeRawBufferPointer) {
        for item in HeadFields.CommaItems(value) {
            let option = HeadFields.trim(item)
            if HeadFields.equalsLowercased(option, "close") { close = true }
            if HeadFields.equalsLowercased(option, "keep-alive") { keepAlive = true }
        }
    }

    /// Whether another request may follow one of HTTP/1.`minor` with these options (never after a
    /// request that asked to `upgrade`).
    package func keepConnection(minor: Int, upgrade: Bool) -> Bool {
        !upgrade && !close && (minor >= 1 || keepAlive)
    }
}
