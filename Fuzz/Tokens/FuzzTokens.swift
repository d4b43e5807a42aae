import Crypto
import FuzzSupport
import TollgateCore

/// Page-token, session-cookie and proof-of-work verification on forged input: never a crash and
/// never an acceptance — nothing the fuzzer makes can carry a valid MAC under these keys.
let tokens = PageTokens(config: PageTokens.Config(keys: ["K"], path: "/t", minAge: .zero, maxAge: .seconds(600), maxUses: 5,
                                                  bindAddress: true, bindUserAgent: false, cookie: "s", maxTracked: 10_000),
                        secrets: ["K": "fuzz-page-token-key-0123456789"])
let pow = ProofOfWork(config: ProofOfWork.Config(key: "C", expires: .seconds(300), baseDifficulty: 10, maxDifficulty: 100),
                      secret: "fuzz-challenge-key-0123456789")

/// A JWT verifier with one real HMAC key, and a key index with one real key: nothing forged verifies.
let hmacKey = SymmetricKey(data: Array("fuzz-jwt-hmac-key-0123456789abcdef".utf8))
let jwt = JWTVerifier(config: JWTConfig(), ring: JWTKeyRing(fixed: [
    VerifyingKey(keyID: "k", algorithm: "HS256") { input, sig in
        HMAC<SHA256>.isValidAuthenticationCode(sig, authenticating: Array(input), using: hmacKey)
    },
]))
let keyHasher = APIKeyHasher(secret: "fuzz")
let realKey = APIKeyText.generate(.api)
let keys = APIKeyIndex(hasher: keyHasher, records: [
    APIKeyRecord(id: realKey.id, kind: .api, name: "f", owner: "", scopes: [], hash: keyHasher.hash(realKey.text), createdAt: 0),
])

func fuzzTokens(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    if case .success = jwt.verify(Substring(text), now: 1_800_000_000) { FuzzSupport.fail("a forged JWT was accepted") }
    if text != realKey.text, case .accepted = keys.check(text, now: 1) { FuzzSupport.fail("a forged API key was accepted") }
    if let decoded = Base64URL.decode(Array(bytes)), Base64URL.encode(decoded).utf8.elementsEqual(bytes) == false {
        FuzzSupport.fail("base64url accepted a non-canonical text")
    }
    _ = FormBody.parse(Array(bytes))
    if tokens.verify(text, session: "session", address: "192.0.2.1", userAgent: "", nowMillis: 1_800_000_000_000) == nil {
        FuzzSupport.fail("a forged page token was accepted")
    }
    if tokens.isIssuedSession(text) { FuzzSupport.fail("a forged session was accepted") }
    if pow.verify(text, route: "r", client: "192.0.2.1", nowSeconds: 1_800_000_000) == nil {
        FuzzSupport.fail("a forged proof of work was accepted")
    }
}

#if FUZZING
@_cdecl("fuzz_tokens_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.fuzz(argc, argv, fuzzTokens)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzTokens) } }
#endif
