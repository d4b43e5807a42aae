import Dispatch
import Foundation
import Synchronization
import TollgateCore

/// Everything one group commit writes: what arrived since the previous commit.
struct LedgerBatch: Sendable {
    struct CounterKey: Hashable, Sendable {
        var day: String
        var route: String
        var event: UsageEvent
    }

    struct RefusalKey: Hashable, Sendable {
        var day: String
        var route: String
        var client: String
        var reason: String
    }

    enum Update: Sendable {
        case settle(id: Int64, cost: Int64, status: Int?, at: Int64)
        case release(id: Int64, status: Int?, at: Int64)
    }

    /// The updates as one statement per kind applies them: applied one after the other, only the
    /// first update of an entry would find it reserved, so only the first of each entry is kept.
    struct Split {
        var settles: [(id: Int64, cost: Int64, status: Int32, at: Int64)] = []
        var releases: [(id: Int64, status: Int32, at: Int64)] = []

        var isEmpty: Bool { settles.isEmpty && releases.isEmpty }

        func merged(with other: Split) -> Split {
            var m = self
            m.settles += other.settles
            m.releases += other.releases
            return m
        }

        init(_ updates: [Update]) {
            var seen = Set<Int64>()
            for update in updates {
                switch update {
                case .settle(let id, let cost, let status, let at):
                    if seen.insert(id).inserted { settles.append((id, cost, Int32(status ?? -1), at)) }
                case .release(let id, let status, let at):
                    if seen.insert(id).inserted { releases.append((id, Int32(status ?? -1), at)) }
                }
            }
        }
    }

    var reservations: [LedgerEntry] = []
    var updates: [Update] = []
    var confirmations: [VerificationConfirmation] = []
    // Written once a second (``includesCounters``):
    var counters: [CounterKey: (count: Int64, saved: Int64)] = [:]
    var refusals: [RefusalKey: Int64] = [:]
    var tokenUses: [Data: (uses: Int, expires: Int64)] = [:]
    var solved: [String: Int64] = [:]
    var verificationRequests: [VerificationRequest] = []
    /// The once-a-second commit: carries the counters and prunes expired rows.
    var includesCounters = false
    /// The last commit before the store closes (budget leases are given back).
    var closing = false

    var isEmpty: Bool {
        reservations.isEmpty && updates.isEmpty && confirmations.isEmpty && counters.isEmpty && refusals.isEmpty
            && tokenUses.isEmpty && solved.isEmpty && verificationRequests.isEmpty
    }

    /// Puts back what a failed commit did not write (never the reservations: those were refused).
    mutating func restore(_ failed: LedgerBatch) {
        updates = failed.updates + updates
        confirmations = failed.confirmations + confirmations
        for (k, v) in failed.counters {
            let old = counters[k] ?? (0, 0)
            counters[k] = (old.count + v.count, old.saved + v.saved)
        }
        for (k, v) in failed.refusals { refusals[k, default: 0] += v }
        for (k, v) in failed.tokenUses where (tokenUses[k]?.uses ?? 0) < v.uses { tokenUses[k] = v }
        for (k, v) in failed.solved { solved[k] = v }
        verificationRequests = failed.verificationRequests + verificationRequests
    }

    /// Items kept for retry after failed commits, at most: beyond it the oldest are dropped (a store
    /// that is down for long loses counters, never reservations, which were refused).
    static let retryLimit = 100_000

    mutating func trimForRetry() {
        if updates.count > Self.retryLimit { updates.removeFirst(updates.count - Self.retryLimit) }
        if confirmations.count > Self.retryLimit { confirmations.removeFirst(confirmations.count - Self.retryLimit) }
        if verificationRequests.count > Self.retryLimit {
            verificationRequests.removeFirst(verificationRequests.count - Self.retryLimit)
        }
        if refusals.count > Self.retryLimit { refusals = [:] }
        if tokenUses.count > Self.retryLimit { tokenUses = [:] }
    }
}

/// Group commit, shared by the SQLite and PostgreSQL stores: one writer thread; every reservation
/// that arrives while a commit is running goes into the next one, so many requests share one
/// transaction. Reservations, settlements and used links are committed at once; counters, page-token
/// uses, solved challenges and verification requests once a second.
///
/// A failed commit fails its reservations (the gateway refuses those calls: no upstream call without
/// a durable reservation) and keeps everything else for the next attempt, up to
/// ``LedgerBatch/retryLimit`` items per kind and for at most ``retryWindow`` of failing commits: an
/// outage shorter than that loses nothing, and a row the store refuses for good cannot block
/// every later commit.
final class GroupCommit: Sendable {
    /// Counters are written at most this often (their durability window).
    static let counterInterval: TimeInterval = 1

    /// How long items of failed commits are retried before they are dropped.
    static let retryWindow: TimeInterval = 60

    private struct Pending {
        var batch = LedgerBatch()
        /// When the current run of failed commits began (nil: the last commit succeeded).
        var failingSince: Date?
        var waiting: [@Sendable (Result<Int64, any Error>) -> Void] = []
        var scheduled = false
        var stopped = false
    }

    private let queue: DispatchQueue
    private let pending = Mutex(Pending())
    /// Writes one batch in one transaction; returns the answer to each of its reservations, in order.
    private let write: @Sendable (LedgerBatch) throws -> [Result<Int64, any Error>]
    private let failures = Atomic<Int>(0)
    /// Whether the once-a-second commit must run even with nothing batched.
    private let idle: @Sendable () -> Bool

    /// `idle`: asked at each once-a-second commit with nothing batched; true runs it anyway (a
    /// store with periodic work of its own, such as giving back budget leases).
    init(label: String, idle: @escaping @Sendable () -> Bool = { false },
         write: @escaping @Sendable (LedgerBatch) throws -> [Result<Int64, any Error>]) {
        self.queue = DispatchQueue(label: label)
        self.write = write
        self.idle = idle
        scheduleCounterFlush()
    }

    /// Commits that failed since start (a store that is down or refusing writes).
    var failedCommits: Int { failures.load(ordering: .relaxed) }

    func reserve(_ entry: LedgerEntry, done: @escaping @Sendable (Result<Int64, any Error>) -> Void) {
        enqueue { p in
            p.batch.reservations.append(entry)
            p.waiting.append(done)
        }
    }

    func settle(id: Int64, costMicros: Int64, status: Int?, at: Int64) {
        enqueue { $0.batch.updates.append(.settle(id: id, cost: costMicros, status: status, at: at)) }
    }

    func release(id: Int64, status: Int?, at: Int64) {
        enqueue { $0.batch.updates.append(.release(id: id, status: status, at: at)) }
    }

    func recordConfirmation(_ confirmation: VerificationConfirmation) {
        enqueue { $0.batch.confirmations.append(confirmation) }
    }

    /// Changes what the next once-a-second commit carries.
    func behind(_ add: (inout LedgerBatch) -> Void) {
        pending.withLock { add(&$0.batch) }
    }

    /// Writes whatever is pending now, counters included; `closing` also gives back what the store
    /// holds for this gateway (``LedgerBatch/closing``).
    func flush(closing: Bool = false) {
        queue.sync { self.commit(includeCounters: true, closing: closing) }
    }

    /// Writes what is pending and stops the once-a-second commit.
    func stop() {
        queue.sync {
            self.commit(includeCounters: true, closing: true)
            pending.withLock { $0.stopped = true }
        }
    }

    private func enqueue(_ add: (inout Pending) -> Void) {
        let schedule = pending.withLock { p -> Bool in
            add(&p)
            guard !p.scheduled else { return false }
            p.scheduled = true
            return true
        }
        if schedule { queue.async { self.commit(includeCounters: false) } }
    }

    /// Takes what is pending (only the at-once part unless `includeCounters`), writes it, then
    /// answers the waiting reservations.
    private func commit(includeCounters: Bool, closing: Bool = false) {
        let (batch, waiting) = pending.withLock { p -> (LedgerBatch, [@Sendable (Result<Int64, any Error>) -> Void]) in
            defer { p.scheduled = false }
            var taken = LedgerBatch()
            swap(&taken.reservations, &p.batch.reservations)
            swap(&taken.updates, &p.batch.updates)
            swap(&taken.confirmations, &p.batch.confirmations)
            if includeCounters {
                swap(&taken.counters, &p.batch.counters)
                swap(&taken.refusals, &p.batch.refusals)
                swap(&taken.tokenUses, &p.batch.tokenUses)
                swap(&taken.solved, &p.batch.solved)
                swap(&taken.verificationRequests, &p.batch.verificationRequests)
                taken.includesCounters = true
                taken.closing = closing
            }
            let waiting = p.waiting
            p.waiting = []
            return (taken, waiting)
        }
        guard !batch.isEmpty || (includeCounters && idle()) else { return }
        do {
            let answers = try write(batch)
            pending.withLock { $0.failingSince = nil }
            for (i, done) in waiting.enumerated() { done(answers[i]) }
        } catch {
            failures.add(1, ordering: .relaxed)
            for done in waiting { done(.failure(error)) }
            pending.withLock { p in
                let since = p.failingSince ?? Date()
                p.failingSince = since
                guard Date().timeIntervalSince(since) < Self.retryWindow else { return }
                p.batch.restore(batch)
                p.batch.trimForRetry()
            }
        }
    }

    private func scheduleCounterFlush() {
        queue.asyncAfter(deadline: .now() + Self.counterInterval) { [weak self] in
            guard let self, !self.pending.withLock({ $0.stopped }) else { return }
            self.commit(includeCounters: true)
            self.scheduleCounterFlush()
        }
    }
}

/// A store whose ledger writes go through a ``GroupCommit``: the ``SpendLedger`` and journal
/// writes, once for every such store.
protocol GroupCommitted: SpendLedger {
    var commits: GroupCommit { get }
}

extension GroupCommitted {
    public func reserve(_ entry: LedgerEntry, done: @escaping @Sendable (Result<Int64, any Error>) -> Void) {
        commits.reserve(entry, done: done)
    }

    public func settle(id: Int64, costMicros: Int64, status: Int?, at: Int64) {
        commits.settle(id: id, costMicros: costMicros, status: status, at: at)
    }

    public func release(id: Int64, status: Int?, at: Int64) { commits.release(id: id, status: status, at: at) }

    public func count(_ event: UsageEvent, route: String, day: String, savedMicros: Int64) {
        commits.behind { b in
            let key = LedgerBatch.CounterKey(day: day, route: route, event: event)
            let old = b.counters[key] ?? (0, 0)
            b.counters[key] = (old.count + 1, old.saved + savedMicros)
        }
    }

    public func countRefusal(route: String, client: String, reason: String, day: String, count: Int64) {
        commits.behind { $0.refusals[LedgerBatch.RefusalKey(day: day, route: route, client: client, reason: reason), default: 0] += count }
    }

    public func recordTokenUse(nonce: Data, uses: Int, expiresMillis: Int64) {
        commits.behind { b in
            if (b.tokenUses[nonce]?.uses ?? 0) < uses { b.tokenUses[nonce] = (uses, expiresMillis) }
        }
    }

    public func recordSolved(challenge: String, expiresSeconds: Int64) {
        commits.behind { $0.solved[challenge] = expiresSeconds }
    }

    /// A used verification link: with the next group commit.
    public func recordConfirmation(_ confirmation: VerificationConfirmation) { commits.recordConfirmation(confirmation) }

    /// A verification message asked for: with the counters.
    public func recordVerificationRequest(_ request: VerificationRequest) {
        commits.behind { $0.verificationRequests.append(request) }
    }

    public func flush() { commits.flush() }

    public func finish() { commits.flush(closing: true) }

    public var failedCommits: Int { commits.failedCommits }
}
