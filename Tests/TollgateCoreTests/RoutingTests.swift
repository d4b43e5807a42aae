import Testing
@testable import TollgateCore

@Suite struct RoutingTests {
    @Test func pathPatterns() throws {
        let p = try #require(PathPattern("/api/places/{id}/photos"))
        #expect(p.match("/api/places/abc/photos")?.map(\.value) == ["abc"])
        #expect(p.match("/api/places//photos") == nil)
        #expect(p.match("/api/places/abc") == nil)
        #expect(p.match("/api/places/abc/photos/") == nil)
        #expect(PathPattern("no-slash") == nil)
        #expect(PathPattern("/a/{b c}") == nil)
        #expect(PathPattern("/")?.match("/") != nil)
    }

    @Test func tableMatchesMethodsAndReports405() {
        let table = RouteTable([("GET", PathPattern("/a")!, "get-a"), ("POST", PathPattern("/a")!, "post-a"),
                                ("GET", PathPattern("/p/{id}")!, "place")])
        guard case .found(let r, _) = table.match(method: "POST", path: "/a") else { Issue.record("no match"); return }
        #expect(r == "post-a")
        guard case .found(let place, let params) = table.match(method: "GET", path: "/p/42") else { Issue.record("no match"); return }
        #expect(place == "place" && params.first?.value == "42")
        guard case .methodNotAllowed(let allow) = table.match(method: "DELETE", path: "/a") else { Issue.record("expected 405"); return }
        #expect(allow == ["GET", "POST"])
        guard case .methodNotAllowed = table.match(method: "HEAD", path: "/a") else { Issue.record("HEAD must not run GET"); return }
        guard case .notFound = table.match(method: "GET", path: "/b") else { Issue.record("expected 404"); return }
        // Literal segments are compared encoded: %61 is not "a".
        guard case .notFound = table.match(method: "GET", path: "/%61") else { Issue.record("expected 404"); return }
    }

    @Test func queryStringDecoding() {
        let pairs = QueryString.parse("a=1&b=x+y&c=%E2%82%AC&d")
        #expect(pairs?.map(\.name) == ["a", "b", "c", "d"])
        #expect(pairs?.map(\.value) == ["1", "x y", "€", ""])
        #expect(QueryString.parse("a=%E2%82") == nil)  // not UTF-8
        #expect(QueryString.parse("a=%4") == nil)
    }

    @Test func percentEncodingRoundTrip() {
        for s in ["plain", "a b&c=d/e?f#g", "€uro", "~-._"] {
            let encoded = PercentEncoding.encode(s)
            #expect(!encoded.contains(" ") && !encoded.contains("&") && !encoded.contains("/"))
            #expect(PercentEncoding.decode(Substring(encoded), plusIsSpace: false) == s)
        }
    }

    /// The data plane encodes into bytes (runs of unreserved bytes copied whole), tests into strings.
    @Test func percentEncodingIsTheSameIntoBytesAndStrings() {
        let cases = [("plain", "plain"), (" lead", "%20lead"), ("trail ", "trail%20"), ("a b&c", "a%20b%26c"),
                     ("€uro", "%E2%82%ACuro"), ("  ", "%20%20"), ("", "")]
        for (s, expected) in cases {
            var bytes: [UInt8] = []
            PercentEncoding.append(s, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == expected, "\(s)")
            #expect(PercentEncoding.encode(s) == expected, "\(s)")
        }
    }

    @Test func percentDecodingRefusesWhatIsNotEncodedUTF8() {
        let d = { (s: String, plus: Bool) in PercentEncoding.decode(Substring(s), plusIsSpace: plus) }
        #expect(d("Main+Street", true) == "Main Street" && d("Main+Street", false) == "Main+Street")
        #expect(d("caf%C3%A9%20%2B", true) == "café +")
        for bad in ["%", "%4", "%zz", "a%g1", "%ff", "%C3"] { #expect(d(bad, true) == nil, "\(bad)") }
        let long = String(repeating: "ab%20", count: 2_000)  // past any stack buffer
        #expect(d(long, false) == String(repeating: "ab ", count: 2_000))
    }

    @Test func upstreamURLParsing() throws {
        let u = try UpstreamURL("https://api.example.com:8443/v2/places/{id}?v=2")
        #expect(u.isTLS && u.host == "api.example.com" && u.port == 8443)
        #expect(u.pathTemplate == "/v2/places/{id}" && u.staticQuery == "v=2" && u.placeholders == ["id"])
        #expect(u.hostHeader == "api.example.com:8443")
        let v6 = try UpstreamURL("http://[::1]:9000")
        #expect(v6.host == "::1" && v6.port == 9000 && v6.pathTemplate == "/" && v6.hostHeader == "[::1]:9000")
        #expect(try UpstreamURL("http://h").hostHeader == "h")
    }

    @Test func cidrMatching() throws {
        let v4 = try #require(CIDR("10.0.0.0/8"))
        #expect(v4.contains(IPAddress.parse("10.2.3.4")!))
        #expect(!v4.contains(IPAddress.parse("11.0.0.1")!))
        #expect(v4.contains(IPAddress.parse("::ffff:10.1.1.1")!))
        let v6 = try #require(CIDR("2001:db8::/32"))
        #expect(v6.contains(IPAddress.parse("2001:db8:1::5")!))
        #expect(!v6.contains(IPAddress.parse("2001:db9::1")!))
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("300.1.1.1") == nil)
        #expect(IPAddress.parse("01.2.3.4") == nil)
        #expect(IPAddress.parse("1::2::3") == nil)
        #expect(IPAddress.parse("::")! == [UInt8](repeating: 0, count: 16))
    }
}
