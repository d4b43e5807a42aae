import NIOCore
import NIOHTTP1
import Testing
@testable import TollgateServer
import TollgateRequestHTTP

/// The client request decoder: what it hands on, where it stops, and each fault it refuses.
/// (`fuzz-request` holds it to NIO's decoder on arbitrary bytes.)
struct RequestDecoderTests {
    /// The parts `text` decodes into (bodies as text), and the fault it ended with, if any.
    static func decode(_ text: String, byteByByte: Bool = false) -> (parts: [String], failure: RequestDecoder.Failure?) {
        var decoder = RequestDecoder()
        var parts: [String] = []
        let bytes = Array(text.utf8)
        let pieces = byteByByte ? bytes.map { [$0] } : [bytes]
        do {
            for piece in pieces {
                try decoder.feed(ByteBuffer(bytes: piece)) { part in
                    switch part {
                    case .head(let head):
                        parts.append("\(head.method.rawValue) \(head.uri) \(head.version) " + head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ","))
                    case .body(let buffer):
                        if let last = parts.last, last.hasPrefix("body:") {
                            parts[parts.count - 1] += String(buffer: buffer)
                        } else {
                            parts.append("body:" + String(buffer: buffer))
                        }
                    case .end:
                        parts.append("end")
                    }
                }
            }
        } catch {
            return (parts, error)
        }
        return (parts, nil)
    }

    @Test func pipelinedRequestsWithBodiesDecodeTheSameWhateverTheReads() {
        let text = "\r\nGET /a?q=1 HTTP/1.1\r\nHost: x\r\nX-Tab:\tv \t\r\n\r\n"
            + "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;name=\"v\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            + "DELETE /d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        let expected = [
            "GET /a?q=1 HTTP/1.1 Host=x,X-Tab=v", "end",
            "POST /b HTTP/1.1 Host=x,Content-Length=5", "body:hello", "end",
            "PUT /c HTTP/1.1 Host=x,Transfer-Encoding=chunked", "body:hello world", "end",
            "DELETE /d HTTP/1.1 Host=x,Content-Length=0", "end",
        ]
        #expect(Self.decode(text).parts == expected)
        #expect(Self.decode(text).failure == nil)
        #expect(Self.decode(text, byteByByte: true).parts == expected)
    }

    @Test func methodsAreTokensAsNIONamesThem() {
        #expect(Self.decode("PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n").parts.first == "PROPFIND / HTTP/1.1 Host=x")
        #expect(Self.decode("FOO / HTTP/1.1\r\nHost: x\r\n\r\n").parts.first == "FOO / HTTP/1.1 Host=x")
        #expect(Self.decode("GET / HTTP/1.1\r\nHost: x\r\n\r\n").parts.first == "GET / HTTP/1.1 Host=x")
    }

    @Test func originAbsoluteAndAsteriskFormsAreRead() {
        #expect(Self.decode("GET HTTPS://example.com:8443/a?b HTTP/1.1\r\nHost: x\r\n\r\n").parts.first
            == "GET HTTPS://example.com:8443/a?b HTTP/1.1 Host=x")
        #expect(Self.decode("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").parts.first == "OPTIONS * HTTP/1.1 Host=x")
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "obsolete line folding"),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", "whitespace before the colon"),
        ("GET / HTTP/1.1\r\nHost x\r\n\r\n", "no colon"),
        ("GET / HTTP/1.1\nHost: x\r\n\r\n", "bare LF"),
        ("GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", "bare CR"),
        ("GET / HTTP/1.1\r\nHost: x\u{7F}\r\n\r\n", "DEL in a value"),
        ("GET / HTTP/1.1\r\nHost: x\u{1}\r\n\r\n", "control character in a value"),
        ("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", "space in the target"),
        ("GET /é HTTP/1.1\r\nHost: x\r\n\r\n", "non-ASCII target"),
        ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "two spaces"),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/2.0 in HTTP/1 framing"),
        ("GET / http/1.1\r\nHost: x\r\n\r\n", "lower-case version"),
        ("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "method not a token"),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", "two Content-Lengths"),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na", "a Content-Length list"),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", "a signed Content-Length"),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n", "a Content-Length over 18 digits"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "chunked not last"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "no chunked"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked twice"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", "an empty Transfer-Encoding"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", "whitespace after a chunk size"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", "a chunk size not hex"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", "a chunk size of 16 digits"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", "chunk data longer than its size"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", "a trailer without a colon"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n", "framing in the trailers"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a b\r\nx\r\n0\r\n\r\n", "a chunk extension not a token"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"b\r\nx\r\n0\r\n\r\n", "an unterminated quoted extension"),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\t\r\n\r\nx", "HTAB after a Content-Length"),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n", "HTAB after a coding"),
        ("GET .a HTTP/1.1\r\nHost: x\r\n\r\n", "a target of no known form"),
        ("GET http://a|b/ HTTP/1.1\r\nHost: x\r\n\r\n", "an absolute-form authority with a bad character"),
    ])
    func faultsAreRefused(request: String, why: String) {
        let (parts, failure) = Self.decode(request)
        guard case .malformed = failure else {
            Issue.record("\(why): not refused: \(parts) \(String(describing: failure))")
            return
        }
        #expect(!parts.contains("end"), "\(why)")
    }

    @Test func headsOverTheLimitAre431WhetherCompleteOrNot() {
        let big = String(repeating: "b", count: RequestDecoder.maxHeadBytes)
        #expect(Self.decode("GET / HTTP/1.1\r\nX: \(big)\r\n\r\n").failure == .headTooLarge)
        #expect(Self.decode("GET / HTTP/1.1\r\nX: \(big)").failure == .headTooLarge)
        let fits = String(repeating: "b", count: RequestDecoder.maxHeadBytes - 100)
        #expect(Self.decode("GET / HTTP/1.1\r\nX: \(fits)\r\n\r\n").parts.count == 2)
    }

    /// A refused framing hands on its head and nothing after it; `RequestFraming` then answers it,
    /// always (the decoder relies on that: its refusal must be a framing violation).
    @Test(arguments: [
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
    ])
    func refusedFramingsStopAfterTheirHeadAndAreAnswered(request: String) {
        var decoder = RequestDecoder()
        var heads: [HTTPRequestHead] = []
        var others = 0
        #expect(throws: Never.self) {
            try decoder.feed(ByteBuffer(string: request)) { part in
                if case .head(let head) = part { heads.append(head) } else { others += 1 }
            }
        }
        #expect(heads.count == 1 && others == 0)
        if let head = heads.first { #expect(RequestFraming.violation(head) != nil) }
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    ])
    func nothingIsReadAfterARequestThatEndsTheConnection(request: String) {
        let (parts, failure) = Self.decode(request + "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(parts.count == 2 && parts.last == "end" && failure == nil)
    }

    @Test func anHTTP10RequestAskingForKeepAliveIsFollowedByTheNext() {
        #expect(Self.decode("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n").parts.count == 4)
    }

    @Test func afterAFaultNothingMoreIsDecoded() {
        var decoder = RequestDecoder()
        var parts = 0
        #expect(throws: RequestDecoder.Failure.self) {
            try decoder.feed(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n")) { _ in parts += 1 }
        }
        #expect(parts == 2)
        #expect(throws: Never.self) {
            try decoder.feed(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n")) { _ in parts += 1 }
        }
        #expect(parts == 2)
    }
}
