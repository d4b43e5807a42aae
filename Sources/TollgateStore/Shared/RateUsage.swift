import TollgateCore

/// Units one gateway's limiter took for one bucket, for the others (``SharedRateUsage``).
public struct RateUsage: Sendable, Equatable {
    /// The limiter's name (``LimiterRegistry/named``).
    public var limit: String
    public var key: BucketKey
    public var units: Int64

    public init(limit: String, key: BucketKey, units: Int64) {
        self.limit = limit
        self.key = key
        self.units = units
    }
}

/// A store through which gateways share rate-limit usage (PostgreSQL).
public protocol SharedRateUsage: Sendable {
    /// Sends `sending` (this gateway's usage since its last exchange) and returns what the other
    /// gateways sent after `cursor` (nil: start from what the store still keeps), with the next cursor.
    func exchangeRateUsage(gateway: String, sending: [RateUsage], after cursor: Int64?,
                           nowMillis: Int64) throws -> (received: [RateUsage], cursor: Int64)
}
