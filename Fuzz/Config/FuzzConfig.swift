import FuzzSupport
import TollgateCore

/// The config loader on arbitrary YAML: it either returns a config or errors with paths — never
/// crashes, whatever the document (Yams parses; the readers check).
func fuzzConfig(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    do {
        _ = try ConfigLoader.load(yaml: text, baseDirectory: "/nonexistent")
    } catch {
        if error.issues.isEmpty { FuzzSupport.fail("a config error without issues") }
    }
}

#if FUZZING
@_cdecl("fuzz_config_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.fuzz(argc, argv, fuzzConfig)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzConfig) } }
#endif
