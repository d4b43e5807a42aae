import Crypto
import JWTKit
import Testing
@testable import TollgateCore
@testable import TollgateServer

/// jwt-kit turns key material into synchronous verifiers whose algorithm is fixed by the key.
@Suite struct JWTKeyLoaderTests {
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    func parts(_ token: String) -> (ArraySlice<UInt8>, [UInt8]) {
        let bytes = Array(token.utf8)
        let dot = bytes.lastIndex(of: UInt8(ascii: "."))!
        return (bytes[..<dot], Base64URL.decode(bytes[(dot + 1)...])!)
    }

    @Test func jwksKeysWithoutAlgGetTheirKeyTypesAlgorithmsOnly() async throws {
        let ec = ES256PrivateKey()
        let ed = try EdDSA.PrivateKey()
        let p = ec.publicKey.parameters!
        let x = Base64URL.encode(ed.publicKey.rawRepresentation)
        let jwks = """
            {"keys":[{"kty":"EC","crv":"P-256","kid":"ec","x":"\(p.x)","y":"\(p.y)"},
                     {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"\(x)"},
                     {"kty":"OKP","crv":"Ed25519","x":"\(x)"},
                     {"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"\(x)"}]}
            """
        let (keys, skipped) = try await JWTKeyLoader.fromJWKS(Array(jwks.utf8))
        #expect(keys.map { "\($0.keyID!):\($0.algorithm)" }.sorted() == ["ec:ES256", "ed:EdDSA"])
        #expect(skipped.count == 2)  // no kid; use: enc

        let signer = JWTKeyCollection()
        await signer.add(ecdsa: ec, kid: "ec")
        await signer.add(eddsa: ed, kid: "ed")
        for kid in ["ec", "ed"] {
            let token = try await signer.sign(Claims(sub: "alice"), kid: JWKIdentifier(string: kid))
            let (input, signature) = parts(token)
            let key = keys.first { $0.keyID == kid }!
            #expect(key.verify(input, signature))
            #expect(!key.verify(input.dropLast(), signature))
            let other = keys.first { $0.keyID != kid }!
            #expect(!other.verify(input, signature))
        }
    }

    @Test func aNonJWKSDocumentThrows() async {
        await #expect(throws: (any Error).self) { try await JWTKeyLoader.fromJWKS(Array("[1,2]".utf8)) }
    }

    @Test func configuredHMACKeysVerifyTheirOwnAlgorithm() async throws {
        let secret = String(repeating: "k", count: 48)
        await #expect(throws: (any Error).self) {  // shorter than the hash (RFC 7518 §3.2)
            try await JWTKeyLoader.configured([.init(keyID: "hs", algorithm: "HS384", material: .hmacSecret("S"))],
                                              secrets: ["S": String(secret.prefix(47))])
        }
        let keys = try await JWTKeyLoader.configured([.init(keyID: "hs", algorithm: "HS384", material: .hmacSecret("S"))],
                                                     secrets: ["S": secret])
        #expect(keys.count == 1 && keys[0].algorithm == "HS384")
        let signer = JWTKeyCollection()
        await signer.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha384, kid: "hs")
        let (input, signature) = parts(try await signer.sign(Claims(sub: "a"), kid: "hs"))
        #expect(keys[0].verify(input, signature))
        await #expect(throws: (any Error).self) {
            try await JWTKeyLoader.configured([.init(keyID: nil, algorithm: "HS256", material: .hmacSecret("missing"))], secrets: [:])
        }
    }

    @Test func ownSigningKeyPublishesItsPublicHalfOnly() async throws {
        let key = try EdDSA.PrivateKey()
        var oauth = OAuthConfig(signingKeySecret: "K")
        oauth.keyID = "k1"
        let pem = try Curve25519.Signing.PrivateKey(rawRepresentation: key.rawRepresentation).pemRepresentation
        let (signer, verifier, jwks) = try await IdentityRuntime.signingKey(oauth, secrets: ["K": pem])
        let input = Array("a.b".utf8)
        #expect(verifier.verify(input[...], try signer.sign(input)))
        let doc = try JSONParser.parse(jwks)
        guard case .array(let items)? = doc["keys"] else { Issue.record("no keys"); return }
        #expect(items.count == 1 && items[0]["d"] == nil && items[0]["kid"] == .string("k1") && items[0]["crv"] == .string("Ed25519"))
    }
}
