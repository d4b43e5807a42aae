import Foundation
import Testing
@testable import TollgateCore

/// Budgets and limits per session count only sessions the gateway issued; warnings for limits keyed
/// by values the client chooses.
@Suite struct SessionScopeTests {
    let config = PageTokens.Config(keys: ["NEW", "OLD"], path: "/t", minAge: .zero, maxAge: .seconds(60), maxUses: 9,
                                   bindAddress: false, bindUserAgent: false, cookie: "sid", maxTracked: 100)
    let secrets = ["NEW": "new-signing-key-0123456789", "OLD": "old-signing-key-0123456789"]

    @Test func issuedSessionsVerifyAndInventedOnesDoNot() {
        let tokens = PageTokens(config: config, secrets: secrets)
        let session = tokens.newSession()
        #expect(session.utf8.count == 38)
        #expect(tokens.isIssuedSession(session))
        #expect(!tokens.isIssuedSession(nil))
        #expect(!tokens.isIssuedSession("invented-cookie-value-0123456789abcdefg"))
        var flipped = Array(session.utf8)
        flipped[3] = flipped[3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(!tokens.isIssuedSession(String(decoding: flipped, as: UTF8.self)))
        // After a rotation the old key still verifies sessions it signed; another gateway's key does not.
        let rotated = PageTokens(config: PageTokens.Config(keys: ["NEWER", "NEW"], path: "/t", minAge: .zero, maxAge: .seconds(60),
                                                           maxUses: 9, bindAddress: false, bindUserAgent: false, cookie: "sid",
                                                           maxTracked: 100),
                                 secrets: ["NEWER": "newer-signing-key-0123456789", "NEW": secrets["NEW"]!])
        #expect(rotated.isIssuedSession(session))
        let stranger = PageTokens(config: config, secrets: ["NEW": "another-key-0123456789", "OLD": "x-0123456789"])
        #expect(!stranger.isIssuedSession(session))
    }

    func route(_ limits: String, budgets: [BudgetConfig] = []) throws -> Route {
        let yaml = configYAML(route: "    cost: 0.01 USD\n    limits:\n" + limits)
        let loaded = try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp")
        var shared = Route.Shared(limiters: LimiterRegistry(maxKeys: 1000), book: SpendBook(budgets: budgets))
        shared.pageTokens = PageTokens(config: config, secrets: secrets)
        return try Route(config: loaded.config.routes[0], secrets: ["API_KEY": "k"], shared: shared)
    }

    func view(cookie: String) -> RequestView {
        RequestView(method: "GET", path: "/api/address", query: "", headers: [("Cookie", "sid=\(cookie)")], clientAddress: "192.0.2.1")
    }

    @Test func sessionCookieLimitSharesOneBucketForInventedValues() throws {
        let r = try route("      - { per: cookie:sid, rate: 1/min }\n")
        let tokens = PageTokens(config: config, secrets: secrets)
        // Invented cookies: one shared bucket, so the second is refused.
        var a = view(cookie: "made-up-1"), b = view(cookie: "made-up-2")
        guard case .pass = r.evaluate(&a), case .reject(let policy, _) = r.evaluate(&b) else {
            Issue.record("invented cookies must share one bucket"); return
        }
        #expect(policy == .rateLimit && a.session == nil)
        // Issued sessions: one bucket each.
        var c = view(cookie: tokens.newSession()), d = view(cookie: tokens.newSession())
        guard case .pass = r.evaluate(&c), case .pass = r.evaluate(&d) else { Issue.record("issued sessions get their own"); return }
        #expect(c.session != nil && c.session != d.session)
    }

    @Test func sessionBudgetCountsInventedCookiesInOneTotal() throws {
        let budget = BudgetConfig(name: "per-session", scope: .session, routes: nil, limit: Money(micros: 10_000, currency: "USD"),
                                  period: .day, timeZone: TimeZone(identifier: "UTC")!, alertAt: [], status: 402)
        let r = try route("      - { per: ip, rate: 100/min }\n", budgets: [budget])
        var v = view(cookie: "made-up")
        _ = r.evaluate(&v)
        #expect(v.session == nil)
        #expect(r.spend!.book.keys(route: r.name, client: "c", session: "").map(\.scope) == [SpendBook.unverifiedSession])
        let issued = PageTokens(config: config, secrets: secrets).newSession()
        var w = view(cookie: issued)
        _ = r.evaluate(&w)
        #expect(w.session == issued)
    }

    @Test func checkWarnsAboutClientChosenKeys() throws {
        func warnings(_ limits: String, root: String = "") throws -> [String] {
            try ConfigLoader.load(yaml: configYAML(route: "    limits:\n" + limits, extraRoot: root), baseDirectory: "/tmp")
                .warnings.map(\.description)
        }
        let tokensRoot = "  PAGE_TOKEN_KEY: env:PAGE_TOKEN_KEY\npage_tokens: { keys: [PAGE_TOKEN_KEY] }"
        #expect(try warnings("      - { per: header:x-client-id, rate: 1/s }\n").contains { $0.contains("whose value the client chooses") })
        #expect(try warnings("      - { per: cookie:visitor, rate: 1/s }\n").contains { $0.contains("cookie visitor, whose value the client chooses") })
        let yaml = configYAML(route: "    limits:\n      - { per: cookie:__Host-tollgate_session, rate: 1/s }\n")
            .replacingOccurrences(of: "  API_KEY: env:API_KEY\n", with: "  API_KEY: env:API_KEY\n" + tokensRoot + "\n")
        let loaded = try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp")
        #expect(!loaded.warnings.contains { $0.message.contains("client chooses") })
        let budgets = configYAML(route: "    cost: 0.01 USD",
                                 extraRoot: "budgets:\n  - { name: s, scope: session, limit: 1 USD, period: day }")
        #expect(try ConfigLoader.load(yaml: budgets, baseDirectory: "/tmp").warnings.contains { $0.message.contains("no session can be verified") })
    }
}
