import NIOHTTP1
import Testing
@testable import TollgateServer

/// `Host` values (RFC 9112 §3.2, RFC 3986 `uri-host [ ":" port ]`), checked on every request.
@Suite struct RequestFramingTests {
    @Test(arguments: ["", "example.com", "example.com:8080", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8443",
                      "[2001:db8::1]", "a-b.c_d~e", "x:", "h:65535", "%41b", "!$&'()*+,;=", "[::ffff:10.0.0.1]:1"])
    func validHosts(_ host: String) {
        #expect(RequestFraming.isValidHost(host), "\(host)")
    }

    @Test(arguments: ["[", "[]", "[::1", "[::1]x", "[::1]:123456", "[g::1]", "a:b:80", "host:80x", "host:123456",
                      "ho st", "h/p", "h@x", "h\u{301}", "caf\u{E9}", "[::1]\u{301}:80", "a:\u{301}80", "h\r", "h:8 0"])
    func invalidHosts(_ host: String) {
        #expect(!RequestFraming.isValidHost(host), "\(host)")
    }

    /// Whether a connection carries another request: as NIO's `isKeepAlive` decides it (and as
    /// the request decoder stops reading), without its allocations; an `Upgrade` request ends it.
    @Test(arguments: [
        (1, 1, [], true), (1, 1, [("Connection", "close")], false), (1, 1, [("connection", "Close")], false),
        (1, 1, [("Connection", "TE , close ")], false), (1, 1, [("Connection", "keep-alive")], true),
        (1, 1, [("Connection", "closed")], true), (1, 1, [("X-Connection", "close")], true),
        (1, 1, [("Connection", "keep-alive"), ("Upgrade", "websocket")], false),
        (1, 0, [], false), (1, 0, [("Connection", "Keep-Alive")], true), (1, 0, [("Connection", "keep-alive, close")], false),
        (2, 0, [], false),
    ] as [(Int, Int, [(String, String)], Bool)])
    func keepsConnection(_ major: Int, _ minor: Int, _ fields: [(String, String)], _ keeps: Bool) {
        let head = HTTPRequestHead(version: HTTPVersion(major: major, minor: minor), method: .GET, uri: "/", headers: HTTPHeaders(fields))
        #expect(RequestFraming.keepsConnection(head) == keeps, "\(fields)")
        if major == 1, !fields.contains(where: { $0.0 == "Upgrade" }), !fields.contains(where: { $0.1.contains(",") && $0.1.contains("keep") }) {
            #expect(head.isKeepAlive == keeps, "NIO decides \(fields) otherwise")
        }
    }
}
