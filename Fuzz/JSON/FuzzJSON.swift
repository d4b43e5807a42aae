import FuzzSupport
import TollgateCore

/// The strict request-body JSON parser: never crashes on any bytes, and what it accepts survives
/// serialising and parsing again unchanged.
func fuzzJSON(_ bytes: UnsafeRawBufferPointer) {
    guard let value = try? JSONParser.parse(bytes, maxDepth: 32) else { return }
    guard let again = try? JSONParser.parse(value.serialized, maxDepth: 33) else { FuzzSupport.fail("serialised JSON does not parse") }
    if again != value { FuzzSupport.fail("JSON changed in a round trip") }
}

#if FUZZING
@_cdecl("fuzz_json_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.fuzz(argc, argv, fuzzJSON)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzJSON) } }
#endif
