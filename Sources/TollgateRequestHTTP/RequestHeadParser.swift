import NIOHTTP1
import TollgateUpstreamHTTP

/// How a request's body is framed, and whether anything may follow the request on its connection.
struct RequestFramingChoice {
    enum Body: Equatable {
        case none
        case length(Int)
        case chunked
        /// Framed in a way the gateway refuses (``RequestDecoder``): nothing after the head is read.
        case refused
    }

    var body: Body
    /// The request asks for another protocol, or for the connection to close after it (`close`,
    /// or HTTP/1.0 without `keep-alive`): nothing after it is read.
    var last: Bool
}

/// Parses one request head — request line, fields, the final empty line — from its bytes into NIO's
/// `HTTPRequestHead` (what the policies read) and the body's framing. The lines are counted first,
/// so the fields array is made once at its size, then parsed in one pass; a String is made only for
/// the target and for each field's name and value.
enum RequestHeadParser {
    typealias Failure = RequestDecoder.Failure

    static func parse(_ p: UnsafeRawBufferPointer) throws(Failure) -> (HTTPRequestHead, RequestFramingChoice) {
        var lines = CRLFLines(p)
        guard let requestLine = try lines.next() else { throw .malformed("empty head") }
        let (method, uri, version) = try Self.requestLine(requestLine)

        var fields: [(String, String)] = []
        fields.reserveCapacity(lines.remainingLineCount)
        var contentLength: Int?
        var transferEncoding = false
        var chunkedCount = 0
        var chunkedLast = false
        var otherCoding = false
        var upgrade = false
        var connection = ConnectionOptions()
        while let line = try lines.next(), !line.isEmpty {
            let (name, value) = try field(line)
            switch name.count {
            case 14 where HeadFields.equalsLowercased(name, "content-length"):
                try noTab(after: value, in: line)
                guard contentLength == nil else { throw .malformed("more than one Content-Length") }
                guard !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw .malformed("bad Content-Length")
                }
                contentLength = value.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            case 17 where HeadFields.equalsLowercased(name, "transfer-encoding"):
                try noTab(after: value, in: line)
                transferEncoding = true
                for item in HeadFields.CommaItems(value) {
                    let coding = HeadFields.trim(item)
                    if coding.isEmpty { continue }
                    chunkedLast = HeadFields.equalsLowercased(coding, "chunked")
                    if chunkedLast { chunkedCount += 1 } else { otherCoding = true }
                }
            case 7 where HeadFields.equalsLowercased(name, "upgrade"):
                upgrade = true
            case 10 where HeadFields.equalsLowercased(name, "connection"):
                connection.read(value)
            default:
                break
            }
            fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }

        var body = RequestFramingChoice.Body.none
        if transferEncoding {
            // §6.3: the length cannot be known unless chunked is the final coding, applied once.
            guard chunkedLast, chunkedCount == 1 else { throw .malformed("chunked is not the final transfer coding, once") }
            let refused = version.minor == 0 || contentLength != nil || otherCoding
            body = refused ? .refused : .chunked
        } else if let length = contentLength, length > 0 {
            body = .length(length)
        }
        let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(fields))
        let last = !connection.keepConnection(minor: version.minor, upgrade: upgrade)
        return (head, RequestFramingChoice(body: body, last: last))
    }

    /// `name ":" OWS value OWS`: the name a token directly followed by the colon (§5.1), not
    /// folded (§5.2), the value without control characters but HTAB. Returns the name and the
    /// trimmed value.
    static func field(_ line: UnsafeRawBufferPointer) throws(Failure) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            throw line.first == 0x20 || line.first == 0x09 ? .malformed("obsolete line folding") : .malformed("field without a colon")
        }
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        guard !name.isEmpty, name.allSatisfy(UpstreamResponseParser.isTokenByte) else { throw .malformed("bad field name") }
        let value = HeadFields.trim(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
        guard !value.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else { throw .malformed("control character in a field") }
        return (name, value)
    }

    /// The framing fields' values may not hold or end in HTAB (only spaces), as llhttp requires:
    /// a value two parsers could read differently is refused.
    private static func noTab(after value: UnsafeRawBufferPointer, in line: UnsafeRawBufferPointer) throws(Failure) {
        let start = value.baseAddress.map { $0 - line.baseAddress! } ?? line.count
        if line[start...].contains(0x09) { throw .malformed("tab in a framing field") }
    }

    /// `method SP request-target SP HTTP-version`.
    private static func requestLine(_ line: UnsafeRawBufferPointer) throws(Failure) -> (HTTPMethod, String, HTTPVersion) {
        guard let space = line.firstIndex(of: 0x20), space > 0 else { throw .malformed("bad request line") }
        let method = UnsafeRawBufferPointer(rebasing: line[..<space])
        guard method.allSatisfy(UpstreamResponseParser.isTokenByte) else { throw .malformed("bad method") }
        let rest = UnsafeRawBufferPointer(rebasing: line[(space + 1)...])
        guard let second = rest.firstIndex(of: 0x20), second > 0 else { throw .malformed("bad request line") }
        let target = UnsafeRawBufferPointer(rebasing: rest[..<second])
        guard target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), isRequestTargetForm(target) else { throw .malformed("bad request target") }
        let version = UnsafeRawBufferPointer(rebasing: rest[(second + 1)...])
        guard version.count == 8, version.starts(with: HeadFields.http1Prefix), version[7] == 0x31 || version[7] == 0x30 else {
            throw .malformed("unsupported HTTP version")
        }
        return (Self.method(method), String(decoding: target, as: UTF8.self), version[7] == 0x31 ? .http1_1 : .http1_0)
    }

    /// Origin-form (`/path`), absolute-form with an `http` or `https` scheme, or `*` (§3.2). The
    /// authority-form is CONNECT's, which a gateway does not serve.
    private static func isRequestTargetForm(_ t: UnsafeRawBufferPointer) -> Bool {
        if t[0] == UInt8(ascii: "/") { return true }
        if t.count == 1 { return t[0] == UInt8(ascii: "*") }
        let scheme = t.firstIndex(of: UInt8(ascii: ":")).map { UnsafeRawBufferPointer(rebasing: t[..<$0]) }
        guard let scheme, HeadFields.equalsLowercased(scheme, "http") || HeadFields.equalsLowercased(scheme, "https"),
              t[scheme.count...].starts(with: "://".utf8) else { return false }
        // The authority: a host and optional port (no user info), as a `Host` field must be.
        let authority = t[(scheme.count + 3)...].prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") }
        return !authority.isEmpty && HostSyntax.isValid(UnsafeRawBufferPointer(rebasing: authority))
    }

    /// The common methods without building a String first; any other token as NIO names it.
    private static func method(_ b: UnsafeRawBufferPointer) -> HTTPMethod {
        switch b.count {
        case 3 where b[0] == 0x47 && b[1] == 0x45 && b[2] == 0x54: .GET
        case 3 where b[0] == 0x50 && b[1] == 0x55 && b[2] == 0x54: .PUT
        case 4 where b[0] == 0x50 && b[1] == 0x4F && b[2] == 0x53 && b[3] == 0x54: .POST
        case 4 where b[0] == 0x48 && b[1] == 0x45 && b[2] == 0x41 && b[3] == 0x44: .HEAD
        default: HTTPMethod(rawValue: String(decoding: b, as: UTF8.self))
        }
    }
}

/// The lines of a head, each ended by CRLF: a line with a bare CR or LF in it is a fault.
struct CRLFLines {
    private let p: UnsafeRawBufferPointer
    private var index: Int

    init(_ p: UnsafeRawBufferPointer) {
        self.p = p
        index = p.startIndex
    }

    /// The next line without its CRLF; nil at the end.
    mutating func next() throws(RequestDecoder.Failure) -> UnsafeRawBufferPointer? {
        guard index < p.endIndex else { return nil }
        var end = index
        while end < p.endIndex, p[end] != 0x0A, p[end] != 0x0D { end += 1 }
        guard end + 1 < p.endIndex, p[end] == 0x0D, p[end + 1] == 0x0A else { throw .malformed("line not ended by CRLF") }
        let line = UnsafeRawBufferPointer(rebasing: p[index..<end])
        index = end + 2
        return line
    }

    /// How many lines are left (an upper bound on the fields: the last is the empty one).
    var remainingLineCount: Int {
        var n = 0
        for i in index..<p.endIndex where p[i] == 0x0A { n += 1 }
        return max(n - 1, 0)
    }
}
