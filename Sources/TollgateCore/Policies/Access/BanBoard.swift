import Synchronization

/// The bans every event loop consults, replaced whole when they change (from the store's change
/// feed, an operator's write, or an automatic rule), so a ban is in force on every loop within the
/// feed's interval — at once on the gateway that added it.
///
/// Readers pay one atomic load while nothing of a kind is banned (``hasKeyBans``, ``hasSessionBans``).
/// Event loops keep their own copy of the list and refresh it when ``generation`` moves, so the
/// address check on every request takes no lock.
public final class BanBoard: Sendable {
    private let list = Mutex(BanList())
    private let generationCounter = Atomic<Int>(0)
    private let kinds = Atomic<UInt8>(0)

    public init(_ bans: [Ban] = []) {
        replace(with: bans)
    }

    /// Moves whenever the list changes.
    public var generation: Int { generationCounter.load(ordering: .acquiring) }
    public var hasKeyBans: Bool { kinds.load(ordering: .relaxed) & 2 != 0 }
    public var hasSessionBans: Bool { kinds.load(ordering: .relaxed) & 4 != 0 }
    public var hasAddressBans: Bool { kinds.load(ordering: .relaxed) & 1 != 0 }
    public var hasDomainBans: Bool { kinds.load(ordering: .relaxed) & 8 != 0 }

    /// The list now.
    public var current: BanList { list.withLock { $0 } }

    /// Replaces every ban (the store's set of active bans).
    public func replace(with bans: [Ban]) {
        publish(BanList(bans))
    }

    /// Adds one ban now (before the store has it: an automatic ban is in force on this gateway at once).
    public func add(_ ban: Ban) {
        var updated = current
        updated.add(ban)
        publish(updated)
    }

    private func publish(_ updated: BanList) {
        list.withLock { $0 = updated }
        let flags: UInt8 = (updated.networks.isEmpty ? 0 : 1) | (updated.keys.isEmpty ? 0 : 2) | (updated.sessions.isEmpty ? 0 : 4)
            | (updated.domains.isEmpty ? 0 : 8)
        kinds.store(flags, ordering: .relaxed)
        generationCounter.add(1, ordering: .releasing)
    }

    public func ban(key id: String, now: Int64) -> Ban? {
        guard hasKeyBans else { return nil }
        return list.withLock { $0.ban(key: id, now: now) }
    }

    public func ban(session: String, now: Int64) -> Ban? {
        guard hasSessionBans else { return nil }
        return list.withLock { $0.ban(session: session, now: now) }
    }

    public func ban(domain: String, now: Int64) -> Ban? {
        guard hasDomainBans else { return nil }
        return list.withLock { $0.ban(domain: domain, now: now) }
    }
}

/// Where bans are kept (the SQLite store; the memory store for tests and demos). Every change
/// bumps ``banVersion()``, which the gateways poll to reload the active set.
public protocol BanStore: AnyObject, Sendable {
    /// Stores `ban` and returns it with its id.
    func addBan(_ ban: Ban) throws -> Ban
    /// Ends ban `id` now; false when there is no such active ban.
    func removeBan(id: Int64, at: Int64) throws -> Bool
    /// Bans active at `now` (not removed, not expired).
    func activeBans(now: Int64) throws -> [Ban]
    /// A number that grows with every add and remove.
    func banVersion() throws -> Int64
}
