import Foundation
#if FUZZING
import CLibFuzzer
#endif

/// What every fuzz target shares. Built with `-D FUZZING -sanitize=fuzzer,address` (scripts/fuzz),
/// a target is a libFuzzer binary; built normally (`swift build`), it replays the files or folders
/// named on its command line through the same entry point — how a finding becomes a regression
/// test (scripts/test replays every committed corpus).
public enum FuzzSupport {
    /// Runs `body` on each file given (folders: each file in them); exits 1 if none was found.
    public static func replay(_ body: (UnsafeRawBufferPointer) -> Void) {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                data.withUnsafeBytes { body($0) }
                count += 1
            }
        }
        print("replayed \(count) inputs")
        if count == 0 { exit(1) }
    }

    #if FUZZING
    /// Runs libFuzzer on `body`. SwiftPM links every executable with its module's `<name>_main` as
    /// `main`, so each target calls this from there instead of relying on libFuzzer's own `main`.
    public static func fuzz(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
                            _ body: @escaping (UnsafeRawBufferPointer) -> Void) -> Int32 {
        target = body
        var count = argc
        var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
        return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
    }

    /// The target being fuzzed; set once, before libFuzzer starts, and only read after.
    nonisolated(unsafe) static var target: ((UnsafeRawBufferPointer) -> Void)?
    #endif

    /// Stops the fuzzer with a message: a property that must hold did not.
    public static func fail(_ message: String) -> Never {
        fatalError("property violated: \(message)")
    }
}

#if FUZZING
/// libFuzzer's entry point, for every target: hands each input to ``FuzzSupport/target``.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    if let data { FuzzSupport.target?(UnsafeRawBufferPointer(start: data, count: size)) }
    return 0
}
#endif
