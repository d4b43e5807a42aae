import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import TollgateRequestHTTP

/// The client request decoder on arbitrary bytes, differentially against NIO's `HTTPRequestDecoder`
/// (llhttp), which it replaced: never a crash; the same parts whatever the split of the bytes into
/// two reads; and every request it decodes whole, NIO's decoder decodes the same (method, target,
/// version, fields, body) at the same place — it may refuse more, never accept more or read the
/// bytes differently. Requests with a method llhttp does not know are where comparing stops
/// (llhttp refuses them; the gateway answers them 405 or 404).
func fuzzRequest(_ bytes: UnsafeRawBufferPointer) {
    guard let first = bytes.first else { return }
    let input = Array(bytes.dropFirst())
    let split = input.isEmpty ? 0 : Int(first) % (input.count + 1)
    let whole = ours([input[...]])
    let pieces = ours([input[..<split], input[split...]])
    if Message.complete(whole) != Message.complete(pieces) || heads(whole) != heads(pieces) {
        FuzzSupport.fail("split at \(split) changed the requests:\n\(whole)\nvs\n\(pieces)")
    }

    var accepted = Message.complete(whole)
    if let unknown = accepted.firstIndex(where: { $0.method.hasPrefix("RAW") }) { accepted.removeSubrange(unknown...) }
    let reference = Message.complete(nio(input))
    guard reference.starts(with: accepted) else {
        FuzzSupport.fail("decoded differently from NIO's decoder:\n\(accepted)\nvs\n\(reference)")
    }
}

func heads(_ parts: [HTTPServerRequestPart]) -> Int {
    parts.count { if case .head = $0 { true } else { false } }
}

/// A request as decoded, in terms both decoders share.
struct Message: Equatable, CustomStringConvertible {
    var method: String
    var target: String
    var version: String
    var fields: [String]
    var body: [UInt8] = []

    var description: String { "\(method) \(target) \(version) \(fields) body \(body.count) B" }

    /// The requests decoded whole (head, body, end), in order.
    static func complete(_ parts: [HTTPServerRequestPart]) -> [Message] {
        var done: [Message] = []
        var current: Message?
        for part in parts {
            switch part {
            case .head(let head):
                current = Message(method: "\(head.method)", target: head.uri, version: "\(head.version)",
                                  fields: head.headers.map { "\($0.name.lowercased()): \(trim($0.value))" })
            case .body(let buffer):
                current?.body += Array(buffer.readableBytesView)
            case .end:
                if let message = current { done.append(message) }
                current = nil
            }
        }
        return done
    }

    private static func trim(_ value: String) -> String {
        String(value.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

/// The parts this decoder hands on for `pieces` read one after the other, up to its first fault.
func ours(_ pieces: [ArraySlice<UInt8>]) -> [HTTPServerRequestPart] {
    var decoder = RequestDecoder()
    var parts: [HTTPServerRequestPart] = []
    for piece in pieces {
        do {
            try decoder.feed(ByteBuffer(bytes: piece)) { parts.append($0) }
        } catch {
            break
        }
    }
    return parts
}

/// The parts NIO's decoder fires for `input`, up to its first error.
func nio(_ input: [UInt8]) -> [HTTPServerRequestPart] {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    do {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        try channel.writeInbound(ByteBuffer(bytes: input))
    } catch {
        // Parts before the error are still in the channel.
    }
    var parts: [HTTPServerRequestPart] = []
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
    return parts
}

#if FUZZING
@_cdecl("fuzz_request_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    FuzzSupport.fuzz(argc, argv, fuzzRequest)
}
#else
@main struct Replay { static func main() { FuzzSupport.replay(fuzzRequest) } }
#endif
