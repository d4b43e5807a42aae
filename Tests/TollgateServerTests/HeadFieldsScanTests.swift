import Testing
@testable import TollgateUpstreamHTTP

/// `HeadFields.parse` checks each field line in one pass. These tests hold it to the four-pass
/// version it replaced — kept below, written line by line as before — on every line shape a
/// response head can have, and on random near-miss heads: same status, same framing facts, same
/// refusal (and reason, which goes to the log).
@Suite struct HeadFieldsScanTests {
    /// What a parse concluded, comparable.
    struct Outcome: Equatable {
        var code: Int?
        var failure: String?
        var http11 = true, connectionClose = false, transferEncoding = false, chunkedLast = false, chunkedEarlier = false
        var contentLength: Int?
        var contentType: Range<Int>?
    }

    static func scanned(_ head: [UInt8]) -> Outcome {
        head.withUnsafeBytes { p in
            var fields = HeadFields()
            var out = Outcome()
            do throws(UpstreamResponseParser.Failure) { out.code = try fields.parse(p) } catch {
                if case .malformed(let why) = error { out.failure = why } else { out.failure = "\(error)" }
            }
            if out.failure == nil {
                out.http11 = fields.http11; out.connectionClose = fields.connectionClose; out.transferEncoding = fields.transferEncoding
                out.chunkedLast = fields.chunkedLast; out.chunkedEarlier = fields.chunkedEarlier
                out.contentLength = fields.contentLength; out.contentType = fields.contentType
            }
            return out
        }
    }

    @Test func everyLineShapeAsBefore() {
        let lines = ["Content-Length: 12", "content-length:12 ", "Content-Length: 1, 1", "Content-Length: 1,2", "Content-Length: x",
                     "Transfer-Encoding: gzip, chunked", "transfer-encoding: chunked, gzip", "Connection: keep-alive, close",
                     "Content-Type:\tapplication/json ", "Content-Type:", "Content-Type:\r", " folded: x", "\tfolded: x",
                     "no colon", ": empty name", "bad name: x", "na\rme: x", "Name: a\rb", "Name: a\u{7F}", "Name: a\u{01}",
                     "Name: \t a \t", "Name:\r\r", "X:y:z", "\r", "", "Name: é"]
        for line in lines {
            for ending in ["\r\n", "\n"] {
                for status in ["HTTP/1.1 200 OK", "HTTP/1.0 204", "HTTP/1.1 99 x"] {
                    let head = Array("\(status)\r\nServer: t\r\n\(line)\(ending)Date: d\r\n\r\n".utf8)
                    #expect(Self.scanned(head) == Self.reference(head), "\(line.debugDescription)")
                    let cut = Array("\(status)\r\n\(line)".utf8)  // the head's end inside the line
                    #expect(Self.scanned(cut) == Self.reference(cut), "cut \(line.debugDescription)")
                }
            }
        }
    }

    @Test func randomNearMissHeadsAsBefore() {
        let pieces = ["\r", "\n", "\r\n", ":", " ", "\t", ",", "\u{0}", "\u{7F}", "a", "Z", "0", "9", "é", "content-length",
                      "Content-Type", "transfer-encoding", "chunked", "connection", "close", "12", "-", "(", "\r\n\r\n"]
        var rng = SystemRandomNumberGenerator()
        var differing = 0
        for _ in 0..<20_000 {
            var text = "HTTP/1.1 200 OK\r\n"
            for _ in 0..<Int.random(in: 0...24, using: &rng) { text += pieces.randomElement(using: &rng)! }
            let head = Array(text.utf8)
            if Self.scanned(head) != Self.reference(head) {
                differing += 1
                if differing <= 3 { Issue.record("differs on \(text.debugDescription)") }
            }
        }
        #expect(differing == 0)
    }

    /// ASCII case-insensitive comparison for the reference, written apart from the one under test.
    static func same(_ bytes: UnsafeRawBufferPointer, _ lowercased: String) -> Bool {
        Array(bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }) == Array(lowercased.utf8)
    }

    /// The parse as it was: split into lines, then find the colon, check the name, check the value.
    static func reference(_ head: [UInt8]) -> Outcome {
        head.withUnsafeBytes { p in
            var out = Outcome()
            do throws(UpstreamResponseParser.Failure) {
                var lines = HeadFields.Lines(p)
                guard let status = lines.next() else { throw .malformed("empty head") }
                guard status.count >= 12, status.starts(with: HeadFields.http1Prefix), status[status.startIndex + 7] == UInt8(ascii: "1")
                        || status[status.startIndex + 7] == UInt8(ascii: "0"), status[status.startIndex + 8] == UInt8(ascii: " ") else {
                    throw .malformed("bad status line")
                }
                out.http11 = status[status.startIndex + 7] == UInt8(ascii: "1")
                var code = 0
                for i in 9..<12 {
                    let d = status[status.startIndex + i]
                    guard d >= 0x30, d <= 0x39 else { throw .malformed("bad status code") }
                    code = code * 10 + Int(d - 0x30)
                }
                guard code >= 100, code <= 599, status.count == 12 || status[status.startIndex + 12] == UInt8(ascii: " ") else {
                    throw .malformed("bad status line")
                }
                while let line = lines.next() {
                    if line.isEmpty { break }
                    let first = line[line.startIndex]
                    guard first != UInt8(ascii: " "), first != UInt8(ascii: "\t") else { throw .malformed("obsolete line folding") }
                    guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw .malformed("header without colon") }
                    let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
                    guard !name.isEmpty, name.allSatisfy(UpstreamResponseParser.isTokenByte) else { throw .malformed("bad header name") }
                    let value = HeadFields.trim(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
                    guard !value.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) else { throw .malformed("control character in header") }
                    switch name.count {
                    case 14 where same(name, "content-length"):
                        for item in HeadFields.CommaItems(value) {
                            let digits = HeadFields.trim(item)
                            guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                                throw .malformed("bad content-length")
                            }
                            let n = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                            if let c = out.contentLength, c != n { throw .malformed("conflicting content-length") }
                            out.contentLength = n
                        }
                    case 17 where same(name, "transfer-encoding"):
                        for item in HeadFields.CommaItems(value) where !item.isEmpty {
                            if out.chunkedLast { out.chunkedEarlier = true }
                            out.chunkedLast = same(HeadFields.trim(item), "chunked")
                            out.transferEncoding = true
                        }
                    case 12 where out.contentType == nil && same(name, "content-type"):
                        let start = value.baseAddress.map { $0 - p.baseAddress! } ?? 0
                        out.contentType = start..<(start + value.count)
                    case 10 where same(name, "connection"):
                        for item in HeadFields.CommaItems(value) where !item.isEmpty && same(HeadFields.trim(item), "close") {
                            out.connectionClose = true
                        }
                    default:
                        break
                    }
                }
                out.code = code
            } catch {
                if case .malformed(let why) = error { out.failure = why } else { out.failure = "\(error)" }
                return Outcome(code: nil, failure: out.failure)
            }
            return out
        }
    }
}
