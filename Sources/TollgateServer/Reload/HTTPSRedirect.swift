import NIOCore
import NIOHTTP1
import NIOPosix
import TollgateCore

/// `tls.redirect_http`: a plain-HTTP listener that answers every request with `308 Permanent
/// Redirect` to the same host and target over HTTPS, and nothing else — no route, no upstream, no
/// body read. A request without a usable `Host` gets a 400. The connection closes after the answer.
enum HTTPSRedirect {
    static func bind(_ address: HostPort, group: any EventLoopGroup, httpsPort: Int) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(RedirectHandler(httpsPort: httpsPort))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: address.host, port: address.port).get()
    }

    /// The `Location` for a request to `host` (the Host field) and `target`, or nil when either
    /// cannot be used safely (characters outside a host name or an origin-form target).
    static func location(host field: String?, target: String, httpsPort: Int) -> String? {
        guard let field, !field.isEmpty else { return nil }
        var name = Substring(field)
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return nil }
            name = name[...close]
            guard name.dropFirst().dropLast().allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            if let colon = name.firstIndex(of: ":") { name = name[..<colon] }
            guard !name.isEmpty, name.utf8.count <= 253,
                  name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }) else { return nil }
        }
        guard target.hasPrefix("/"), target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return "https://" + name + (httpsPort == 443 ? "" : ":\(httpsPort)") + target
    }
}

final class RedirectHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    let httpsPort: Int
    private var answered = false

    init(httpsPort: Int) { self.httpsPort = httpsPort }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !answered else { return }
        answered = true
        let response: String
        if let location = HTTPSRedirect.location(host: head.headers.first(name: "host"), target: head.uri, httpsPort: httpsPort) {
            response = "HTTP/1.1 308 Permanent Redirect\r\nLocation: \(location)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        } else {
            response = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
