import FuzzSupport
import NIOCore
import TollgateCore
import TollgateMailWire

/// The two-step sign-up's parsers of untrusted bytes: the address a visitor types, the link token a
/// browser brings back, and the replies of an SMTP server. Never a crash; an accepted address is
/// one that cannot inject into SMTP or a header; no forged link verifies; every reply the parser
/// returns is well formed.
let config: VerificationConfig = {
    var c = VerificationConfig(keys: ["K"], hashKey: "K", linkBase: "https://x.test", message: .standard)
    c.linkTTL = .seconds(1800)
    return c
}()
let links = VerificationLinks(config: config, secrets: ["K": "fuzz-verification-key-0123456789"])

func fuzzEmail(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    if let address = try? EmailAddress(parsing: text) {
        let unsafe: Set<UInt8> = [0x0D, 0x0A, 0x20, UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\""), 0x00]
        if address.deliverable.utf8.contains(where: { unsafe.contains($0) || $0 >= 0x80 }) {
            FuzzSupport.fail("an accepted address holds a byte that could inject into SMTP or a header")
        }
        if address.deliverable.utf8.count > 254 { FuzzSupport.fail("an accepted address is longer than 254 octets") }
        if (try? EmailAddress(parsing: address.deliverable))?.normalized != address.normalized {
            FuzzSupport.fail("an accepted address does not parse again to the same mailbox")
        }
    }
    if case .success = links.check(text, session: "session", nowMillis: 1_800_000_000_000) {
        FuzzSupport.fail("a forged verification link was accepted")
    }
    var parser = SMTPReplyParser()
    var buffer = ByteBuffer(bytes: bytes)
    parser.feed(&buffer)
    while let reply = try? parser.next() {
        if !(200...599).contains(reply.code) || reply.lines.isEmpty || reply.lines.count > SMTPReplyParser.maxLines
            || reply.lines.contains(where: { $0.utf8.contains(0x0D) || $0.utf8.contains(0x0A) }) {
            FuzzSupport.fail("the SMTP parser returned a malformed reply")
        }
    }
}

#if FUZZING
@_cdecl("fuzz_email_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.fuzz(argc, argv, fuzzEmail)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzEmail) } }
#endif
