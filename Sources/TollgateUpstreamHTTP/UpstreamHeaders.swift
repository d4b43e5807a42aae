import NIOCore

/// The header block of an upstream response, kept as the bytes received. Looking a field up scans
/// the block; nothing is turned into Strings unless asked for, which keeps the relay path free of
/// per-header allocations.
package struct UpstreamHeaders {
    /// Status line and fields, as received (already validated by ``HeadFields``).
    package let block: ByteBuffer
    /// Where the first `Content-Type` value is in `block` (offsets from its reader index), noted
    /// while the head was validated: every relayed response asks for it.
    let contentTypeRange: Range<Int>?

    /// `contentTypeRange` as the parser found it.
    init(block: ByteBuffer, contentTypeRange: Range<Int>?) {
        self.block = block
        self.contentTypeRange = contentTypeRange
    }

    /// A head not handed over by the parser (its empty start value, tests): the `Content-Type`
    /// value is looked for here.
    init(block: ByteBuffer) {
        var range: Range<Int>?
        block.withUnsafeReadableBytes { p in
            var fields = HeadFields()
            range = (try? fields.parse(p)) != nil ? fields.contentType : nil
        }
        self.init(block: block, contentTypeRange: range)
    }

    /// Values so common that a literal is handed out instead of a new string.
    private static let common = ["application/json", "application/json; charset=utf-8"]

    /// The value of the first `Content-Type` field, without another pass over the head.
    package var contentType: String? {
        guard let range = contentTypeRange else { return nil }
        return block.withUnsafeReadableBytes { Self.string(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// The value of the first field named `lowercasedName`.
    package func first(_ lowercasedName: String) -> String? {
        var found: String?
        forEach { name, value in
            if found == nil, HeadFields.equalsLowercased(name, lowercasedName) { found = Self.string(value) }
        }
        return found
    }

    private static func string(_ value: UnsafeRawBufferPointer) -> String {
        common.first { $0.utf8.elementsEqual(value) } ?? String(decoding: value, as: UTF8.self)
    }

    /// Every field named `lowercasedName`, with its name as sent.
    package func all(_ lowercasedName: String) -> [(String, String)] {
        var out: [(String, String)] = []
        forEach { name, value in
            if HeadFields.equalsLowercased(name, lowercasedName) {
                out.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
            }
        }
        return out
    }

    /// Calls `body` with each field's name and trimmed value.
    func forEach(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        block.withUnsafeReadableBytes { p in
            var lines = HeadFields.Lines(p)
            _ = lines.next() // status line
            while let line = lines.next(), line.count > 0 {
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
                let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
                let value = HeadFields.trim(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
                body(name, value)
            }
        }
    }
}

/// Validates a response head and extracts what framing needs, working on bytes. Its byte helpers
/// (`equalsLowercased`, `trim`, `CommaItems`) serve the request decoder too.
package struct HeadFields {
    var http11 = true
    var connectionClose = false
    /// `Keep-Alive: timeout=N` (seconds, at most a day): how long the upstream keeps an idle
    /// connection open. Advisory (RFC 9112 does not define the field): an unreadable value is ignored.
    var keepAliveTimeout: Int?
    var contentLength: Int?
    var transferEncoding = false
    var chunkedLast = false
    var chunkedEarlier = false
    /// The first `Content-Type` value, as offsets into the parsed head.
    var contentType: Range<Int>?

    typealias Failure = UpstreamResponseParser.Failure

    /// Parses the whole head (ending with CRLFCRLF); returns the status code.
    mutating func parse(_ p: UnsafeRawBufferPointer) throws(Failure) -> Int {
        var lines = Lines(p)
        guard let status = lines.next() else { throw .malformed("empty head") }
        // "HTTP/1.1 200" followed by a space and reason, or nothing.
        guard status.count >= 12, status.starts(with: Self.http1Prefix), status[status.startIndex + 7] == UInt8(ascii: "1")
                || status[status.startIndex + 7] == UInt8(ascii: "0"), status[status.startIndex + 8] == UInt8(ascii: " ") else {
            throw .malformed("bad status line")
        }
        http11 = status[status.startIndex + 7] == UInt8(ascii: "1")
        var code = 0
        for i in 9..<12 {
            let d = status[status.startIndex + i]
            guard d >= 0x30, d <= 0x39 else { throw .malformed("bad status code") }
            code = code * 10 + Int(d - 0x30)
        }
        guard code >= 100, code <= 599, status.count == 12 || status[status.startIndex + 12] == UInt8(ascii: " ") else {
            throw .malformed("bad status line")
        }
        var next = lines.index
        while let (name, value) = try Self.field(p, from: &next) {
            switch name.count {
            case 14 where Self.equalsLowercased(name, "content-length"):
                for item in CommaItems(value) {
                    let digits = Self.trim(item)
                    guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                        throw .malformed("bad content-length")
                    }
                    let n = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                    if let c = contentLength, c != n { throw .malformed("conflicting content-length") }
                    contentLength = n
                }
            case 17 where Self.equalsLowercased(name, "transfer-encoding"):
                for item in CommaItems(value) where !item.isEmpty {
                    let coding = Self.trim(item)
                    if chunkedLast { chunkedEarlier = true }
                    chunkedLast = Self.equalsLowercased(coding, "chunked")
                    transferEncoding = true
                }
            case 12 where contentType == nil && Self.equalsLowercased(name, "content-type"):
                let start = value.baseAddress.map { $0 - p.baseAddress! } ?? 0
                contentType = start..<(start + value.count)
            case 10 where Self.equalsLowercased(name, "connection"):
                for item in CommaItems(value) where !item.isEmpty && Self.equalsLowercased(Self.trim(item), "close") {
                    connectionClose = true
                }
            case 10 where Self.equalsLowercased(name, "keep-alive"):
                for item in CommaItems(value) {
                    let parameter = Self.trim(item)
                    guard parameter.count > 8, Self.equalsLowercased(UnsafeRawBufferPointer(rebasing: parameter[..<(parameter.startIndex + 8)]), "timeout=") else { continue }
                    let digits = parameter[(parameter.startIndex + 8)...]
                    guard digits.count <= 9, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { continue }
                    keepAliveTimeout = min(86_400, digits.reduce(0) { $0 * 10 + Int($1 - 0x30) })
                }
            default:
                break
            }
        }
        return code
    }

    /// The field line starting at `index` — its name and trimmed value — with `index` moved past
    /// it; nil at the blank line that ends the head (or at its end). One pass over the line's
    /// bytes checks everything RFC 9112 §5 asks of it: no leading whitespace (obsolete folding),
    /// a colon, a non-empty token name, no control characters but HTAB in the value. A line ends at
    /// LF, a CR just before it (or at the end of the head) dropped; any other CR is refused with
    /// the controls. (Four passes — find the line, find the colon, check the name, check the value
    /// — took 1.7 % of a proxied request's CPU.)
    @inline(__always)
    static func field(_ p: UnsafeRawBufferPointer, from index: inout Int)
        throws(Failure) -> (name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        let n = p.endIndex
        let start = index
        guard start < n else { return nil }
        let first = p[start]
        if first == 0x0A || first == 0x0D && (start + 1 == n || p[start + 1] == 0x0A) {
            index = min(n, start + (first == 0x0A ? 1 : 2))  // past the blank line
            return nil
        }
        guard first != UInt8(ascii: " "), first != UInt8(ascii: "\t") else { throw .malformed("obsolete line folding") }
        var i = start
        var tokenName = true
        while i < n {
            let b = p[i]
            if b == UInt8(ascii: ":") || b == 0x0A { break }
            tokenName = tokenName && UpstreamResponseParser.isTokenByte(b)
            i += 1
        }
        guard i < n, p[i] == UInt8(ascii: ":") else {
            // No colon before the line's end (a CR before the LF is not part of the name either).
            throw .malformed("header without colon")
        }
        guard i > start, tokenName else { throw .malformed("bad header name") }
        let colon = i
        i += 1
        var control = false
        while i < n {
            let b = p[i]
            if b == 0x0A { break }
            if b < 0x20 && b != 0x09 && !(b == 0x0D && (i + 1 == n || p[i + 1] == 0x0A)) || b == 0x7F { control = true }
            i += 1
        }
        var lineEnd = i
        if lineEnd > colon + 1, p[lineEnd - 1] == 0x0D { lineEnd -= 1 }
        index = i + 1
        guard !control else { throw .malformed("control character in header") }
        return (UnsafeRawBufferPointer(rebasing: p[start..<colon]), trim(UnsafeRawBufferPointer(rebasing: p[(colon + 1)..<lineEnd])))
    }

    package static let http1Prefix: [UInt8] = Array("HTTP/1.".utf8)

    /// ASCII case-insensitive comparison with an already lower-cased name.
    /// Lengths first, then the bytes side by side: walking a `String`'s UTF-8 view one element at
    /// a time cost more than the comparison itself.
    package static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercased: String) -> Bool {
        let utf8 = lowercased.utf8
        guard bytes.count == utf8.count else { return false }
        return utf8.withContiguousStorageIfAvailable { l in
            for i in 0..<l.count {
                let b = bytes[i]
                if (b >= 0x41 && b <= 0x5A ? b | 0x20 : b) != l[i] { return false }
            }
            return true
        } ?? bytes.elementsEqual(utf8) { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }
    }

    /// Without leading and trailing spaces and tabs.
    package static func trim(_ p: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = p.startIndex
        var end = p.endIndex
        while start < end, p[start] == 0x20 || p[start] == 0x09 { start += 1 }
        while end > start, p[end - 1] == 0x20 || p[end - 1] == 0x09 { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: p[start..<end])
    }

    /// The comma-separated items of a field value, empty ones included, as views of its bytes
    /// (`split` would build an array per header).
    package struct CommaItems: Sequence, IteratorProtocol {
        private let p: UnsafeRawBufferPointer
        private var start: Int
        private var finished = false

        package init(_ p: UnsafeRawBufferPointer) {
            self.p = p
            start = p.startIndex
        }

        package mutating func next() -> UnsafeRawBufferPointer? {
            guard !finished else { return nil }
            var end = start
            while end < p.endIndex, p[end] != UInt8(ascii: ",") { end += 1 }
            let item = UnsafeRawBufferPointer(rebasing: p[start..<end])
            if end == p.endIndex { finished = true } else { start = end + 1 }
            return item
        }
    }

    /// CRLF-separated lines (a bare LF also ends a line; a bare CR is kept and later refused).
    struct Lines {
        let p: UnsafeRawBufferPointer
        var index: Int

        init(_ p: UnsafeRawBufferPointer) {
            self.p = p
            index = p.startIndex
        }

        mutating func next() -> Slice<UnsafeRawBufferPointer>? {
            guard index < p.endIndex else { return nil }
            var end = index
            while end < p.endIndex, p[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > index, p[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let line = p[index..<lineEnd]
            index = end + 1
            return line
        }
    }
}
