import NIOCore
import NIOHTTP1
import TollgateUpstreamHTTP

/// Decodes the HTTP/1.1 requests a client sends (RFC 9112) into heads, body pieces and ends, over
/// bytes: one pass per head, no callbacks per token, body pieces handed on as slices of the bytes
/// read (no copy). It replaces NIO's `HTTPRequestDecoder` on the client path, which cost a channel
/// handler (`ByteToMessageHandler`) and llhttp's callbacks per request; measured in
/// docs/PERFORMANCE.md, held to NIO's decoder by the `fuzz-request` target (whatever this decoder
/// accepts, NIO's decodes the same way).
///
/// Stricter than llhttp where RFC 9112 allows a choice, and never guessing at framing:
/// - request line `method SP request-target SP HTTP/1.1` (or `1.0`), single spaces; the method a
///   token; the target visible ASCII, in origin-, absolute- (`http`/`https`) or asterisk-form;
/// - every line ends in CRLF (a bare CR or LF is refused); empty lines before a request are skipped
///   (§2.2); a field name is a token, followed directly by `:` (§5.1); no obsolete line folding
///   (§5.2); no control characters in a value but HTAB;
/// - at most one `Content-Length`, digits only; `Transfer-Encoding` must end in `chunked`, which
///   appears once (§6.3: else 400);
/// - a head that frames its body in a way the gateway refuses — `Transfer-Encoding` with
///   `Content-Length`, on HTTP/1.0, or with a coding besides `chunked` — is handed on and nothing
///   after it is read: `RequestFraming` answers it (400/501) and the connection closes;
/// - after a request with `Upgrade`, `Connection: close`, or HTTP/1.0 without `keep-alive`,
///   nothing more is read (the gateway answers it and closes);
/// - chunk lines are `size[;token[=token/quoted-string]]…` (no whitespace, as llhttp); trailers are
///   checked like fields and dropped, and may not hold `Content-Length` or `Transfer-Encoding`;
/// - the head is at most ``maxHeadBytes``, a chunk-size line ``maxLineBytes``, the trailers
///   ``maxHeadBytes``; input still arriving is searched once per byte, however it is split.
/// After the first fault nothing more is decoded: the connection cannot be trusted past it.
package struct RequestDecoder {
    package enum Failure: Error, Equatable, CustomStringConvertible {
        /// Not HTTP/1.1 as RFC 9112 frames it (400).
        case malformed(String)
        /// The head is over ``maxHeadBytes`` (431).
        case headTooLarge

        package var description: String {
            switch self {
            case .malformed(let why): why
            case .headTooLarge: "request head over \(RequestDecoder.maxHeadBytes) bytes"
            }
        }
    }

    private enum State {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(bytes: Int)
        /// Nothing more is read: after a refused framing, a request that ends the connection, or a
        /// fault.
        case stopped
    }

    /// NIO's limit, kept so the 431 boundary did not move.
    package static let maxHeadBytes = 80 * 1024
    package static let maxLineBytes = 4 * 1024

    private var state = State.head
    /// Bytes read and not yet decoded.
    private var pending = Self.empty
    private var stopAfterMessage = false
    /// How many of the pending bytes were already searched for the end of the head or line still
    /// arriving: each read searches only what is new, so input trickled a byte at a time costs
    /// linear time, not quadratic.
    private var searched = 0
    private static let empty = ByteBuffer()

    package init() {}

    /// Decodes what `bytes` completes, handing each part to `deliver` in order. Throws at the first
    /// fault, after delivering the parts before it; from then on input is ignored.
    package mutating func feed(_ bytes: ByteBuffer, _ deliver: (HTTPServerRequestPart) -> Void) throws(Failure) {
        if case .stopped = state { return }
        if pending.readableBytes == 0 {
            pending = bytes
        } else {
            var more = bytes
            pending.writeBuffer(&more)
        }
        do {
            try decode(deliver)
        } catch {
            state = .stopped
            pending = Self.empty
            throw error
        }
        // Let go of the read buffer once it is used up: NIO reuses it for the next read only if
        // nothing else holds it.
        if pending.readableBytes == 0 { pending = Self.empty }
    }

    private mutating func decode(_ deliver: (HTTPServerRequestPart) -> Void) throws(Failure) {
        while pending.readableBytes > 0 {
            switch state {
            case .head:
                if searched == 0 { skipEmptyLines() }
                guard pending.readableBytes > 0 else { return }
                guard let end = UpstreamResponseParser.find(crlfcrlf: pending, from: searched) else {
                    if pending.readableBytes > Self.maxHeadBytes { throw .headTooLarge }
                    searched = max(0, pending.readableBytes - 3)  // a CRLFCRLF may straddle reads
                    return
                }
                guard end + 4 <= Self.maxHeadBytes else { throw .headTooLarge }
                searched = 0
                let block = pending.readSlice(length: end + 4)!
                let (head, framing) = try block.withUnsafeReadableBytes { bytes throws(Failure) in try RequestHeadParser.parse(bytes) }
                stopAfterMessage = framing.last
                deliver(.head(head))
                switch framing.body {
                case .none: finishMessage(deliver)
                case .length(let n): state = .fixed(remaining: n)
                case .chunked: state = .chunkSize
                case .refused: state = .stopped
                }
            case .fixed(let remaining):
                let n = min(remaining, pending.readableBytes)
                deliver(.body(pending.readSlice(length: n)!))
                if n == remaining { finishMessage(deliver) } else { state = .fixed(remaining: remaining - n) }
            case .chunkSize:
                guard let line = try readLine(limit: Self.maxLineBytes) else { return }
                let size = try line.withUnsafeReadableBytes { bytes throws(Failure) in try Self.chunkSize(bytes) }
                state = size == 0 ? .trailers(bytes: 0) : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, pending.readableBytes)
                deliver(.body(pending.readSlice(length: n)!))
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            case .chunkDataEnd:
                guard pending.readableBytes >= 2 else { return }
                guard pending.readInteger(as: UInt16.self) == 0x0D0A else { throw .malformed("chunk data not followed by CRLF") }
                state = .chunkSize
            case .trailers(let seen):
                guard let line = try readLine(limit: Self.maxHeadBytes - seen) else { return }
                if line.readableBytes == 0 {
                    finishMessage(deliver)
                } else {
                    try line.withUnsafeReadableBytes { bytes throws(Failure) in try Self.trailer(bytes) }
                    state = .trailers(bytes: seen + line.readableBytes + 2)
                }
            case .stopped:
                pending.moveReaderIndex(to: pending.writerIndex)
                return
            }
        }
    }

    /// A trailer field is checked like a header field and dropped; a framing field there is a
    /// fault (RFC 9110 §6.5.1: trailers must not change how the message is framed).
    private static func trailer(_ line: UnsafeRawBufferPointer) throws(Failure) {
        let (name, _) = try RequestHeadParser.field(line)
        if HeadFields.equalsLowercased(name, "transfer-encoding") || HeadFields.equalsLowercased(name, "content-length") {
            throw .malformed("framing field in the trailers")
        }
    }

    private mutating func finishMessage(_ deliver: (HTTPServerRequestPart) -> Void) {
        deliver(.end(nil))
        state = stopAfterMessage ? .stopped : .head
    }

    /// Skips CRLFs before a request line (RFC 9112 §2.2); a lone CR waits for its LF.
    private mutating func skipEmptyLines() {
        while pending.readableBytes >= 2, pending.getInteger(at: pending.readerIndex, as: UInt16.self) == 0x0D0A {
            pending.moveReaderIndex(forwardBy: 2)
        }
    }

    /// One CRLF-terminated line without its CRLF, nil until it is complete; a line over `limit`
    /// bytes or a bare CR/LF in it is a fault.
    private mutating func readLine(limit: Int) throws(Failure) -> ByteBuffer? {
        let from = searched
        let found: Int? = pending.withUnsafeReadableBytes { $0[from...].firstIndex(of: 0x0A) }
        guard let lf = found else {
            if pending.readableBytes > limit { throw .malformed("line too long") }
            searched = pending.readableBytes
            return nil
        }
        searched = 0
        guard lf <= limit, lf >= 1, pending.getInteger(at: pending.readerIndex + lf - 1, as: UInt8.self) == 0x0D else {
            throw lf > limit ? .malformed("line too long") : .malformed("line not ended by CRLF")
        }
        let line = pending.readSlice(length: lf - 1)!
        pending.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// `chunk-size *( ";" token [ "=" ( token / quoted-string ) ] )` (§7.1.1): 1 to 15 hex digits,
    /// then extensions, which are checked and ignored. No whitespace around `;` or `=` (RFC 9112
    /// allows BWS there; llhttp refuses it, and so does the gateway).
    private static func chunkSize(_ line: UnsafeRawBufferPointer) throws(Failure) -> Int {
        var size = 0
        var i = 0
        while i < line.count, let digit = hexValue(line[i]) {
            guard i < 15 else { throw .malformed("chunk size too large") }
            size = size << 4 | digit
            i += 1
        }
        guard i > 0 else { throw .malformed("bad chunk size") }
        while i < line.count {
            guard line[i] == UInt8(ascii: ";") else { throw .malformed("bad chunk size") }
            i += 1
            let name = i
            while i < line.count, UpstreamResponseParser.isTokenByte(line[i]) { i += 1 }
            guard i > name else { throw .malformed("bad chunk extension") }
            guard i < line.count, line[i] == UInt8(ascii: "=") else { continue }
            i += 1
            if i < line.count, line[i] == UInt8(ascii: "\"") {
                i = try quotedStringEnd(line, from: i + 1)
            } else {
                let value = i
                while i < line.count, UpstreamResponseParser.isTokenByte(line[i]) { i += 1 }
                guard i > value else { throw .malformed("bad chunk extension") }
            }
        }
        return size
    }

    /// Where a quoted string whose opening quote is before `start` ends (after its closing quote).
    private static func quotedStringEnd(_ line: UnsafeRawBufferPointer, from start: Int) throws(Failure) -> Int {
        var i = start
        while i < line.count {
            let b = line[i]
            if b == UInt8(ascii: "\"") { return i + 1 }
            if b == UInt8(ascii: "\\") {
                i += 1
                guard i < line.count, line[i] == 0x09 || (line[i] >= 0x20 && line[i] != 0x7F) else { break }
            } else if b != 0x09 && (b < 0x20 || b == 0x7F) {
                break
            }
            i += 1
        }
        throw .malformed("bad chunk extension")
    }

    private static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: Int(b - 0x30)
        case 0x41...0x46: Int(b - 0x41 + 10)
        case 0x61...0x66: Int(b - 0x61 + 10)
        default: nil
        }
    }
}
