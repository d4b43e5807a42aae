/// Request ids: a client's `X-Request-ID` is kept only when short and made of safe characters;
/// otherwise the gateway makes one. Generated ids are unique, not secret: a random per-loop prefix
/// and a counter, so making one costs no system call.
struct RequestIDGenerator {
    private let prefix: [UInt8]
    private var counter: UInt64 = 0
    private static let digits = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)

    init() {
        var rng = SystemRandomNumberGenerator()
        // 41 random bits: at most 8 characters, so an id stays within Swift's 15-byte small-string
        // form (no allocation) until the loop's counter passes 36^6 (2.2 billion requests).
        let r = rng.next() as UInt64
        prefix = Array(String(r >> 23, radix: 36).utf8)
    }

    /// `PREFIX-COUNTER` (both base 36), written straight into the string's storage: no
    /// intermediate strings, and inline (no allocation) while it fits in 15 bytes.
    mutating func next() -> String {
        counter &+= 1
        var length = 1
        var rest = counter
        while rest >= 36 { rest /= 36; length += 1 }
        let total = prefix.count + 1 + length
        return String(unsafeUninitializedCapacity: total) { out in
            for (i, b) in prefix.enumerated() { out[i] = b }
            out[prefix.count] = UInt8(ascii: "-")
            var value = counter
            for i in stride(from: total - 1, through: prefix.count + 1, by: -1) {
                out[i] = Self.digits[Int(value % 36)]
                value /= 36
            }
            return total
        }
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
