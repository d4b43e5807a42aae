import Synchronization
import Crypto
import Foundation
import Testing
@testable import TollgateCore

/// The verifier with real keys made here (swift-crypto): HS256, ES256, EdDSA. RSA and PS keys and
/// JWKS documents are tested through jwt-kit in the server tests and through the binary.
@Suite struct JWTTests {
    let now: Int64 = 1_800_000_000
    let hsSecret = SymmetricKey(size: .bits256)
    let ec = P256.Signing.PrivateKey()
    let ed = Curve25519.Signing.PrivateKey()

    var ring: JWTKeyRing {
        let hs = hsSecret
        let ecPublic = ec.publicKey
        let edPublic = ed.publicKey
        return JWTKeyRing(fixed: [
            VerifyingKey(keyID: "hs", algorithm: "HS256") { input, sig in
                HMAC<SHA256>.isValidAuthenticationCode(sig, authenticating: Array(input), using: hs)
            },
            VerifyingKey(keyID: "ec", algorithm: "ES256") { input, sig in
                guard let s = try? P256.Signing.ECDSASignature(rawRepresentation: sig) else { return false }
                return ecPublic.isValidSignature(s, for: Array(input))
            },
            VerifyingKey(keyID: "ed", algorithm: "EdDSA") { input, sig in edPublic.isValidSignature(sig, for: Array(input)) },
        ])
    }

    func verifier(_ configure: (inout JWTConfig) -> Void = { _ in }) -> JWTVerifier {
        var config = JWTConfig()
        config.issuer = "https://idp"
        config.audience = "api"
        configure(&config)
        return JWTVerifier(config: config, ring: ring)
    }

    func claims(_ extra: [JSONMember] = [], dropping: Set<String> = []) -> JSONValue {
        var members = [JSONMember("sub", .string("alice")), JSONMember("iss", .string("https://idp")), JSONMember("aud", .string("api")),
                       JSONMember("exp", .number(String(now + 60))), JSONMember("iat", .number(String(now))),
                       JSONMember("scope", .string("a b")), JSONMember("roles", .array([.string("admin")]))]
        members.removeAll { dropping.contains($0.key) || extra.map(\.key).contains($0.key) }
        return .object(members + extra)
    }

    func token(alg: String, kid: String?, claims: JSONValue, header extra: [JSONMember] = []) -> String {
        var header = [JSONMember("alg", .string(alg))]
        if let kid { header.append(JSONMember("kid", .string(kid))) }
        let input = Base64URL.encode(Array(JSONValue.object(header + extra).serialized.utf8)) + "."
            + Base64URL.encode(Array(claims.serialized.utf8))
        let data = Array(input.utf8)
        let signature: [UInt8]
        switch alg {
        case "HS256": signature = Array(HMAC<SHA256>.authenticationCode(for: data, using: hsSecret))
        case "ES256": signature = Array(try! ec.signature(for: data).rawRepresentation)
        case "EdDSA": signature = Array(try! ed.signature(for: data))
        default: signature = []
        }
        return input + "." + Base64URL.encode(signature)
    }

    func verify(_ token: String, _ v: JWTVerifier? = nil) -> Result<Caller, JWTVerifier.Failure> {
        (v ?? verifier()).verify(Substring(token), now: now)
    }

    @Test func validTokensOfEachAlgorithmBecomeACaller() throws {
        for (alg, kid) in [("HS256", "hs"), ("ES256", "ec"), ("EdDSA", "ed")] {
            let caller = try verify(token(alg: alg, kid: kid, claims: claims())).get()
            #expect(caller.subject == "alice" && caller.scopes == ["a", "b"] && caller.roles == ["admin"] && caller.method == .jwt)
        }
        // No kid: every key of the token's alg is tried.
        #expect((try? verify(token(alg: "EdDSA", kid: nil, claims: claims())).get()) != nil)
    }

    @Test func attacksAndBadClaimsAreRefused() {
        let cases: [(String, String, JWTVerifier.Failure)] = [
            ("none", token(alg: "none", kid: "hs", claims: claims()), .malformed(.algNone)),
            ("NONE", token(alg: "NONE", kid: "hs", claims: claims()), .malformed(.algNone)),
            ("HS256 under the EC key's kid", token(alg: "HS256", kid: "ec", claims: claims()), .noKey),
            ("unknown kid", token(alg: "HS256", kid: "zz", claims: claims()), .noKey),
            ("expired", token(alg: "HS256", kid: "hs", claims: claims([JSONMember("exp", .number(String(now - 31)))])), .expired),
            ("nbf", token(alg: "HS256", kid: "hs", claims: claims([JSONMember("nbf", .number(String(now + 31)))])), .notYetValid),
            ("iat", token(alg: "HS256", kid: "hs", claims: claims([JSONMember("iat", .number(String(now + 31)))])), .issuedInFuture),
            ("no exp", token(alg: "HS256", kid: "hs", claims: claims(dropping: ["exp"])), .missingExpiry),
            ("exp as string", token(alg: "HS256", kid: "hs", claims: claims([JSONMember("exp", .string("soon"))])), .badClaims),
            ("iss", token(alg: "HS256", kid: "hs", claims: claims([JSONMember("iss", .string("https://evil"))])), .wrongIssuer),
            ("aud", token(alg: "HS256", kid: "hs", claims: claims([JSONMember("aud", .array([.string("other")]))])), .wrongAudience),
            ("jku", token(alg: "HS256", kid: "hs", claims: claims(), header: [JSONMember("jku", .string("http://x"))]), .malformed(.foreignKey)),
            ("x5u", token(alg: "HS256", kid: "hs", claims: claims(), header: [JSONMember("x5u", .string("http://x"))]), .malformed(.foreignKey)),
            ("crit", token(alg: "HS256", kid: "hs", claims: claims(), header: [JSONMember("crit", .array([.string("b64")]))]), .malformed(.critical)),
            ("oversized", token(alg: "HS256", kid: "hs", claims: claims([JSONMember("pad", .string(String(repeating: "x", count: 9000)))])),
             .malformed(.tooLarge)),
        ]
        for (name, t, expected) in cases {
            switch verify(t) {
            case .success: Issue.record("\(name) was accepted")
            case .failure(let f): #expect(f == expected, "\(name)")
            }
        }
        // Tampered payload, header swapped between tokens, signature cut.
        let good = token(alg: "HS256", kid: "hs", claims: claims()).split(separator: ".").map(String.init)
        let other = token(alg: "HS256", kid: "hs", claims: claims([JSONMember("sub", .string("bob"))])).split(separator: ".").map(String.init)
        #expect(verify([good[0], other[1], good[2]].joined(separator: ".")) == .failure(.badSignature))
        #expect(verify([good[0], good[1], String(good[2].dropLast(3))].joined(separator: ".")) == .failure(.badSignature))
        #expect(verify(good[0] + "." + good[1]) == .failure(.malformed(.malformed)))
        #expect(verify(good[0] + "=." + good[1] + "." + good[2]) == .failure(.malformed(.malformed)))
    }

    @Test func leewayAppliesAndKeySpecificIssuerWins() throws {
        let t = token(alg: "HS256", kid: "hs", claims: claims([JSONMember("exp", .number(String(now - 10)))]))
        #expect((try? verify(t).get()) != nil)  // within the default 30 s
        #expect(verify(t, verifier { $0.leeway = .seconds(5) }) == .failure(.expired))
        // A key with its own issuer (Tollgate's OAuth key) checks that issuer, not the configured one.
        var own = ring.candidates(keyID: "ed", algorithm: "EdDSA")[0]
        own.issuer = "tollgate"
        let v = JWTVerifier(config: verifier().config, ring: JWTKeyRing(fixed: [own]))
        #expect(verify(token(alg: "EdDSA", kid: "ed", claims: claims()), v) == .failure(.wrongIssuer))
        let ownToken = token(alg: "EdDSA", kid: "ed", claims: claims([JSONMember("iss", .string("tollgate"))]))
        #expect((try? verify(ownToken, v).get()) != nil)
    }

    @Test func cachedTokensAreForgottenWhenTheKeySetChanges() throws {
        let v = verifier()
        let t = token(alg: "HS256", kid: "hs", claims: claims())
        _ = try verify(t, v).get()
        _ = try verify(t, v).get()  // from the cache
        v.ring.replaceFixed([])
        #expect(verify(t, v) == .failure(.noKey))
    }

    @Test func unknownKidsAreReported() {
        let v = verifier()
        let seen = Mutex<[String]>([])
        v.ring.onUnknownKeyID { kid in seen.withLock { $0.append(kid) } }
        _ = verify(token(alg: "HS256", kid: "new-1", claims: claims()), v)
        _ = verify(token(alg: "HS256", kid: "hs", claims: claims()), v)
        #expect(seen.withLock { $0 } == ["new-1"])
    }

    @Test func base64URLIsStrict() {
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode(Base64URL.encode([0xFB, 0xFF])) == [0xFB, 0xFF])
        #expect(Base64URL.decode("-_8") == [0xFB, 0xFF])
        #expect(Base64URL.decode("-_9") == nil)  // non-zero unused bits: a second spelling
        #expect(Base64URL.decode("+/8") == nil)
        #expect(Base64URL.decode("AA==") == nil)
        #expect(Base64URL.decode("A") == nil)
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
    }
}

extension Result where Success == Caller, Failure == JWTVerifier.Failure {
    static func == (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case (.failure(let x), .failure(let y)): x == y
        case (.success(let x), .success(let y)): x == y
        default: false
        }
    }
}
