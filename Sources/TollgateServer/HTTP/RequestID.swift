/// Request ids: a client's `X-Request-ID` is kept only when short and made of safe characters;
/// otherwise the gateway makes one. Generated ids are unique, not secret: a random per-loop prefix
/// and a counter, so making one costs no system call.
struct RequestIDGenerator {
    private let prefix: String
    private var counter: UInt64 = 0

    init() {
        var rng = SystemRandomNumberGenerator()
        // 41 random bits: at most 8 characters, so an id stays within Swift's 15-byte small-string
        // form (no allocation) until the loop's counter passes 36^6 (2.2 billion requests).
        let r = rng.next() as UInt64
        prefix = String(r >> 23, radix: 36)
    }

    mutating func next() -> String {
        counter &+= 1
        return prefix + "-" + String(counter, radix: 36)
    }

    /// Whether a client-supplied id may be used as is: 1–64 characters of `[A-Za-z0-9._:-]`.
    static func isAcceptable(_ id: String) -> Bool {
        let utf8 = id.utf8
        guard !utf8.isEmpty, utf8.count <= 64 else { return false }
        return utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: ":")
        }
    }
}
