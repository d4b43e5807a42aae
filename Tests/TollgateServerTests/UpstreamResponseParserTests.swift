import NIOCore
import Testing
@testable import TollgateServer
@testable import TollgateUpstreamHTTP

/// Framing cases of RFC 9112 §6 for upstream responses.
@Suite struct UpstreamResponseParserTests {
    func parse(_ chunks: [String], head: Bool = false, max: Int = 1 << 20, eof: Bool = false) throws -> UpstreamResponse? {
        var parser = UpstreamResponseParser(maxBodyBytes: max, requestWasHEAD: head)
        for chunk in chunks {
            var buffer = ByteBuffer(string: chunk)
            if let response = try parser.feed(&buffer) { return response }
        }
        return eof ? try parser.finish() : nil
    }

    func body(_ r: UpstreamResponse?) -> String { r.map { String(buffer: $0.body) } ?? "<incomplete>" }

    /// `Keep-Alive: timeout=N` tells the pool how long the upstream keeps an idle connection;
    /// advisory, so an unreadable value is ignored rather than refused.
    @Test func theUpstreamsKeepAliveTimeoutIsRead() throws {
        let cases: [(String, Int?)] = [
            ("Keep-Alive: timeout=5", 5), ("keep-alive: max=100, TIMEOUT=30", 30), ("Keep-Alive:  timeout=0 ", 0),
            ("Keep-Alive: timeout=99999999", 86_400), ("Keep-Alive: timeout=", nil), ("Keep-Alive: timeout=5s", nil),
            ("Keep-Alive: timeout=9999999999", nil), ("Keep-Alive: max=5", nil), ("X-Keep-Alive: timeout=5", nil),
        ]
        for (field, expected) in cases {
            let r = try parse(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\(field)\r\n\r\nok"])
            #expect(r?.keepAlive == true && r?.keepAliveTimeout == expected, "\(field)")
        }
        #expect(try parse(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])?.keepAliveTimeout == nil)
    }

    @Test func contentLengthAcrossReads() throws {
        let r = try parse(["HTTP/1.1 200 OK\r\nContent-Le", "ngth: 5\r\n\r\nhel", "lo"])
        #expect(r?.status == 200 && body(r) == "hello" && r?.keepAlive == true)
        #expect(try parse(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"]) == nil)
    }

    /// A body that arrives in one read is the read's bytes themselves; the reader reusing its
    /// buffer afterwards (as NIO does) must not change the response it was handed.
    @Test func aBodyInOneReadSurvivesTheReadBufferBeingReused() throws {
        var parser = UpstreamResponseParser(maxBodyBytes: 1 << 20, requestWasHEAD: false)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        let r = try #require(try parser.feed(&buffer))
        buffer.clear()
        buffer.writeString(String(repeating: "X", count: 64))
        #expect(body(r) == "hello")
    }

    /// The `Content-Type` the parser notes while validating is the one a search of the head finds:
    /// the first such field, any case, trimmed, across reads.
    @Test func contentTypeNotedWhileParsingIsTheFirstField() throws {
        let heads: [([String], String?)] = [
            (["HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"], "application/json"),
            (["HTTP/1.1 200 OK\r\ncontent-TYPE:\t text/plain ; q=1 \r\nContent-Type: b/c\r\nContent-Length: 0\r\n\r\n"], "text/plain ; q=1"),
            (["HTTP/1.1 200 OK\r\nX-Content-Type: no\r\nContent-Length: 0\r\n\r\n"], nil),
            (["HTTP/1.1 200 OK\r\nContent-Ty", "pe: image/png\r\nContent-Length: 0\r\n\r\n"], "image/png"),
            (["HTTP/1.1 200 OK\r\nContent-Type:\r\nContent-Length: 0\r\n\r\n"], ""),
        ]
        for (chunks, expected) in heads {
            let r = try #require(try parse(chunks))
            #expect(r.headers.contentType == expected, "\(chunks)")
            #expect(r.headers.first("content-type") == expected, "\(chunks)")
            #expect(UpstreamHeaders(block: r.headers.block).contentType == expected)
        }
    }

    @Test func chunkedWithExtensionsAndTrailers() throws {
        let r = try parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n", "2\r\nde\r\n0\r\nT: 1\r\n\r\n"])
        #expect(body(r) == "abcde" && r?.keepAlive == true)
        #expect(throws: UpstreamResponseParser.Failure.self) {
            _ = try parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
        }
    }

    /// Heads and lines searched once per byte must still be found whatever the split: a byte per read.
    @Test func aResponseReadOneByteAtATimeIsTheSame() throws {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
        let r = try parse(text.utf8.map { String(decoding: [$0], as: UTF8.self) })
        #expect(r?.status == 200 && body(r) == "abcde" && r?.keepAlive == true)
    }

    @Test func interimResponsesAreSkipped() throws {
        let r = try parse(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"])
        #expect(r?.status == 201 && body(r) == "ok")
        #expect(throws: UpstreamResponseParser.Failure.self) { _ = try parse(["HTTP/1.1 101 Switching\r\n\r\n"]) }
    }

    @Test func noBodyForHeadAnd204And304() throws {
        #expect(try parse(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], head: true)?.status == 200)
        #expect(try parse(["HTTP/1.1 204 No Content\r\n\r\n"])?.status == 204)
        #expect(try parse(["HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"])?.status == 304)
    }

    @Test func readUntilCloseIsNotReusable() throws {
        let r = try parse(["HTTP/1.1 200 OK\r\n\r\npart1", "part2"], eof: true)
        #expect(body(r) == "part1part2" && r?.keepAlive == false)
        #expect(throws: UpstreamResponseParser.Failure.unexpectedEnd) {
            _ = try parse(["HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"], eof: true)
        }
    }

    @Test func ambiguousFramingIsRefused() {
        for bad in ["HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
                    "HTTP/2 200 OK\r\n\r\n",
                    "SURPRISE this is not http\r\n\r\n"] {
            #expect(throws: UpstreamResponseParser.Failure.self, "\(bad)") { _ = try parse([bad]) }
        }
    }

    @Test func transferEncodingWithContentLengthDisablesReuse() throws {
        let r = try parse(["HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"])
        #expect(body(r) == "x" && r?.keepAlive == false)
    }

    @Test func connectionCloseAndHTTP10AreNotReused() throws {
        #expect(try parse(["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"])?.keepAlive == false)
        #expect(try parse(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"])?.keepAlive == false)
    }

    @Test func sizesAreBounded() {
        #expect(throws: UpstreamResponseParser.Failure.bodyTooLarge) {
            _ = try parse(["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"], max: 10)
        }
        #expect(throws: UpstreamResponseParser.Failure.bodyTooLarge) {
            _ = try parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + String(repeating: "x", count: 32)], max: 10)
        }
        #expect(throws: UpstreamResponseParser.Failure.headTooLarge) {
            _ = try parse(["HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 70_000)])
        }
    }

    @Test func extraBytesAfterResponseMakeConnectionUnusable() throws {
        let r = try parse(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"])
        #expect(body(r) == "ok" && r?.keepAlive == false)
    }
}
