import Foundation
import PostgresNIO
import TollgateCore

/// Rate-limit usage several gateways share: each sends what its limiters took since its last
/// exchange as one `rate_events` row (parallel arrays, one element per bucket) and reads the rows
/// the others committed since its cursor. Rows are written under the table's lock, so ids become
/// visible in the order they are taken and a cursor never skips one; rows older than
/// ``rateEventsKept`` are deleted.
extension PostgresStore: SharedRateUsage {
    /// How long rows stay: a gateway that starts reads this much of the others' recent usage.
    static let rateEventsKept: Int64 = 60_000

    public func exchangeRateUsage(gateway: String, sending: [RateUsage], after cursor: Int64?,
                                  nowMillis: Int64) throws -> (received: [RateUsage], cursor: Int64) {
        try connections.transaction { s in
            if !sending.isEmpty {
                try s.run("LOCK TABLE rate_events IN EXCLUSIVE MODE")
                try s.run("""
                    INSERT INTO rate_events (gateway, at_ms, limits, highs, lows, units)
                    VALUES (\(gateway), \(nowMillis), \(sending.map(\.limit))::text[],
                            \(sending.map { Int64(bitPattern: $0.key.high) })::bigint[],
                            \(sending.map { Int64(bitPattern: $0.key.low) })::bigint[], \(sending.map(\.units))::bigint[])
                    """)
            }
            var received: [RateUsage] = []
            var next = cursor ?? 0
            for row in try s.run("""
                SELECT id, limits, highs, lows, units FROM rate_events
                WHERE id > \(cursor ?? 0) AND gateway <> \(gateway) AND at_ms >= \(nowMillis - Self.rateEventsKept)
                ORDER BY id LIMIT 500
                """) {
                let (id, limits, highs, lows, units) = try row.decode((Int64, [String], [Int64], [Int64], [Int64]).self)
                next = max(next, id)
                guard limits.count == highs.count, highs.count == lows.count, lows.count == units.count else { continue }
                for i in limits.indices {
                    received.append(RateUsage(limit: limits[i], key: BucketKey(high: UInt64(bitPattern: highs[i]), low: UInt64(bitPattern: lows[i])),
                                              units: units[i]))
                }
            }
            if cursor == nil || Int.random(in: 0..<50) == 0 {  // about every 10 s at the default interval
                try s.run("DELETE FROM rate_events WHERE at_ms < \(nowMillis - Self.rateEventsKept)")
            }
            return (received, next)
        }
    }
}
