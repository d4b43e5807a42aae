import Testing
@testable import TollgateCore

@Suite struct AccessTests {
    func key(_ text: String) -> ClientKey { ClientKey(address: IPAddress.parse(text)!)! }

    @Test func addressSetFindsTheMostSpecificNetwork() {
        var set = AddressSet<String>()
        set.insert(CIDR("10.0.0.0/8")!, "eight")
        set.insert(CIDR("10.1.0.0/16")!, "sixteen")
        set.insert(CIDR("2001:db8::/32")!, "v6")
        set.insert(CIDR("203.0.113.7")!, "one")
        #expect(set.lookup(key("10.1.2.3")) == "sixteen")
        #expect(set.lookup(key("10.2.2.3")) == "eight")
        #expect(set.lookup(key("11.0.0.1")) == nil)
        #expect(set.lookup(key("203.0.113.7")) == "one" && set.lookup(key("203.0.113.8")) == nil)
        #expect(set.lookup(key("2001:db8:ffff::1")) == "v6" && set.lookup(key("2001:db9::1")) == nil)
        #expect(set.lookup(key("::ffff:10.1.0.1")) == "sixteen")  // IPv4-mapped is IPv4
        #expect(set.count == 4)
    }

    @Test func maskingKeepsOnlyThePrefix() {
        let a = key("2001:db8:1234:5678:9abc:def0:1234:5678")
        #expect(a.masked(to: 48).description == "2001:db8:1234::/48")
        #expect(a.masked(to: 0) == ClientKey(high: 0, low: 0, prefixLength: 0))
        #expect(a.masked(to: 128) == a)
        #expect(key("203.0.113.77").masked(to: 120).description == "203.0.113.0/24")
    }

    @Test func addressRulesDenyWinsAndAllowListsAreExclusive() {
        let rules = AddressRules(allow: [CIDR("10.0.0.0/8")!], deny: [CIDR("10.9.0.0/16")!])
        #expect(rules.admits(key("10.1.1.1")))
        #expect(!rules.admits(key("10.9.1.1")))
        #expect(!rules.admits(key("192.0.2.1")))
        #expect(AddressRules(deny: [CIDR("192.0.2.0/24")!]).admits(key("198.51.100.1")))
    }

    @Test func banValuesAreCheckedAndCanonical() {
        #expect(Ban.canonical(kind: .address, value: "2001:DB8::0001") == .success("2001:db8::1"))
        #expect(Ban.canonical(kind: .prefix, value: "203.0.113.77/24") == .success("203.0.113.0/24"))
        for bad in ["203.0.113.7/32", "nope", "1.2.3.4 ", "fe80::1%eth0", "::ffff:1.2.3.4", "01.2.3.4"] {
            #expect(throws: BanValueError.self) { try Ban.canonical(kind: .address, value: bad).get() }
        }
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/08", "2001:db8::/129"] {
            #expect(throws: BanValueError.self) { try Ban.canonical(kind: .prefix, value: bad).get() }
        }
        #expect(Ban.canonical(kind: .key, value: "AbC123") == .success("AbC123"))
        #expect(throws: BanValueError.self) { try Ban.canonical(kind: .key, value: "tg_live_AbC123").get() }
        #expect(throws: BanValueError.self) { try Ban.canonical(kind: .session, value: "short") .get() }
        #expect(throws: BanValueError.self) { try Ban.canonical(kind: .session, value: "has;semicolon").get() }
    }

    @Test func banListMatchesByKindAndExpiry() {
        let list = BanList([
            Ban(kind: .prefix, value: "198.51.100.0/24", reason: "", createdAt: 0, expiresAt: 100, createdBy: "t"),
            Ban(kind: .key, value: "k1", reason: "", createdAt: 0, expiresAt: nil, createdBy: "t"),
            Ban(kind: .session, value: "session-1", reason: "", createdAt: 0, expiresAt: nil, createdBy: "t"),
        ])
        #expect(list.ban(address: key("198.51.100.9"), now: 99) != nil)
        #expect(list.ban(address: key("198.51.100.9"), now: 100) == nil)
        #expect(list.ban(key: "k1", now: 1_000_000) != nil && list.ban(key: "k2", now: 0) == nil)
        #expect(list.ban(session: "session-1", now: 0) != nil)
        let board = BanBoard()
        #expect(!board.hasKeyBans && !board.hasAddressBans)
        let g = board.generation
        board.add(Ban(kind: .key, value: "k9", reason: "", createdAt: 0, expiresAt: nil, createdBy: "t"))
        #expect(board.generation != g && board.hasKeyBans && !board.hasSessionBans && board.ban(key: "k9", now: 0) != nil)
    }

    @Test func autoBannerTripsOnTheRefusalAfterTheLimitPerNetwork() {
        let banner = AutoBanner(rules: [AutoBanRule(name: "r", refusals: 3, within: .seconds(60), banFor: .seconds(900))], maxKeys: 1000)
        let a = key("203.0.113.5")
        let neighbour = key("203.0.113.200")
        var now: Int64 = 1_000_000_000
        for _ in 0..<2 {
            #expect(banner.count(status: 429, address: a, nowNanos: now, nowSeconds: 10) == nil)
            now += 1000
        }
        #expect(banner.count(status: 200, address: a, nowNanos: now, nowSeconds: 10) == nil)  // not a refusal
        #expect(banner.count(status: 404, address: a, nowNanos: now, nowSeconds: 10) == nil)  // not a counted status
        #expect(banner.count(status: 401, address: neighbour, nowNanos: now, nowSeconds: 10) == nil)  // third of the /24
        let ban = banner.count(status: 422, address: a, nowNanos: now, nowSeconds: 10)
        #expect(ban?.kind == .prefix && ban?.value == "203.0.113.0/24" && ban?.expiresAt == 910 && ban?.createdBy == "auto:r")
    }
}
