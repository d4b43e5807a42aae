import Foundation
import Synchronization
import TollgateCore

/// A ledger that lives in memory only (`store: memory`): nothing survives a restart, and the CLI
/// cannot reach it. For tests and demos.
public final class MemoryLedger: SpendLedger {
    struct Row {
        var entry: LedgerEntry
        var cost: Int64?
        var released = false
    }

    private struct State {
        var rows: [Row] = []
        var paused: Set<String> = []
        var alerts: Set<String> = []
        var counters: [String: (count: Int64, saved: Int64)] = [:]
        var confirmations: [VerificationConfirmation] = []
        var verificationRequests: [VerificationRequest] = []
    }

    private let state = Mutex(State())
    /// Bans (``BanStore``), apart from the hot counters.
    let bans = Mutex<(all: [Ban], version: Int64)>(([], 0))

    public init() {}

    public func reserve(_ entry: LedgerEntry, done: @escaping @Sendable (Result<Int64, any Error>) -> Void) {
        let id = state.withLock { s -> Int64 in
            s.rows.append(Row(entry: entry))
            return Int64(s.rows.count)
        }
        done(.success(id))
    }

    public func settle(id: Int64, costMicros: Int64, status: Int?, at: Int64) {
        state.withLock { s in if id > 0, Int(id) <= s.rows.count { s.rows[Int(id) - 1].cost = costMicros } }
    }

    public func release(id: Int64, status: Int?, at: Int64) {
        state.withLock { s in if id > 0, Int(id) <= s.rows.count { s.rows[Int(id) - 1].released = true } }
    }

    public func count(_ event: UsageEvent, route: String, day: String, savedMicros: Int64) {
        state.withLock { s in
            let key = "\(day)|\(route)|\(event.rawValue)"
            let old = s.counters[key] ?? (0, 0)
            s.counters[key] = (old.count + 1, old.saved + savedMicros)
        }
    }

    /// Kept per route and reason only: nothing reads a memory ledger, and a count per client would
    /// grow with every address that was ever refused.
    public func countRefusal(route: String, client: String, reason: String, day: String, count: Int64) {
        state.withLock { s in
            let key = "\(day)|\(route)|refused:\(reason)"
            s.counters[key, default: (0, 0)].count += count
        }
    }

    public func spend(since: Int64) throws -> [SpendRow] {
        state.withLock { s in
            s.rows.filter { !$0.released && $0.entry.createdAt >= since }.map {
                SpendRow(route: $0.entry.route, client: $0.entry.client, session: $0.entry.session, keyID: $0.entry.keyID,
                         subject: $0.entry.subject, createdAt: $0.entry.createdAt,
                         micros: $0.cost ?? $0.entry.reservedMicros)
            }
        }
    }

    public func pausedRoutes() throws -> Set<String> { state.withLock { $0.paused } }

    public func setPaused(_ route: String, paused: Bool, at: Int64) throws {
        state.withLock { s in
            if paused { s.paused.insert(route) } else { s.paused.remove(route) }
        }
    }

    public func recordAlert(budget: String, scope: String, periodStart: Int64, threshold: Int, at: Int64) throws -> Bool {
        state.withLock { $0.alerts.insert("\(budget)|\(scope)|\(periodStart)|\(threshold)").inserted }
    }

    public func flush() {}
    public func finish() {}
    public var failedCommits: Int { 0 }

    // Nothing outlives the process in memory: the policies' own tables are all there is.
    public func recordTokenUse(nonce: Data, uses: Int, expiresMillis: Int64) {}
    public func recordSolved(challenge: String, expiresSeconds: Int64) {}
    public func tokenUses(nowMillis: Int64) throws -> [(nonce: Data, uses: Int, expiresMillis: Int64)] { [] }
    public func solvedChallenges(nowSeconds: Int64) throws -> [(challenge: String, expiresSeconds: Int64)] { [] }
    public func recordConfirmation(_ confirmation: VerificationConfirmation) {
        state.withLock { $0.confirmations.append(confirmation) }
    }

    public func recordVerificationRequest(_ request: VerificationRequest) {
        state.withLock { $0.verificationRequests.append(request) }
    }

    public func confirmations(nowMillis: Int64) throws -> [VerificationConfirmation] {
        state.withLock { s in s.confirmations.filter { $0.linkExpiresMillis > nowMillis || $0.email.untilMillis > nowMillis } }
    }
}
