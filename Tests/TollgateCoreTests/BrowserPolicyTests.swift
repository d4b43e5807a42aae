import Foundation
import Crypto
import Testing
@testable import TollgateCore

@Suite struct PageTokenTests {
    let config = PageTokens.Config(keys: ["NEW", "OLD"], path: "/t", minAge: .seconds(2), maxAge: .seconds(60), maxUses: 2,
                                   bindAddress: true, bindUserAgent: true, cookie: "s", maxTracked: 1000)
    let secrets = ["NEW": "new-signing-key-0123456789", "OLD": "old-signing-key-0123456789"]
    let t0: Int64 = 1_800_000_000_000

    func verify(_ tokens: PageTokens, _ token: String?, session: String? = "sess", address: String = "1.2.3.4",
                ua: String = "ua", at: Int64) -> PageTokens.Refusal? {
        tokens.verify(token, session: session, address: address, userAgent: ua, nowMillis: at)
    }

    @Test func agesAndUses() {
        let tokens = PageTokens(config: config, secrets: secrets)
        let token = tokens.issue(session: "sess", address: "1.2.3.4", userAgent: "ua", nowMillis: t0)
        #expect(verify(tokens, token, at: t0 + 1_999) == .tooYoung)
        #expect(verify(tokens, token, at: t0 + 2_000) == nil)
        #expect(verify(tokens, token, at: t0 + 3_000) == nil)
        #expect(verify(tokens, token, at: t0 + 4_000) == .usedUp)
        let other = tokens.issue(session: "sess", address: "1.2.3.4", userAgent: "ua", nowMillis: t0)
        #expect(verify(tokens, other, at: t0 + 60_001) == .expired)
        #expect(verify(tokens, nil, at: t0) == .missing)
    }

    @Test func bindingsAndForgeries() {
        let tokens = PageTokens(config: config, secrets: secrets)
        let token = tokens.issue(session: "sess", address: "1.2.3.4", userAgent: "ua", nowMillis: t0)
        let at = t0 + 5_000
        #expect(verify(tokens, token, session: "other", at: at) == .invalid)
        #expect(verify(tokens, token, session: nil, at: at) == .invalid)
        #expect(verify(tokens, token, address: "5.6.7.8", at: at) == .invalid)
        #expect(verify(tokens, token, ua: "curl/8", at: at) == .invalid)
        // Flip one character of the payload or the MAC.
        var chars = Array(token)
        let i = chars.count - 5
        chars[i] = chars[i] == "A" ? "B" : "A"
        #expect(verify(tokens, String(chars), at: at) == .invalid)
        let parts = token.split(separator: ".")
        // The same MAC written a second way (an unused low bit of its last character set) is not the token.
        let respelled = Tamper.flippingLastCharacter(of: String(parts[3]), by: 1)
        #expect(verify(tokens, "\(parts[0]).\(parts[1]).\(parts[2]).\(respelled)", at: at) == .invalid)
        let otherPayload = tokens.issue(session: "sess", address: "1.2.3.4", userAgent: "ua", nowMillis: t0 - 50_000).split(separator: ".")[2]
        #expect(verify(tokens, "\(parts[0]).\(parts[1]).\(otherPayload).\(parts[3])", at: at) == .invalid)
        #expect(verify(tokens, "v2.x.y.z", at: at) == .invalid)
        #expect(verify(tokens, String(repeating: "A", count: 600), at: at) == .invalid)
    }

    @Test func rotationAcceptsTheOldKeyUntilItIsDropped() {
        let old = PageTokens(config: PageTokens.Config(keys: ["OLD"], path: "/t", minAge: .zero, maxAge: .seconds(60), maxUses: 5,
                                                       bindAddress: false, bindUserAgent: false, cookie: "s", maxTracked: 100),
                             secrets: secrets)
        let token = old.issue(session: "sess", address: "", userAgent: "", nowMillis: t0)
        let rotating = PageTokens(config: config, secrets: secrets)           // [NEW, OLD]
        #expect(verify(rotating, token, address: "1.2.3.4", ua: "ua", at: t0 + 3_000) == .invalid)  // bindings differ
        var both = config
        both.bindAddress = false
        both.bindUserAgent = false
        #expect(verify(PageTokens(config: both, secrets: secrets), token, at: t0 + 3_000) == nil)
        both.keys = ["NEW"]
        #expect(verify(PageTokens(config: both, secrets: secrets), token, at: t0 + 3_000) == .invalid)
    }

    @Test func tableFullFailsClosed() {
        var small = config
        small.maxTracked = 100
        small.minAge = .zero
        let tokens = PageTokens(config: small, secrets: secrets)
        for _ in 0..<100 {
            let t = tokens.issue(session: "sess", address: "1.2.3.4", userAgent: "ua", nowMillis: t0)
            #expect(verify(tokens, t, at: t0 + 1) == nil)
        }
        let extra = tokens.issue(session: "sess", address: "1.2.3.4", userAgent: "ua", nowMillis: t0)
        #expect(verify(tokens, extra, at: t0 + 1) == .usedUp)
        // Once the tracked tokens expire there is room again.
        let later = tokens.issue(session: "sess", address: "1.2.3.4", userAgent: "ua", nowMillis: t0 + 61_000)
        #expect(verify(tokens, later, at: t0 + 61_001) == nil)
    }
}

@Suite struct ProofOfWorkTests {
    let pow = ProofOfWork(config: .init(key: "K", expires: .seconds(300), baseDifficulty: 1_000, maxDifficulty: 64_000),
                          secret: "pow-secret-0123456789")
    let now: Int64 = 1_800_000_000

    func solve(_ c: JSONValue, tamper: (inout [String: JSONValue]) -> Void = { _ in }) -> String {
        guard case .string(let salt)? = c["salt"], case .string(let challenge)? = c["challenge"],
              case .number(let max)? = c["maxnumber"] else { return "" }
        var number = 0
        for n in 0...Int(max)! where sha256Hex(salt + String(n)) == challenge { number = n; break }
        var fields: [String: JSONValue] = ["algorithm": c["algorithm"]!, "challenge": c["challenge"]!, "number": .number(String(number)),
                                           "salt": c["salt"]!, "signature": c["signature"]!]
        tamper(&fields)
        let json = JSONValue.object(fields.sorted { $0.key < $1.key }.map { JSONMember($0.key, $0.value) }).serialized
        return Data(json.utf8).base64EncodedString()
    }

    @Test func solvedOnceThenReplayRefused() {
        let c = pow.challenge(route: "r", client: "1.2.3.4", maxNumber: 1_000, nowSeconds: now)
        let solution = solve(c)
        #expect(pow.verify(solution, route: "r", client: "1.2.3.4", nowSeconds: now) == nil)
        #expect(pow.verify(solution, route: "r", client: "1.2.3.4", nowSeconds: now) == .replayed)
    }

    @Test func expiredOtherRouteOtherClientWrongNumber() {
        let c = pow.challenge(route: "r", client: "1.2.3.4", maxNumber: 1_000, nowSeconds: now)
        #expect(pow.verify(solve(c), route: "r", client: "1.2.3.4", nowSeconds: now + 301) == .expired)
        #expect(pow.verify(solve(c), route: "other", client: "1.2.3.4", nowSeconds: now) == .otherRoute)
        #expect(pow.verify(solve(c), route: "r", client: "9.9.9.9", nowSeconds: now) == .otherRoute)
        #expect(pow.verify(solve(c) { $0["number"] = .number("1000001") }, route: "r", client: "1.2.3.4", nowSeconds: now) == .wrong)
        #expect(pow.verify("not base64!", route: "r", client: "1.2.3.4", nowSeconds: now) == .malformed)
    }

    @Test func splicingFieldsOrForgingSignaturesFails() {
        let a = pow.challenge(route: "r", client: "1.2.3.4", maxNumber: 1_000, nowSeconds: now)
        let b = pow.challenge(route: "r", client: "1.2.3.4", maxNumber: 1_000, nowSeconds: now)
        // b's signature on a's challenge.
        #expect(pow.verify(solve(a) { $0["signature"] = b["signature"]! }, route: "r", client: "1.2.3.4", nowSeconds: now) == .wrong)
        // A later expiry spliced into the salt no longer hashes to the challenge.
        #expect(pow.verify(solve(a) { f in
            if case .string(let s)? = f["salt"] { f["salt"] = .string(s + "expires=9999999999&") }
        }, route: "r", client: "1.2.3.4", nowSeconds: now) == .wrong)
        // A self-made challenge without the key.
        let salt = "abc?expires=\(now + 100)&route=r&client=\(ProofOfWork.clientTag("1.2.3.4"))&"
        let forged = JSONValue.object([JSONMember("algorithm", .string("SHA-256")), JSONMember("challenge", .string(sha256Hex(salt + "1"))),
                                       JSONMember("maxnumber", .number("1")), JSONMember("salt", .string(salt)),
                                       JSONMember("signature", .string(String(repeating: "0", count: 64)))])
        #expect(pow.verify(solve(forged), route: "r", client: "1.2.3.4", nowSeconds: now) == .wrong)
    }

    @Test func difficultyDoublesWithLoadUpToTheCap() {
        #expect((0...8).map { pow.difficulty(level: $0) } == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 64_000, 64_000])
        let meter = LoadMeter(rate: Rate("10/min")!)
        let key = BucketKey(high: 0, low: 1)
        let levels = (0..<40).map { _ in meter.record(key, nowNanos: 0) }
        #expect(levels[0..<10].allSatisfy { $0 == 0 })   // within the soft rate
        #expect(levels[10] == 1 && levels[20] == 2 && levels[39] == 3)
        #expect(meter.record(key, nowNanos: 10 * 60 * 1_000_000_000) == 0)  // decays
    }
}

func sha256Hex(_ s: String) -> String {
    Data(Crypto.SHA256.hash(data: Data(s.utf8))).map { String(format: "%02x", $0) }.joined()
}

@Suite struct OriginAndCORSTests {
    let policy = OriginPolicy(config: .init(allow: ["https://shop.example"], allowSameSite: false, allowWhenAbsent: false))

    func decide(_ headers: [(String, String)], _ p: OriginPolicy? = nil) -> String {
        var view = RequestView(method: "GET", path: "/", query: "", headers: headers.map { ($0.0, $0.1) }, clientAddress: "1.1.1.1")
        guard case .reject(let problem) = (p ?? policy).evaluate(&view) else { return "pass" }
        if case .string(let r)? = problem.extensions.first?.value { return r }
        return "reject"
    }

    @Test func originMatrix() {
        #expect(decide([("Origin", "https://shop.example"), ("Sec-Fetch-Site", "same-origin")]) == "pass")
        #expect(decide([("Origin", "https://evil.example")]) == "origin-not-allowed")
        #expect(decide([("Origin", "null")]) == "origin-not-allowed")
        #expect(decide([("Origin", "https://shop.example.evil.com")]) == "origin-not-allowed")
        #expect(decide([("Sec-Fetch-Site", "cross-site")]) == "cross-site")
        #expect(decide([("Sec-Fetch-Site", "same-site")]) == "cross-site")
        #expect(decide([("Sec-Fetch-Site", "none")]) == "cross-site")
        #expect(decide([("Referer", "https://shop.example/signup?x=1")]) == "pass")
        #expect(decide([("Referer", "https://evil.example/https://shop.example")]) == "referer-not-allowed")
        #expect(decide([]) == "no-origin")
        let lenient = OriginPolicy(config: .init(allow: ["https://shop.example"], allowSameSite: true, allowWhenAbsent: true))
        #expect(decide([], lenient) == "pass")
        #expect(decide([("Sec-Fetch-Site", "same-site")], lenient) == "pass")
    }

    @Test func corsMatrix() {
        let cors = CORSConfig(origins: ["https://shop.example"], methods: ["GET", "POST"], headers: ["x-tollgate-token"],
                              credentials: true, maxAge: 600)
        let ok = cors.preflight(origin: "https://shop.example", method: "POST", requestHeaders: "X-Tollgate-Token")
        #expect(ok?.contains { $0 == ("Access-Control-Allow-Origin", "https://shop.example") } == true)
        #expect(ok?.contains { $0 == ("Vary", "Origin") } == true)
        #expect(ok?.contains { $0 == ("Access-Control-Allow-Credentials", "true") } == true)
        #expect(cors.preflight(origin: "https://evil.example", method: "GET", requestHeaders: nil) == nil)
        #expect(cors.preflight(origin: "https://shop.example", method: "DELETE", requestHeaders: nil) == nil)
        #expect(cors.preflight(origin: "https://shop.example", method: "GET", requestHeaders: "x-other") == nil)
        #expect(cors.preflight(origin: "null", method: "GET", requestHeaders: nil) == nil)
        // Never reflect an unlisted origin.
        #expect(!cors.responseHeaders(origin: "https://evil.example").contains { $0.0 == "Access-Control-Allow-Origin" })
        let any = CORSConfig(origins: ["*"], methods: ["GET"], headers: [], credentials: false, maxAge: 60)
        #expect(any.responseHeaders(origin: "https://x.example").first! == ("Access-Control-Allow-Origin", "*"))
        #expect(any.responseHeaders(origin: "null").allSatisfy { $0.0 != "Access-Control-Allow-Origin" })
    }

    @Test func configRefusesWildcardWithCredentials() {
        let yaml = """
        routes:
          - name: r
            match: { path: /r }
            upstream: { url: "http://h/" }
            cors: { origins: ["*"], credentials: true }
            origin: { allow: ["https://shop.example/path"] }
            require: [page_token]
        """
        let errors = loadErrors(yaml)
        #expect(errors.contains { $0.contains("* cannot be combined with credentials") })
        #expect(errors.contains { $0.contains("is not an origin") })
        #expect(errors.contains { $0.contains("requires page_token but there is no top-level page_tokens") })
    }

    @Test func shadowModeNotesButPasses() {
        var view = RequestView(method: "GET", path: "/", query: "", headers: [("Origin", "https://evil.example")], clientAddress: "1.1.1.1")
        let shadow = ShadowMode(policies: [.origin], stages: [])
        #expect(shadow.apply(policy.evaluate(&view), by: .origin, to: &view) == .pass)
        #expect(view.shadowed == ["origin:origin:origin-not-allowed"])
        // Enforcing, the same refusal stands and nothing is noted.
        var enforced = RequestView(method: "GET", path: "/", query: "", headers: [("Origin", "https://evil.example")], clientAddress: "1.1.1.1")
        guard case .reject = ShadowMode(policies: [], stages: []).apply(policy.evaluate(&enforced), by: .origin, to: &enforced) else {
            Issue.record("must refuse when not shadowed"); return
        }
        #expect(enforced.shadowed.isEmpty)
    }
}
