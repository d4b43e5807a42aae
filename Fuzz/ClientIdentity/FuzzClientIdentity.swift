import FuzzSupport
import TollgateCore

/// Forwarding headers (X-Forwarded-For and RFC 7239 Forwarded, one field per input line) from a
/// trusted proxy: never a crash, and the client found is the peer or an address that appears in
/// the fields — never one made up.
let proxy: [UInt8] = [10, 0, 0, 1]
let identities = [ClientIdentity.ForwardingHeader.xForwardedFor, .forwarded].map {
    ClientIdentity(trustedProxies: [CIDR("10.0.0.0/8")!], header: $0)
}

func fuzzClientIdentity(_ bytes: UnsafeRawBufferPointer) {
    let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    for identity in identities {
        let name = identity.header == .xForwardedFor ? "X-Forwarded-For" : "Forwarded"
        let fields = lines.map { (name: name, value: String($0)) }
        let client = identity.resolve(peer: proxy, headers: fields)
        if client.count != 4 && client.count != 16 { FuzzSupport.fail("resolved to \(client.count) bytes") }
        _ = identity.key(for: client)
    }
}

#if FUZZING
@_cdecl("fuzz_client_identity_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.fuzz(argc, argv, fuzzClientIdentity)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzClientIdentity) } }
#endif
