/// The `RateLimit-Policy` and `RateLimit` fields of one response
/// (draft-ietf-httpapi-ratelimit-headers-10), kept as numbers until the response is written, so a
/// request the limits let through costs no string and no header array: the policy field is the
/// route's, built once; each limit's state is its name, what is left and the seconds to its reset,
/// held inline for up to four limits.
public struct RateLimitState: Sendable {
    /// One member of the `RateLimit` field: `"name";r=REMAINING;t=SECONDS`.
    public struct Entry: Sendable {
        public var name: String
        public var remaining: Int
        public var resetSeconds: Int64
    }

    /// `RateLimit-Policy`'s value.
    public let policy: String
    @usableFromInline var inline: (Entry?, Entry?, Entry?, Entry?) = (nil, nil, nil, nil)
    @usableFromInline var count = 0
    /// Entries past the fourth (a route with more than four limits).
    @usableFromInline var more: [Entry] = []

    public init(policy: String) {
        self.policy = policy
    }

    public mutating func append(_ name: String, remaining: Int, resetNanos: Int64) {
        let entry = Entry(name: name, remaining: remaining, resetSeconds: max(0, (resetNanos + 999_999_999) / 1_000_000_000))
        switch count {
        case 0: inline.0 = entry
        case 1: inline.1 = entry
        case 2: inline.2 = entry
        case 3: inline.3 = entry
        default: more.append(entry)
        }
        count += 1
    }

    public var entries: [Entry] { [inline.0, inline.1, inline.2, inline.3].compactMap { $0 } + more }

    /// Writes the `RateLimit` field's value into `sink` (the response buffer, in the data plane):
    /// names as they are, numbers as digits; nothing is allocated. Inlinable, so the data plane's
    /// `ByteBuffer` rendering is specialized rather than a protocol call per piece.
    @inlinable
    public func render<Sink: TextSink>(into sink: inout Sink) {
        func one(_ e: Entry?, first: Bool, _ sink: inout Sink) {
            guard let e else { return }
            if !first { sink.append(", ") }
            sink.appendASCII(UInt8(ascii: "\""))
            sink.append(e.name)
            sink.append("\";r=")
            sink.appendDecimal(Int64(e.remaining))
            sink.append(";t=")
            sink.appendDecimal(e.resetSeconds)
        }
        one(inline.0, first: true, &sink)
        one(inline.1, first: false, &sink)
        one(inline.2, first: false, &sink)
        one(inline.3, first: false, &sink)
        for e in more { one(e, first: false, &sink) }
    }

    /// The `RateLimit` field's value as one string (HTTP/2 fields, a refusal's headers, tests).
    public var value: String {
        var out = ""
        render(into: &out)
        return out
    }
}
