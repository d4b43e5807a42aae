import Foundation
import Testing
@testable import TollgateCore

@Suite struct EmailAddressTests {
    @Test func acceptsDeliverableAddressesAndLowercasesTheDomain() throws {
        let a = try EmailAddress(parsing: "Jane.Doe+news@Mail.Example.ORG")
        #expect(a.deliverable == "Jane.Doe+news@mail.example.org")
        #expect(a.domain == "mail.example.org")
        #expect(a.normalized == "jane.doe+news@mail.example.org")
        for ok in ["a@b.co", "x!#$%&'*+/=?^_`{|}~-@xn--bcher-kva.example", "1@2.xyz"] {
            #expect((try? EmailAddress(parsing: ok)) != nil, "\(ok)")
        }
    }

    @Test func refusesWhatSignUpFormsShouldNotSend() {
        let bad = ["", "@", "a@", "@b.co", "a@b", "a..b@c.co", ".a@c.co", "a.@c.co", "\"q\"@c.co", "a b@c.co", "a@[192.0.2.1]",
                   "a@-c.co", "a@c-.co", "a@c.123", "a@c..co", "ü@c.co", "a@ü.co", "a\r\n@c.co", "a@c.co\r\nBcc: x@y.z", "a<b>@c.co"]
        for text in bad {
            #expect(throws: EmailAddress.Invalid.self, "\(text.debugDescription)") { try EmailAddress(parsing: text) }
        }
        #expect(throws: EmailAddress.Invalid.tooLong) { try EmailAddress(parsing: String(repeating: "a", count: 65) + "@c.co") }
        #expect(throws: EmailAddress.Invalid.tooLong) {
            try EmailAddress(parsing: "a@" + String(repeating: "b", count: 60) + "." + String(repeating: "c", count: 63) + "."
                             + String(repeating: "d", count: 63) + "." + String(repeating: "e", count: 63) + ".co")
        }
    }

    @Test func foldsPlusTagsAndDotsOnlyWhereTheProviderDoes() throws {
        #expect(try EmailAddress(parsing: "J.a.n.e+x@GMAIL.com").normalized == "jane@gmail.com")
        #expect(try EmailAddress(parsing: "jane+x@outlook.com").normalized == "jane@outlook.com")
        #expect(try EmailAddress(parsing: "j.ane+x@example.org").normalized == "j.ane+x@example.org")
        let custom = EmailAddress.Normalization(plusTags: ["example.org"], dots: [])
        #expect(try EmailAddress(parsing: "j.ane+x@example.org", normalization: custom).normalized == "j.ane@example.org")
        #expect(throws: EmailAddress.Invalid.syntax) { try EmailAddress(parsing: "+tag@gmail.com") }
    }

    @Test func domainListsCoverSubdomains() {
        #expect(DomainMatch.covers(["mailinator.com"], "mailinator.com"))
        #expect(DomainMatch.covers(["mailinator.com"], "mx.eu.mailinator.com"))
        #expect(!DomainMatch.covers(["mailinator.com"], "notmailinator.com"))
        #expect(!DomainMatch.covers([], "a.com"))
    }

    @Test func domainBansAreCanonicalAndCoverSubdomains() throws {
        #expect(try Ban.canonical(kind: .domain, value: "Flood.Test").get() == "flood.test")
        #expect((try? Ban.canonical(kind: .domain, value: "not a domain").get()) == nil)
        #expect((try? Ban.canonical(kind: .domain, value: "localhost").get()) == nil)
        let board = BanBoard([Ban(kind: .domain, value: "flood.test", reason: "", createdAt: 0, expiresAt: 100, createdBy: "t")])
        #expect(board.hasDomainBans)
        #expect(board.ban(domain: "a.b.flood.test", now: 50) != nil)
        #expect(board.ban(domain: "flood.test.evil", now: 50) == nil)
        #expect(board.ban(domain: "flood.test", now: 100) == nil)  // expired
    }
}

@Suite struct VerificationLinkTests {
    static let secrets = ["K1": "k1-" + String(repeating: "x", count: 30), "K2": "k2-" + String(repeating: "y", count: 30),
                          "H": String(repeating: "h", count: 32)]

    static func config(keys: [String] = ["K1"]) -> VerificationConfig {
        var c = VerificationConfig(keys: keys, hashKey: "H", linkBase: "https://x.test", message: .standard)
        c.linkTTL = .seconds(1800)
        return c
    }

    let links = VerificationLinks(config: config(), secrets: secrets)
    let address = try! EmailAddress(parsing: "Jane.Doe@Gmail.com")

    @Test func aLinkStandsForTheAddressHashAndDomainOfTheSessionThatAsked() throws {
        let token = links.issue(for: address, session: "session-a", nowMillis: 1_000_000)
        let link = try links.check(token, session: "session-a", nowMillis: 1_000_000 + 60_000).get()
        #expect(link.email.domain == "gmail.com")
        #expect(link.email.addressHash == links.addressHash(address))
        #expect(link.email.addressHash == links.addressHash(try EmailAddress(parsing: "janedoe+x@gmail.com")))
        #expect(link.email.addressHash.hasPrefix("e-") && link.email.addressHash.count == 24)
        #expect(!token.lowercased().contains("jane"))
    }

    @Test func refusesOtherSessionsExpiredAndForgedLinks() {
        let token = links.issue(for: address, session: "session-a", nowMillis: 1_000_000)
        #expect(links.check(token, session: "session-b", nowMillis: 1_000_001) == .failure(.otherSession))
        #expect(links.check(token, session: nil, nowMillis: 1_000_001) == .failure(.otherSession))
        #expect(links.check(token, session: "session-a", nowMillis: 1_000_000 + 1_800_001) == .failure(.expired))
        #expect(links.check(token, session: "session-a", nowMillis: 1_000_000 - 120_000) == .failure(.expired))
        var parts = token.split(separator: ".").map(String.init)
        // The MAC's last character holds 4 bits of the MAC and 2 unused bits: flipping either is a forgery.
        for flip in [4, 1] {
            parts[3] = Tamper.flippingLastCharacter(of: token.split(separator: ".").map(String.init)[3], by: flip)
            #expect(links.check(parts.joined(separator: "."), session: "session-a", nowMillis: 1_000_001) == .failure(.forged))
        }
        parts = token.split(separator: ".").map(String.init)
        parts[2] = String(parts[2].dropLast(2)) + "eA"   // another domain, same MAC
        #expect(links.check(parts.joined(separator: "."), session: "session-a", nowMillis: 1_000_001) == .failure(.forged))
        for junk in ["", "v1", "v1.a.b.c", "v2." + token.dropFirst(3), token + ".x", String(repeating: "A", count: 700)] {
            #expect(links.check(junk, session: "session-a", nowMillis: 1_000_001) == .failure(.forged))
        }
        let otherKey = VerificationLinks(config: Self.config(keys: ["K2"]), secrets: Self.secrets)
        #expect(otherKey.check(token, session: "session-a", nowMillis: 1_000_001) == .failure(.forged))
    }

    @Test func previousKeysStillVerifyDuringARotation() throws {
        let old = links.issue(for: address, session: "s", nowMillis: 10)
        let rotated = VerificationLinks(config: Self.config(keys: ["K2", "K1"]), secrets: Self.secrets)
        #expect((try? rotated.check(old, session: "s", nowMillis: 20).get()) != nil)
        let new = rotated.issue(for: address, session: "s", nowMillis: 10)
        #expect(links.check(new, session: "s", nowMillis: 20) == .failure(.forged))
    }

    @Test func aLinkIsUsedOnceAndTheSessionStaysVerifiedForItsTime() throws {
        let sessions = VerifiedSessions(maxTracked: 10)
        let link = try links.check(links.issue(for: address, session: "s", nowMillis: 0), session: "s", nowMillis: 0).get()
        let email = try sessions.confirm(link, session: "s", verifiedFor: .seconds(60), linkTTLMillis: 1_800_000, nowMillis: 1000).get()
        #expect(email.untilMillis == 61_000)
        #expect(sessions.confirm(link, session: "s", verifiedFor: .seconds(60), linkTTLMillis: 1_800_000, nowMillis: 2000) == .failure(.used))
        #expect(sessions.verified(session: "s", nowMillis: 60_999)?.domain == "gmail.com")
        #expect(sessions.verified(session: "s", nowMillis: 61_000) == nil)
        #expect(sessions.verified(session: "t", nowMillis: 2000) == nil)
    }

    @Test func aFullTableRefusesNewConfirmationsInsteadOfForgettingUsedLinks() throws {
        let sessions = VerifiedSessions(maxTracked: 2)
        func confirm(_ n: Int) -> Result<VerifiedEmail, VerificationLinks.Refusal> {
            let link = try! links.check(links.issue(for: address, session: "s\(n)", nowMillis: 0), session: "s\(n)", nowMillis: 0).get()
            return sessions.confirm(link, session: "s\(n)", verifiedFor: .seconds(3600), linkTTLMillis: 1_800_000, nowMillis: 0)
        }
        #expect((try? confirm(1).get()) != nil)
        #expect((try? confirm(2).get()) != nil)
        #expect(confirm(3) == .failure(.full))
    }

    @Test func aJournalBringsConfirmationsBackAfterARestart() throws {
        final class Journal: VerificationJournal, @unchecked Sendable {
            var stored: [VerificationConfirmation] = []
            var requests: [VerificationRequest] = []
            func recordConfirmation(_ c: VerificationConfirmation) { stored.append(c) }
            func recordVerificationRequest(_ r: VerificationRequest) { requests.append(r) }
            func confirmations(nowMillis: Int64) throws -> [VerificationConfirmation] { stored }
        }
        let journal = Journal()
        let link = try links.check(links.issue(for: address, session: "s", nowMillis: 0), session: "s", nowMillis: 0).get()
        _ = VerifiedSessions(maxTracked: 10, journal: journal).confirm(link, session: "s", verifiedFor: .seconds(600),
                                                                       linkTTLMillis: 1_800_000, nowMillis: 0)
        #expect(journal.stored.count == 1 && journal.stored[0].sessionTag == SessionTag.of("s"))
        let restarted = VerifiedSessions(maxTracked: 10, journal: journal, nowMillis: 1000)
        #expect(restarted.verified(session: "s", nowMillis: 1000) != nil)
        #expect(restarted.confirm(link, session: "s", verifiedFor: .seconds(600), linkTTLMillis: 1_800_000, nowMillis: 1000) == .failure(.used))
    }
}

@Suite struct EmailPolicyTests {
    let tokens = PageTokens(config: PageTokens.Config(keys: ["P"], path: "/t", minAge: .zero, maxAge: .seconds(60), maxUses: 5,
                                                      bindAddress: false, bindUserAgent: false, cookie: "sess", maxTracked: 100),
                            secrets: ["P": String(repeating: "p", count: 32)])

    func services(refused: Set<String> = [], bans: BanBoard? = nil) -> VerificationServices {
        var config = VerificationLinkTests.config()
        config.refusedDomains = refused
        return VerificationServices(config: config, links: VerificationLinks(config: config, secrets: VerificationLinkTests.secrets),
                                    sessions: VerifiedSessions(maxTracked: 10), pageTokens: tokens, bans: bans)
    }

    func request(session: String?, body: String = "") -> RequestView {
        RequestView(method: "POST", path: "/v", query: "", headers: session.map { [("cookie", "sess=\($0)")] } ?? [],
                    body: Array(body.utf8), clientAddress: "192.0.2.1", wallMillis: 5000)
    }

    @Test func theAddressStepNeedsAnIssuedSessionAndAUsableAddress() {
        let policy = EmailAddressPolicy(services: services(refused: ["example.com"]))
        let session = tokens.newSession()
        var r = request(session: "invented-session-value", body: #"{"email":"a@b.co"}"#)
        #expect(policy.evaluate(&r) == .reject(EmailAddressPolicy.sessionRequired))
        r = request(session: session, body: #"{"email":"a@mx.example.com"}"#)
        #expect(policy.evaluate(&r) == .reject(EmailAddressPolicy.domainRefused("domain-refused")))
        r = request(session: session, body: #"{"email":"not an address"}"#)
        guard case .reject(let p) = policy.evaluate(&r) else { Issue.record("passed"); return }
        #expect(p.status == 422)
        r = request(session: session, body: #"{"email":"Jane@B.co"}"#)
        #expect(policy.evaluate(&r) == .pass)
        #expect(r.emailAddress?.deliverable == "Jane@b.co" && r.email?.domain == "b.co" && r.session == session)
    }

    @Test func theVerifiedStepNeedsAConfirmedSessionWhoseDomainIsNotBanned() throws {
        let board = BanBoard()
        let s = services(bans: board)
        let policy = VerifiedEmailPolicy(services: s)
        let session = tokens.newSession()
        var r = request(session: session)
        #expect(policy.evaluate(&r) == .reject(VerifiedEmailPolicy.required))
        let address = try EmailAddress(parsing: "a@flood.test")
        let link = try s.links.check(s.links.issue(for: address, session: session, nowMillis: 0), session: session, nowMillis: 0).get()
        _ = s.sessions.confirm(link, session: session, verifiedFor: .seconds(60), linkTTLMillis: 1_800_000, nowMillis: 0)
        r = request(session: session)
        #expect(policy.evaluate(&r) == .pass)
        #expect(r.email?.addressHash == s.links.addressHash(address))
        board.add(Ban(kind: .domain, value: "flood.test", reason: "", createdAt: 0, expiresAt: nil, createdBy: "t"))
        r = request(session: session)
        #expect(policy.evaluate(&r) == .reject(EmailAddressPolicy.domainRefused("domain-blocked")))
    }

    @Test func limitsAndBudgetsCountPerVerifiedAddress() {
        var r = request(session: nil)
        #expect(RateLimitPolicy.key(.email, r) == RateLimitPolicy.hashed(nil))
        r.email = VerifiedEmail(addressHash: "e-1", domain: "d.test", untilMillis: 0)
        #expect(RateLimitPolicy.key(.email, r) == RateLimitPolicy.hashed("e-1"))
        #expect(RateLimitPolicy.key(.emailDomain, r) == RateLimitPolicy.hashed("d.test"))
        let book = SpendBook(budgets: [BudgetConfig(name: "b", scope: .email, routes: nil, limit: Money(micros: 1, currency: "USD"),
                                                    period: .day, timeZone: .gmt, alertAt: [], status: 402)])
        #expect(book.keys(route: "r", client: "c", email: "e-1").map(\.scope) == ["e-1"])
        #expect(book.keys(route: "r", client: "c").map(\.scope) == [SpendBook.unverifiedEmail])
    }
}
