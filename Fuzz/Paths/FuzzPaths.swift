import FuzzSupport
import TollgateCore

/// Percent-decoding (query and path rules) and route matching on arbitrary request targets:
/// never a crash; encoding then decoding gives the text back; a match captures only what the
/// pattern's placeholders cover.
let pattern = PathPattern("/v2/places/{id}/reviews/{page}")!

func fuzzPaths(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    let target = Substring(text)
    for plus in [true, false] { _ = PercentEncoding.decode(target, plusIsSpace: plus) }
    if PercentEncoding.decode(Substring(PercentEncoding.encode(text)), plusIsSpace: false) != text {
        FuzzSupport.fail("encode/decode round trip")
    }
    if let captures = pattern.match(target) {
        if captures.map(\.name) != ["id", "page"] { FuzzSupport.fail("captured names") }
        if captures.contains(where: { $0.value.contains("/") }) { FuzzSupport.fail("a capture crossed a segment") }
    }
}

#if FUZZING
@_cdecl("fuzz_paths_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.fuzz(argc, argv, fuzzPaths)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzPaths) } }
#endif
