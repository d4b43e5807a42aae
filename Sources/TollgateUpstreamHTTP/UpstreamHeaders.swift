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
        while let line = lines.next() {
            if line.isEmpty { break }
            let first = line[line.startIndex]
            guard first != UInt8(ascii: " "), first != UInt8(ascii: "\t") else { throw .malformed("obsolete line folding") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw .malformed("header without colon") }
            let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
            guard !name.isEmpty, name.allSatisfy(UpstreamResponseParser.isTokenByte) else { throw .malformed("bad header name") }
            let value = Self.trim(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
            guard !value.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) else { throw .malformed("control character in header") }
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
            default:
                break
            }
        }
        return code
    }

    package static let http1Prefix: [UInt8] = Array("HTTP/1.".utf8)

    /// ASCII case-insensitive comparison with an already lower-cased name.
    package static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercased: String) -> Bool {
        var it = lowercased.utf8.makeIterator()
        for b in bytes {
            guard let l = it.next() else { return false }
            let folded = b >= 0x41 && b <= 0x5A ? b | 0x20 : b
            if folded != l { return false }
        }
        return it.next() == nil
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
