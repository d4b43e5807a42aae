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
    static let passed = 0, cached = 1, paidCalls = 2, signups = 3
    static let policyBase = 4
    static let stageBase = 4 + RouteConfig.PolicyKind.allCases.count
    static let policyIndex: [RouteConfig.PolicyKind: Int] = Dictionary(uniqueKeysWithValues:
        RouteConfig.PolicyKind.allCases.enumerated().map { ($1, policyBase + $0) })
    static let stageIndex: [Stage: Int] = Dictionary(uniqueKeysWithValues: Stage.allCases.enumerated().map { ($1, stageBase + $0) })

    private var counts = [[Int]](repeating: [Int](repeating: 0, count: columns.count), count: ConsoleSnapshot.buckets)
    private var starts = [Int64](repeating: 0, count: ConsoleSnapshot.buckets)
    private var countries: [String: (calls: Int, refusals: Int)] = [:]
    /// The same columns counted since start (the metrics' decision counters).
    private(set) var totals = [Int](repeating: 0, count: columns.count)
    private var recent = CircularBuffer<RecentRefusal>(initialCapacity: 20)
    private var lastSample: UInt64 = 0

    /// Passed and refused per bucket (`2 × slot`, `2 × slot + 1`) of the routes alert rules watch.
    private var routeCounts: [String: [Int]] = [:]

    /// Counts one answer (per route too when `watched` holds its route).
    func record(_ response: Response, for req: InboundRequest, country: String?, watched: Set<String>) {
        let now = Int64(NIODeadline.wallClockSeconds)
        let slot = bucket(now)
        if !watched.isEmpty, let name = req.route?.name, watched.contains(name) {
            routeCounts[name, default: [Int](repeating: 0, count: 2 * ConsoleSnapshot.buckets)][2 * slot + (response.refused ? 1 : 0)] += 1
        }
        if response.upstreamStatus != nil || response.decidedBy == .stage(.upstream) { counts[slot][Self.paidCalls] += 1; totals[Self.paidCalls] += 1 }
        if response.status >= 400, let column = Self.statusIndex[response.status] { counts[slot][column] += 1 }
        if !response.refused {
            let column = response.decidedBy == .stage(.cache) ? Self.cached : Self.passed
            counts[slot][column] += 1
            totals[column] += 1
        } else if let decider = response.decidedBy {
            let column = switch decider {
            case .policy(let kind): Self.policyIndex[kind]!
            case .stage(let stage): Self.stageIndex[stage]!
            }
            counts[slot][column] += 1
            totals[column] += 1
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
        totals[Self.signups] += 1
    }

    private func bucket(_ now: Int64) -> Int {
        let start = now - now % ConsoleSnapshot.bucketSeconds
        let slot = Int((start / ConsoleSnapshot.bucketSeconds) % Int64(ConsoleSnapshot.buckets))
        if starts[slot] != start {
            starts[slot] = start
            for i in counts[slot].indices { counts[slot][i] = 0 }
            for name in routeCounts.keys { routeCounts[name]![2 * slot] = 0; routeCounts[name]![2 * slot + 1] = 0 }
        }
        return slot
    }

    /// This loop's part of the console: buckets of the last hour, countries, recent refusals.
    func snapshot(now: Int64) -> ConsoleSnapshot {
        let oldest = now - now % ConsoleSnapshot.bucketSeconds - ConsoleSnapshot.bucketSeconds * Int64(ConsoleSnapshot.buckets - 1)
        var series: [(start: Int64, counts: [Int])] = []
        for (i, start) in starts.enumerated() where start >= oldest { series.append((start, counts[i])) }
        var snapshot = ConsoleSnapshot(columns: Self.columns, series: series,
                                       countries: countries.map { ($0.key, $0.value.calls, $0.value.refusals) }, recent: Array(recent))
        for (name, c) in routeCounts {
            snapshot.routes[name] = starts.enumerated().filter { $0.element >= oldest }.map { ($0.element, c[2 * $0.offset], c[2 * $0.offset + 1]) }
        }
        return snapshot
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
        var merged = ConsoleSnapshot(columns: columns, series: series,
                                     countries: countries.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.calls + $0.refusals > $1.calls + $1.refusals },
                                     recent: parts.flatMap(\.recent).sorted { $0.at > $1.at }.prefix(20).map { $0 })
        for part in parts {
            for (name, buckets) in part.routes { merged.routes[name, default: []] += buckets }
        }
        return merged
    }
}
