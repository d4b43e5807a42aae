import NIOCore

/// One SMTP reply (RFC 5321 §4.2): a three-digit code and its text lines.
public struct SMTPReply: Equatable, Sendable {
    public var code: Int
    public var lines: [String]

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }
}

/// Splits a server's bytes into replies, strictly: every line ends in CRLF and is at most 512
/// octets with it (§4.5.3.1.5), starts with three digits (2–5, 0–5, 0–9) followed by `-` (more
/// lines follow), a space or the line's end, and every line of a reply has the same code. A reply
/// has at most `maxLines` lines; buffered bytes never exceed one line. Anything else is a
/// ``SMTPProtocolError`` and the connection is dropped: a server that breaks framing is not one we
/// can trust to have accepted a message.
public struct SMTPReplyParser: Sendable {
    public static let maxLineLength = 512
    public static let maxLines = 64

    private var buffer = ByteBuffer()
    private var pending: [String] = []
    private var pendingCode: Int?

    /// Bytes received but not yet part of a complete line.
    public var bufferedBytes: Int { buffer.readableBytes }

    public init() {}

    /// Adds received bytes.
    public mutating func feed(_ bytes: inout ByteBuffer) {
        buffer.writeBuffer(&bytes)
    }

    /// The next complete reply, nil when more bytes are needed.
    public mutating func next() throws(SMTPProtocolError) -> SMTPReply? {
        while let line = try nextLine() {
            let bytes = Array(line.utf8)
            guard bytes.count >= 3,
                  (UInt8(ascii: "2")...UInt8(ascii: "5")).contains(bytes[0]),
                  (UInt8(ascii: "0")...UInt8(ascii: "5")).contains(bytes[1]),
                  (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[2]) else { throw .malformed("reply without a code") }
            let code = Int(bytes[0] - 48) * 100 + Int(bytes[1] - 48) * 10 + Int(bytes[2] - 48)
            let separator = bytes.count > 3 ? bytes[3] : UInt8(ascii: " ")
            guard separator == UInt8(ascii: " ") || separator == UInt8(ascii: "-") else { throw .malformed("bad separator after code") }
            if let pendingCode, pendingCode != code { throw .malformed("reply lines with different codes") }
            pendingCode = code
            pending.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
            if pending.count > Self.maxLines { throw .malformed("reply longer than \(Self.maxLines) lines") }
            if separator == UInt8(ascii: " ") {
                defer { pending = []; pendingCode = nil }
                return SMTPReply(code: code, lines: pending)
            }
        }
        return nil
    }

    private mutating func nextLine() throws(SMTPProtocolError) -> String? {
        let view = buffer.readableBytesView
        guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count >= Self.maxLineLength { throw .malformed("reply line longer than \(Self.maxLineLength) octets") }
            return nil
        }
        let length = lf - view.startIndex + 1
        guard length <= Self.maxLineLength else { throw .malformed("reply line longer than \(Self.maxLineLength) octets") }
        guard length >= 2, view[lf - 1] == UInt8(ascii: "\r") else { throw .malformed("reply line not ended by CRLF") }
        let line = buffer.readString(length: length - 2)!
        buffer.moveReaderIndex(forwardBy: 2)
        guard line.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F || $0 == 0x09 }) else { throw .malformed("control or non-ASCII bytes in a reply") }
        return line
    }
}

/// The server broke the protocol.
public enum SMTPProtocolError: Error, Equatable, CustomStringConvertible {
    case malformed(String)

    public var description: String {
        switch self {
        case .malformed(let why): "SMTP protocol error: \(why)"
        }
    }
}
