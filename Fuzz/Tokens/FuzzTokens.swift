import FuzzSupport
import TollgateCore

/// Page-token, session-cookie and proof-of-work verification on forged input: never a crash and
/// never an acceptance — nothing the fuzzer makes can carry a valid MAC under these keys.
let tokens = PageTokens(config: PageTokens.Config(keys: ["K"], path: "/t", minAge: .zero, maxAge: .seconds(600), maxUses: 5,
                                                  bindAddress: true, bindUserAgent: false, cookie: "s", maxTracked: 10_000),
                        secrets: ["K": "fuzz-page-token-key-0123456789"])
let pow = ProofOfWork(config: ProofOfWork.Config(key: "C", expires: .seconds(300), baseDifficulty: 10, maxDifficulty: 100),
                      secret: "fuzz-challenge-key-0123456789")

func fuzzTokens(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
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
