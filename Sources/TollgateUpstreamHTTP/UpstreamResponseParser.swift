import NIOCore

/// An upstream response, fully received.
package struct UpstreamResponse {
    package var status: Int
    package var headers: UpstreamHeaders
    package var body: ByteBuffer
    /// Whether the connection may carry another request.
    package var keepAlive: Bool
    /// How long the upstream says it keeps the connection idle (`Keep-Alive: timeout=N`, seconds).
    package var keepAliveTimeout: Int? = nil
}

/// Parses one HTTP/1.1 response from the bytes an upstream sends, following RFC 9112's framing rules:
/// Content-Length, chunked, read-until-close, no body for HEAD/1xx/204/304, interim 1xx responses
/// skipped. Anything ambiguous (differing Content-Lengths, a transfer coding other than chunked,
/// obsolete line folding, an upgrade) is refused rather than guessed at. Head and body sizes are bounded.
package struct UpstreamResponseParser {
    package enum Failure: Error, Equatable {
        case malformed(String)
        case headTooLarge
        case bodyTooLarge
        case unexpectedEnd
    }

    private enum State {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    static let maxHeadBytes = 64 * 1024
    static let maxLineBytes = 8 * 1024

    let maxBodyBytes: Int
    let requestWasHEAD: Bool
    private var state = State.head
    private var pending: ByteBuffer?
    private var status = 0
    private var headers = UpstreamHeaders(block: Self.empty)
    /// The body so far: the first read's bytes themselves (a slice, no copy: a body that arrives
    /// in one read, the common case, costs no allocation), copied into a buffer of its own only
    /// when a second read adds to it.
    private var body = Self.empty
    /// One empty buffer for every parser (an empty body, the headers before the head is read).
    private static let empty = ByteBuffer()
    private var keepAlive = true
    private var keepAliveTimeout: Int?
    /// How far into the pending bytes the search for the end of the head or line still arriving
    /// has already looked: each byte is searched once, however the input is split.
    private var searched = 0
    /// True once any byte of a response arrived (a stale pooled connection fails before that).
    package private(set) var receivedAnything = false

    package init(maxBodyBytes: Int, requestWasHEAD: Bool) {
        self.maxBodyBytes = maxBodyBytes
        self.requestWasHEAD = requestWasHEAD
    }

    /// Consumes `bytes`; returns the response once it is complete.
    package mutating func feed(_ bytes: inout ByteBuffer) throws(Failure) -> UpstreamResponse? {
        if bytes.readableBytes > 0 { receivedAnything = true }
        if pending == nil || pending!.readableBytes == 0 {
            pending = bytes
        } else {
            pending!.writeBuffer(&bytes)
        }
        return try advance()
    }

    /// The upstream closed the connection; completes a read-until-close body, otherwise fails.
    package mutating func finish() throws(Failure) -> UpstreamResponse {
        if case .untilClose = state {
            return UpstreamResponse(status: status, headers: headers, body: body, keepAlive: false)
        }
        throw .unexpectedEnd
    }

    private mutating func advance() throws(Failure) -> UpstreamResponse? {
        while var buffer = pending, buffer.readableBytes > 0 {
            switch state {
            case .head:
                guard let headEnd = Self.find(crlfcrlf: buffer, from: searched) else {
                    if buffer.readableBytes > Self.maxHeadBytes { throw .headTooLarge }
                    searched = max(0, buffer.readableBytes - 3)  // a CRLFCRLF may straddle the next read
                    return nil
                }
                searched = 0
                guard headEnd <= Self.maxHeadBytes else { throw .headTooLarge }
                let head = buffer.readSlice(length: headEnd + 4)!
                pending = buffer
                if let done = try parseHead(head) { return done }
            case .fixed(let remaining):
                let n = min(remaining, buffer.readableBytes)
                try append(&buffer, n)
                pending = buffer
                if remaining - n == 0 { return complete() }
                state = .fixed(remaining: remaining - n)
            case .chunkSize:
                guard let line = try readLine(&buffer) else { return nil }
                let sizeText = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters() } ?? ""
                guard !sizeText.isEmpty, sizeText.count <= 16, let size = Int(sizeText, radix: 16), size >= 0 else {
                    throw .malformed("bad chunk size")
                }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, buffer.readableBytes)
                try append(&buffer, n)
                pending = buffer
                state = remaining - n == 0 ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            case .chunkDataEnd:
                guard let line = try readLine(&buffer) else { return nil }
                guard line.isEmpty else { throw .malformed("chunk not followed by CRLF") }
                state = .chunkSize
            case .trailers:
                guard let line = try readLine(&buffer) else { return nil }
                if line.isEmpty { return complete() }
            case .untilClose:
                let n = buffer.readableBytes
                try append(&buffer, n)
                pending = buffer
                return nil
            }
        }
        return nil
    }

    private mutating func append(_ buffer: inout ByteBuffer, _ n: Int) throws(Failure) {
        guard body.readableBytes + n <= maxBodyBytes else { throw .bodyTooLarge }
        var slice = buffer.readSlice(length: n)!
        if body.readableBytes == 0 {
            body = slice
        } else {
            body.writeBuffer(&slice)
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF) from the pending bytes.
    private mutating func readLine(_ buffer: inout ByteBuffer) throws(Failure) -> String? {
        guard let cr = buffer.readableBytesView.dropFirst(searched).firstIndex(of: 13) else {
            if buffer.readableBytes > Self.maxLineBytes { throw .malformed("line too long") }
            searched = buffer.readableBytes
            return nil
        }
        let offset = cr - buffer.readerIndex
        guard buffer.readableBytes > offset + 1 else {
            searched = offset  // the CR is found again once its LF arrives
            return nil
        }
        searched = 0
        guard buffer.getInteger(at: cr + 1, as: UInt8.self) == 10 else { throw .malformed("bare CR") }
        let line = buffer.readString(length: offset)!
        buffer.moveReaderIndex(forwardBy: 2)
        pending = buffer
        return line
    }

    private mutating func complete() -> UpstreamResponse {
        UpstreamResponse(status: status, headers: headers, body: body, keepAlive: keepAlive && (pending?.readableBytes ?? 0) == 0,
                         keepAliveTimeout: keepAliveTimeout)
    }

    /// Parses a status line and header block (bytes, no String per header); returns the response
    /// when it has no body.
    private mutating func parseHead(_ head: ByteBuffer) throws(Failure) -> UpstreamResponse? {
        var fields = HeadFields()
        let code: Int = try head.withUnsafeReadableBytes { p throws(Failure) -> Int in
            try fields.parse(p)
        }
        if (100...199).contains(code) {
            if code == 101 { throw .malformed("unexpected protocol upgrade") }
            return nil // interim response: the real one follows
        }
        status = code
        headers = UpstreamHeaders(block: head, contentTypeRange: fields.contentType)
        keepAlive = fields.http11 && !fields.connectionClose
        keepAliveTimeout = fields.keepAliveTimeout

        if requestWasHEAD || code == 204 || code == 304 {
            return complete()
        }
        if fields.transferEncoding {
            guard fields.chunkedLast, !fields.chunkedEarlier else { throw .malformed("unsupported transfer-encoding") }
            if fields.contentLength != nil { keepAlive = false }
            state = .chunkSize
            return try advance()
        }
        if let length = fields.contentLength {
            guard length <= maxBodyBytes else { throw .bodyTooLarge }
            if length == 0 { return complete() }
            state = .fixed(remaining: length)
            return try advance()
        }
        keepAlive = false
        state = .untilClose
        return try advance()
    }

    package static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    /// Offset of the first CRLFCRLF in the readable bytes, if any, looking from offset `start`
    /// (a caller that has already searched the first bytes of a head that is still arriving
    /// resumes near where it stopped: searching from the beginning on every read would cost a
    /// head trickled a byte at a time quadratic time).
    package static func find(crlfcrlf buffer: ByteBuffer, from start: Int = 0) -> Int? {
        buffer.withUnsafeReadableBytes { raw -> Int? in
            let n = raw.count
            guard n >= 4 else { return nil }
            var i = max(0, start)
            while i <= n - 4 {
                if raw[i + 3] != 10 { i += raw[i + 3] == 13 ? 1 : 4; continue }
                if raw[i] == 13 && raw[i + 1] == 10 && raw[i + 2] == 13 { return i }
                i += 1
            }
            return nil
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    package func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
