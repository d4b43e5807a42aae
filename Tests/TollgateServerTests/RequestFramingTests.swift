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
}
