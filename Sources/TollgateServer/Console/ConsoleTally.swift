import NIOCore
import TollgateCore

/// What one event loop counts for the console and the rate alerts: answers by decision in
/// 30-second buckets over the last hour, calls and refusals by country, and a sample of the latest
/// refused requests. Owned by the loop (no lock): a response costs one array increment (two for a
/// refusal, plus a dictionary update with `geo`); a refusal is sampled at most every 50 ms per loop,
/// so a flood does not turn into string copies.
final class ConsoleTally {
    /// `passed`, `cached`, `paid_calls`, `signups`, then every policy, then every stage (refusals by
    /// who decided), then `status:NNN` for the statuses alert rules can name.
    static let columns: [String] = ["passed", "cached", "paid_calls", "signups"]
        + RouteConfig.PolicyKind.allCases.map(\.rawValue) + Stage.allCases.map(\.rawValue)
        + AlertRule.trackedStatuses.map { "status:\($0)" }
    static let statusBase = 4 + RouteConfig.PolicyKind.allCases.count + Stage.allCases.count
    /// Column of each tracked status, by status − 400 (5xx at 100 + status − 500).
    static let statusIndex: [Int: Int] = Dictionary(uniqueKeysWithValues: AlertRule.trackedStatuses.enumerated().map { ($1, statusBase + $0) })
    static let passed = 0, cached = 1, upstream = 2, signups = 3
    static let policyBase = 4
    static let stageBase = 4 + RouteConfig.PolicyKind.allCases.count
    static let policyIndex: [RouteConfig.PolicyKind: Int] = Dictionary(uniqueKeysWithValues:
        RouteConfig.PolicyKind.allCases.enumerated().map { ($1, policyBase + $0) })
    static let stageIndex: [Stage: Int] = Dictionary(uniqueKeysWithValues: Stage.allCases.enumerated().map { ($1, stageBase + $0) })

    private var counts = [[Int]](repeating: [Int](repeating: 0, count: columns.count), count: ConsoleSnapshot.buckets)
    private var starts = [Int64](repeating: 0, count: ConsoleSnapshot.buckets)
    private var countries: [String: (calls: Int, refusals: Int)] = [:]
    private var recent = CircularBuffer<RecentRefusal>(initialCapacity: 20)
    private var lastSample: UInt64 = 0

    /// Counts one answer.
    func record(_ response: Response, for req: InboundRequest, country: String?) {
        let now = Int64(NIODeadline.wallClockSeconds)
        let slot = bucket(now)
        if response.upstreamStatus != nil || response.decidedBy == .stage(.upstream) { counts[slot][Self.upstream] += 1 }
        if response.status >= 400, let column = Self.statusIndex[response.status] { counts[slot][column] += 1 }
        if !response.refused {
            counts[slot][response.decidedBy == .stage(.cache) ? Self.cached : Self.passed] += 1
        } else if let decider = response.decidedBy {
            switch decider {
            case .policy(let kind): counts[slot][Self.policyIndex[kind]!] += 1
            case .stage(let stage): counts[slot][Self.stageIndex[stage]!] += 1
            }
            let uptime = NIODeadline.now().uptimeNanoseconds
            if decider.refusesClient, uptime - lastSample > 50_000_000 {
                lastSample = uptime
                if recent.count == 20 { recent.removeFirst() }
                recent.append(RecentRefusal(at: now, client: req.client.address, route: req.route?.name ?? "-",
                                            method: req.head.method.rawValue, path: String(req.head.uri.prefix(120)),
                                            userAgent: String((req.head.headers.first(name: "user-agent") ?? "").prefix(120)),
                                            status: response.status, reason: decider.name))
            }
        }
        if let country, countries.count < 300 || countries[country] != nil {
            var entry = countries[country] ?? (0, 0)
            if response.refused { entry.refusals += 1 } else { entry.calls += 1 }
            countries[country] = entry
        }
    }

    /// Counts one completed sign-up.
    func recordSignup() {
        counts[bucket(Int64(NIODeadline.wallClockSeconds))][Self.signups] += 1
    }

    private func bucket(_ now: Int64) -> Int {
        let start = now - now % ConsoleSnapshot.bucketSeconds
        let slot = Int((start / ConsoleSnapshot.bucketSeconds) % Int64(ConsoleSnapshot.buckets))
        if starts[slot] != start {
            starts[slot] = start
            for i in counts[slot].indices { counts[slot][i] = 0 }
        }
        return slot
    }

    /// This loop's part of the console: buckets of the last hour, countries, recent refusals.
    func snapshot(now: Int64) -> ConsoleSnapshot {
        let oldest = now - now % ConsoleSnapshot.bucketSeconds - ConsoleSnapshot.bucketSeconds * Int64(ConsoleSnapshot.buckets - 1)
        var series: [(start: Int64, counts: [Int])] = []
        for (i, start) in starts.enumerated() where start >= oldest { series.append((start, counts[i])) }
        return ConsoleSnapshot(columns: Self.columns, series: series,
                               countries: countries.map { ($0.key, $0.value.calls, $0.value.refusals) }, recent: Array(recent))
    }

    /// Every loop's snapshots as one: buckets by start (the last hour, oldest first, empty ones
    /// filled in), countries summed, recent refusals newest first.
    static func merge(_ parts: [ConsoleSnapshot], now: Int64) -> ConsoleSnapshot {
        let last = now - now % ConsoleSnapshot.bucketSeconds
        var byStart: [Int64: [Int]] = [:]
        for part in parts {
            for (start, c) in part.series {
                byStart[start] = zip(byStart[start] ?? [Int](repeating: 0, count: columns.count), c).map(+)
            }
        }
        let series = (0..<ConsoleSnapshot.buckets).reversed().map { back -> (start: Int64, counts: [Int]) in
            let start = last - Int64(back) * ConsoleSnapshot.bucketSeconds
            return (start, byStart[start] ?? [Int](repeating: 0, count: columns.count))
        }
        var countries: [String: (Int, Int)] = [:]
        for part in parts {
            for c in part.countries {
                let old = countries[c.code] ?? (0, 0)
                countries[c.code] = (old.0 + c.calls, old.1 + c.refusals)
            }
        }
        return ConsoleSnapshot(columns: columns, series: series,
                               countries: countries.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.calls + $0.refusals > $1.calls + $1.refusals },
                               recent: parts.flatMap(\.recent).sorted { $0.at > $1.at }.prefix(20).map { $0 })
    }
}
