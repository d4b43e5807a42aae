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

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    fuzzConfig(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
@_cdecl("fuzz_config_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.runLibFuzzer(argc, argv, fuzzEntry)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzConfig) } }
#endif
