import FuzzSupport
import NIOCore
import TollgateUpstreamHTTP

/// The upstream response framing parser (RFC 9112 §6) on arbitrary bytes, fed in two pieces split
/// where the first byte says: never a crash, never a body over its bound, and the same status and
/// body whatever the split, and the `Content-Type` noted while parsing is the one a search of the
/// head finds. (Whether the connection may be reused can differ: bytes after a complete
/// response make it unusable only when they arrive with it; later ones are caught by the connection.)
func fuzzUpstreamResponse(_ bytes: UnsafeRawBufferPointer) {
    guard let first = bytes.first else { return }
    let input = Array(bytes.dropFirst())
    let split = input.isEmpty ? 0 : Int(first) % (input.count + 1)
    func run(_ pieces: [ArraySlice<UInt8>]) -> String {
        var parser = UpstreamResponseParser(maxBodyBytes: 4096, requestWasHEAD: first & 1 == 1)
        do {
            for piece in pieces {
                var buffer = ByteBuffer(bytes: piece)
                if let response = try parser.feed(&buffer) {
                    if response.body.readableBytes > 4096 { FuzzSupport.fail("body over its bound") }
                    if response.headers.contentType != response.headers.first("content-type") { FuzzSupport.fail("content-type") }
                    return "\(response.status) \(response.body.readableBytes)"
                }
            }
            let response = try parser.finish()
            if response.headers.contentType != response.headers.first("content-type") { FuzzSupport.fail("content-type") }
            return "\(response.status) \(response.body.readableBytes)"
        } catch {
            return "error"
        }
    }
    let whole = run([input[...]])
    let pieces = run([input[..<split], input[split...]])
    if whole != pieces { FuzzSupport.fail("split at \(split) changed the answer: \(whole) vs \(pieces)") }
}

#if FUZZING
@_cdecl("fuzz_upstream_response_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.fuzz(argc, argv, fuzzUpstreamResponse)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzUpstreamResponse) } }
#endif
