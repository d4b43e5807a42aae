import NIOCore
import NIOSSL
import TollgateCore

/// One upstream server (scheme, host, port and trust settings). Routes that share an upstream share
/// an endpoint, and so share its pooled connections.
final class UpstreamEndpoint: Sendable {
    let host: String
    let port: Int
    /// Set for HTTPS upstreams: full certificate and hostname verification, never optional.
    let sslContext: NIOSSLContext?
    /// SNI and verification name; nil for IP literals (the certificate is then checked against the IP).
    let serverHostname: String?
    let description: String

    init(url: UpstreamURL, caFile: String?) throws {
        host = url.host
        port = url.port
        description = "\(url.isTLS ? "https" : "http")://\(url.hostHeader)"
        if url.isTLS {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            if let caFile { tls.additionalTrustRoots = [.file(caFile)] }
            sslContext = try NIOSSLContext(configuration: tls)
            serverHostname = IPAddress.parse(url.host) == nil ? url.host : nil
        } else {
            sslContext = nil
            serverHostname = nil
        }
    }

    /// Endpoints for every upstream route, one per distinct (url origin, CA file).
    static func forRoutes(_ routes: [RouteConfig]) throws -> [String: UpstreamEndpoint] {
        var byOrigin: [String: UpstreamEndpoint] = [:]
        var byRoute: [String: UpstreamEndpoint] = [:]
        for route in routes {
            guard let upstream = route.upstream else { continue }
            let key = "\(upstream.url.isTLS) \(upstream.url.host) \(upstream.url.port) \(upstream.caFile ?? "")"
            let endpoint = try byOrigin[key] ?? UpstreamEndpoint(url: upstream.url, caFile: upstream.caFile)
            byOrigin[key] = endpoint
            byRoute[route.name] = endpoint
        }
        return byRoute
    }
}

/// Why an upstream exchange failed. The client sees only 502 or 504; this goes to the log.
enum UpstreamFailure: Error {
    case connect(String)
    case timeout
    /// The connection closed or failed before any byte of a response arrived.
    case closedBeforeResponse
    case invalidResponse(String)
    case responseTooLarge
    /// The loop's connections to this upstream were all busy and its wait queue full: nothing sent.
    case poolFull

    var logNote: String {
        switch self {
        case .poolFull: "upstream pool full (max_connections busy, wait queue full)"
        case .connect(let why): "connect failed: \(why)"
        case .timeout: "timeout"
        case .closedBeforeResponse: "connection closed before a response"
        case .invalidResponse(let why): "invalid response: \(why)"
        case .responseTooLarge: "response larger than max_response_bytes"
        }
    }
}

/// One request to send upstream.
struct UpstreamCall {
    let endpoint: UpstreamEndpoint
    /// The encoded request: head and body. Handed back to the pool's
    /// ``UpstreamPool/requestBuffers`` when the call ends.
    var request: ByteBuffer
    let isHEAD: Bool
    /// Safe to send again on a fresh connection when a pooled one turns out to be stale.
    let retryable: Bool
    let timeout: TimeAmount
    let connectTimeout: TimeAmount
    let maxResponseBytes: Int
}
