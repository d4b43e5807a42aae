import FuzzSupport
import TollgateCore

/// Percent-decoding (query and path rules) and route matching on arbitrary request targets:
/// never a crash; decoding agrees with a plain reference decoder; encoding then decoding gives the
/// text back; a match captures only what the
/// pattern's placeholders cover.
let pattern = PathPattern("/v2/places/{id}/reviews/{page}")!

func fuzzPaths(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    let target = Substring(text)
    for plus in [true, false] where PercentEncoding.decode(target, plusIsSpace: plus) != referenceDecode(target, plusIsSpace: plus) {
        FuzzSupport.fail("decode differs from the reference decoder")
    }
    if PercentEncoding.decode(Substring(PercentEncoding.encode(text)), plusIsSpace: false) != text {
        FuzzSupport.fail("encode/decode round trip")
    }
    if let captures = pattern.match(target) {
        if captures.map(\.name) != ["id", "page"] { FuzzSupport.fail("captured names") }
        if captures.contains(where: { $0.value.contains("/") }) { FuzzSupport.fail("a capture crossed a segment") }
    }
}

/// Percent-decoding written the plain way (byte by byte through the UTF-8 view, then validated):
/// the data plane's decoder, which works on the contiguous bytes, must agree with it on every input.
func referenceDecode(_ s: Substring, plusIsSpace: Bool) -> String? {
    var out: [UInt8] = []
    var it = s.utf8.makeIterator()
    while let b = it.next() {
        if b == UInt8(ascii: "%") {
            guard let h = it.next().flatMap(hexDigit), let l = it.next().flatMap(hexDigit) else { return nil }
            out.append(h << 4 | l)
        } else {
            out.append(plusIsSpace && b == UInt8(ascii: "+") ? 0x20 : b)
        }
    }
    return String(validating: out, as: UTF8.self)
}

func hexDigit(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: b - 0x30
    case 0x41...0x46: b - 0x41 + 10
    case 0x61...0x66: b - 0x61 + 10
    default: nil
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
