/// An amount of money in millionths of a currency unit (micro-units), so that prices such as
/// `0.005 USD` add up exactly: no floating point anywhere.
public struct Money: Sendable, Hashable, Comparable, CustomStringConvertible {
    public static let scale: Int64 = 1_000_000

    public var micros: Int64
    public var currency: String

    public init(micros: Int64, currency: String) {
        self.micros = micros
        self.currency = currency
    }

    public static func zero(_ currency: String) -> Money { Money(micros: 0, currency: currency) }

    /// Parses `0.005 USD`, `200 USD`, `12.5 EUR`: at most 6 decimals, a 3-letter currency code.
    public init?(_ text: String) {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, parts[1].count == 3, parts[1].allSatisfy({ $0.isASCII && $0.isUppercase }),
              let micros = Money.parseDecimal(parts[0]) else { return nil }
        self.micros = micros
        self.currency = String(parts[1])
    }

    /// `12.5` → 12_500_000 micro-units; nil for negative, malformed or more than 6 decimals.
    static func parseDecimal(_ s: Substring) -> Int64? {
        let pieces = s.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(pieces.count), !pieces[0].isEmpty, pieces[0].count <= 12,
              pieces[0].allSatisfy({ $0.isASCII && $0.isNumber }), let whole = Int64(pieces[0]) else { return nil }
        var fraction: Int64 = 0
        if pieces.count == 2 {
            let f = pieces[1]
            guard !f.isEmpty, f.count <= 6, f.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            fraction = Int64(f + String(repeating: "0", count: 6 - f.count))!
        }
        return whole * scale + fraction
    }

    /// `0.005 USD`, `200.00 USD`: at least two decimals, trailing zeros beyond them dropped.
    public var description: String { "\(Money.format(micros)) \(currency)" }

    public static func format(_ micros: Int64) -> String {
        let sign = micros < 0 ? "-" : ""
        let m = micros.magnitude
        var fraction = String(m % UInt64(scale))
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.count > 2, fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(sign)\(m / UInt64(scale)).\(fraction)"
    }

    public static func < (a: Money, b: Money) -> Bool { a.micros < b.micros }
    public static func + (a: Money, b: Money) -> Money { Money(micros: a.micros + b.micros, currency: a.currency) }
    public static func - (a: Money, b: Money) -> Money { Money(micros: a.micros - b.micros, currency: a.currency) }
    public static func * (a: Money, n: Int64) -> Money { Money(micros: a.micros * n, currency: a.currency) }
}
