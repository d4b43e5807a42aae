import Testing
@testable import TollgateCore

@Suite struct ClientIdentityTests {
    let identity = ClientIdentity(trustedProxies: [CIDR("10.0.0.0/8")!, CIDR("fd00::/8")!])

    func resolve(_ peer: String, _ headers: [(String, String)], _ id: ClientIdentity? = nil) -> String {
        let bytes = (id ?? identity).resolve(peer: IPAddress.parse(peer)!, headers: headers.map { ($0.0, $0.1) })
        return ClientKey(bytes: bytes, ipv4Prefix: 32, ipv6Prefix: 128)!.description
    }

    @Test func spoofedHeaderFromUntrustedPeerIsIgnored() {
        #expect(resolve("203.0.113.9", [("X-Forwarded-For", "1.2.3.4")]) == "203.0.113.9")
        #expect(resolve("203.0.113.9", [("Forwarded", "for=1.2.3.4")]) == "203.0.113.9")
    }

    @Test func rightmostUntrustedHopWins() {
        // client-supplied junk on the left, the real client appended by the trusted proxy on the right.
        #expect(resolve("10.0.0.1", [("X-Forwarded-For", "6.6.6.6, 198.51.100.7")]) == "198.51.100.7")
        // two trusted hops are skipped.
        #expect(resolve("10.0.0.1", [("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.1.1.1"), ("x-forwarded-for", "10.2.2.2")]) == "198.51.100.7")
    }

    @Test func malformedEntriesNeverBecomeTheIdentity() {
        #expect(resolve("10.0.0.1", [("X-Forwarded-For", "198.51.100.7, not-an-ip")]) == "10.0.0.1")
        #expect(resolve("10.0.0.1", [("X-Forwarded-For", "198.51.100.7, 10.9.9.9, ")]) == "10.0.0.1")
        #expect(resolve("10.0.0.1", [("X-Forwarded-For", "198.51.100.7, junk, 10.9.9.9")]) == "10.9.9.9")
        #expect(resolve("10.0.0.1", [("X-Forwarded-For", "999.1.1.1")]) == "10.0.0.1")
        #expect(resolve("10.0.0.1", []) == "10.0.0.1")
    }

    @Test func portsAndBracketsAndForwardedSyntax() {
        let forwarded = ClientIdentity(trustedProxies: [CIDR("10.0.0.0/8")!], header: .forwarded)
        #expect(resolve("10.0.0.1", [("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")], forwarded) == "192.0.2.60")
        #expect(resolve("10.0.0.1", [("Forwarded", "for=\"[2001:db8:cafe::17]:4711\", for=10.3.3.3")], forwarded) == "2001:db8:cafe::17")
        #expect(resolve("10.0.0.1", [("Forwarded", "for=unknown")], forwarded) == "10.0.0.1")
        #expect(resolve("10.0.0.1", [("Forwarded", "for=_hidden")], forwarded) == "10.0.0.1")
        // With Forwarded configured, X-Forwarded-For is not read at all.
        #expect(resolve("10.0.0.1", [("X-Forwarded-For", "1.2.3.4")], forwarded) == "10.0.0.1")
        #expect(resolve("10.0.0.1", [("X-Forwarded-For", "198.51.100.7:8080")]) == "198.51.100.7")
        #expect(resolve("fd00::1", [("X-Forwarded-For", "[2001:db8::5]:443")]) == "2001:db8::5")
    }

    @Test func ipv6ClientsAreGroupedByPrefix() {
        let a = identity.key(for: IPAddress.parse("2001:db8:1:2:aaaa::1")!)
        let b = identity.key(for: IPAddress.parse("2001:db8:1:2:bbbb::9")!)
        let c = identity.key(for: IPAddress.parse("2001:db8:1:3::1")!)
        #expect(a == b)
        #expect(a != c)
        #expect(a.description == "2001:db8:1:2::/64")
        let v4 = identity.key(for: IPAddress.parse("198.51.100.7")!)
        #expect(v4.description == "198.51.100.7")
        #expect(v4 == identity.key(for: IPAddress.parse("::ffff:198.51.100.7")!))
        let wide = ClientIdentity(trustedProxies: [], ipv4Prefix: 24, ipv6Prefix: 48)
        #expect(wide.key(for: IPAddress.parse("198.51.100.7")!).description == "198.51.100.0/24")
        #expect(wide.key(for: IPAddress.parse("2001:db8:1:2::1")!).description == "2001:db8:1::/48")
    }
}
