import Synchronization

/// The gateway's in-memory copy of the key store, so that checking a key never touches the
/// database: a dictionary by public id, replaced entry by entry by write-through (keys the gateway
/// itself issues) and by the change feed (``apply(_:)``, polled from the store), so a revocation
/// made anywhere is in force on every event loop once the next poll has run.
///
/// Uses are counted here first and handed to the store in batches (``drainUses()``). The use limit
/// is checked against the store's count plus this gateway's: exact on one gateway, and on several
/// at most one flush interval of the others' uses behind.
public final class APIKeyIndex: Sendable {
    final class Entry: Sendable {
        let record: APIKeyRecord
        /// Uses on this gateway beyond `record.uses`.
        let usedHere: Atomic<Int64>
        /// Uses not yet handed to the store, and the time of the last one.
        let unflushed = Atomic<Int64>(0)
        let lastUsed = Atomic<Int64>(0)
        /// The key text that last matched the stored hash: the same text again is compared byte
        /// for byte (in constant time) instead of being hashed again. Held only in memory, like
        /// the verified-token cache; gone when the record changes.
        let verified = Mutex<[UInt8]>([])

        init(record: APIKeyRecord, usedHere: Int64) {
            self.record = record
            self.usedHere = Atomic(usedHere)
        }

        var uses: Int64 { record.uses + usedHere.load(ordering: .relaxed) }
    }

    public let hasher: APIKeyHasher
    /// Uses to tell the other gateways of a cluster at once (nil: one gateway), so `max_uses`
    /// holds across them a sync round late at most; the store's count still follows by flushes.
    public let shared: SharedUses?
    /// The prefix of a key use in ``SharedUses``.
    public static let sharedPrefix = "key:"
    private let entries = Mutex<[String: Entry]>([:])
    /// The highest store version applied: where the change feed resumes.
    private let version = Atomic<Int64>(0)

    public init(hasher: APIKeyHasher, records: [APIKeyRecord] = [], shared: SharedUses? = nil) {
        self.hasher = hasher
        self.shared = shared
        apply(records)
    }

    public var appliedVersion: Int64 { version.load(ordering: .relaxed) }
    public var count: Int { entries.withLock { $0.count } }

    /// Takes in new or changed records. Uses this gateway counted are kept: the total is the larger
    /// of the store's count and the one known here.
    public func apply(_ records: [APIKeyRecord]) {
        guard !records.isEmpty else { return }
        entries.withLock { table in
            for record in records {
                var here: Int64 = 0
                var carried: (Int64, Int64) = (0, 0)
                if let old = table[record.id] {
                    here = max(0, old.uses - record.uses)
                    carried = (old.unflushed.load(ordering: .relaxed), old.lastUsed.load(ordering: .relaxed))
                }
                let entry = Entry(record: record, usedHere: here)
                entry.unflushed.store(carried.0, ordering: .relaxed)
                entry.lastUsed.store(carried.1, ordering: .relaxed)
                table[record.id] = entry
            }
        }
        let highest = records.map(\.version).max() ?? 0
        if highest > version.load(ordering: .relaxed) { version.store(highest, ordering: .relaxed) }
    }

    /// What checking a presented key found.
    public enum Verdict: Sendable, Equatable {
        /// The key is good and one use was counted.
        case accepted(APIKeyRecord)
        /// Not a key of ours: wrong shape or checksum, unknown id, wrong secret, or revoked.
        case invalid
        /// A real key past its expiry or use limit (the holder may ask for it to be reactivated).
        case lapsed(APIKeyRecord, APIKeyRecord.Status)
    }

    /// Checks `presented` at `now` (Unix seconds); counts a use when it is accepted.
    public func check(_ presented: some StringProtocol, now: Int64) -> Verdict {
        guard let text = APIKeyText(parsing: presented) else { return .invalid }
        guard let entry = entries.withLock({ $0[text.id] }), entry.record.kind == text.kind else { return .invalid }
        if !entry.verified.withLock({ Self.constantTimeEqual($0, text.text.utf8) }) {
            guard hasher.matches(text.text, entry.record.hash) else { return .invalid }
            entry.verified.withLock { $0 = Array(text.text.utf8) }
        }
        let record = entry.record
        switch record.status(now: now, uses: entry.uses) {
        case .revoked: return .invalid
        case .expired: return .lapsed(record, .expired)
        case .exhausted: return .lapsed(record, .exhausted)
        case .active: break
        }
        let after = entry.usedHere.add(1, ordering: .relaxed).newValue
        if let maxUses = record.maxUses, record.uses + after > maxUses {
            entry.usedHere.subtract(1, ordering: .relaxed)
            return .lapsed(record, .exhausted)
        }
        entry.unflushed.add(1, ordering: .relaxed)
        entry.lastUsed.store(now, ordering: .relaxed)
        shared?.record(Self.sharedPrefix + record.id)
        return .accepted(record)
    }

    /// Counts `count` uses another gateway made of the key a ``SharedUses`` item names (that
    /// gateway hands them to the store itself).
    public func addRemoteUses(_ item: String, count: Int64) {
        guard item.hasPrefix(Self.sharedPrefix), count > 0,
              let entry = entries.withLock({ $0[String(item.dropFirst(Self.sharedPrefix.count))] }) else { return }
        entry.usedHere.add(count, ordering: .relaxed)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: String.UTF8View) -> Bool {
        !a.isEmpty && ConstantTime.equal(a, b)
    }

    /// Uses counted since the last call, per key, for the store.
    public func drainUses() -> [(id: String, count: Int64, lastUsedAt: Int64)] {
        let all = entries.withLock { Array($0.values) }
        var out: [(id: String, count: Int64, lastUsedAt: Int64)] = []
        for entry in all {
            let n = entry.unflushed.exchange(0, ordering: .relaxed)
            if n > 0 { out.append((entry.record.id, n, entry.lastUsed.load(ordering: .relaxed))) }
        }
        return out
    }

    /// Uses of key `id` as this gateway knows them.
    public func uses(of id: String) -> Int64? {
        entries.withLock { $0[id] }?.uses
    }
}
