import NIOCore
import NIOHPACK
import NIOHTTP1
import Testing
import TollgateCore
@testable import TollgateServer

/// HTTP/1.1 bytes and HTTP/2 fields of one response carry the same fields, in the same order
/// (lowercase over HTTP/2, after `:status`, without `Connection`).
@Suite struct ResponseEncoderTests {
    /// The header lines of an HTTP/1.1 rendering, as (name, value) pairs.
    private func h1Fields(_ response: Response, problemText: String?, keepAlive: Bool, hsts: String?) -> [(String, String)] {
        var buffer = ByteBuffer()
        ResponseEncoder.write(response, problemText: problemText, requestID: "req-1", keepAlive: keepAlive, hsts: hsts, into: &buffer)
        let text = buffer.readString(length: buffer.readableBytes)!
        let head = text.components(separatedBy: "\r\n\r\n")[0]
        return head.components(separatedBy: "\r\n").dropFirst().map { line in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), String(line[line.index(after: colon)...].dropFirst()))
        }
    }

    private func responses() -> [(Response, String?)] {
        var limited = Response.served(200, contentType: "application/json", body: ByteBuffer(string: "{}"),
                                      headers: [("Access-Control-Allow-Origin", "https://shop.example")])
        var state = RateLimitState(policy: "\"ip\";q=3;w=60")
        state.append("ip", remaining: 2, resetNanos: 20_000_000_000)
        limited.rateLimit = state
        var page = Response.served(200, contentType: "text/html", body: ByteBuffer(string: "<p>hi</p>"))
        page.isPage = true
        page.cacheControl = "max-age=60"
        let problem = Response.problem(.methodNotAllowed(allow: ["GET"]), requestID: "req-1", by: .stage(.routing))
        return [(limited, nil), (page, nil), (problem, "{\"status\":405}")]
    }

    @Test func http2FieldsAreTheHTTP1HeadersLowercaseWithoutConnection() {
        for (response, problemText) in responses() {
            for hsts in [nil, "max-age=60"] as [String?] {
                let h1 = h1Fields(response, problemText: problemText, keepAlive: false,
                                  hsts: hsts.map { "Strict-Transport-Security: \($0)\r\n" })
                let h2 = HTTP2Fields.response(response, problemText: problemText, requestID: "req-1", hsts: hsts).map { ($0.name, $0.value) }
                #expect(h2.first.map { "\($0.0): \($0.1)" } == ":status: \(response.status)")
                #expect(h1.filter { $0.0 != "Connection" }.map { "\($0.0.lowercased()): \($0.1)" } == h2.dropFirst().map { "\($0.0): \($0.1)" })
                #expect(h1.contains { $0 == ("Connection", "close") })
                #expect(!h2.contains { $0.0 == "connection" })
                #expect(h2.allSatisfy { $0.0 == $0.0.lowercased() })
                #expect(h2.contains { $0.0 == "x-content-type-options" && $0.1 == "nosniff" })
            }
        }
    }

    /// Over HTTP/2 every field is indexed in HPACK's dynamic table, except the request id after the
    /// connection's first response: new every time, it is sent naming the first one's entry.
    @Test func http2FieldsIndexAllButLaterRequestIDs() {
        let (limited, _) = responses()[0]
        for first in [true, false] {
            let fields = HTTP2Fields.response(limited, problemText: nil, requestID: "req-1", hsts: "max-age=60", firstOnConnection: first)
            for field in fields {
                #expect((field.indexable == .nonIndexable) == (!first && field.name == "x-request-id"), "\(field.name)")
            }
            #expect(fields.contains { $0.name == "x-request-id" })
        }
    }

    /// Numbers written into a response buffer as digits read back as the numbers.
    @Test func buffersWriteDecimals() {
        for n: Int64 in [0, 5, 10, 99, 100, 65_535, 1_234_567, -1, -40, .max, .min] {
            var buffer = ByteBuffer(string: "x")
            buffer.appendDecimal(n)
            #expect(String(buffer: buffer) == "x" + String(n))
        }
    }
}
