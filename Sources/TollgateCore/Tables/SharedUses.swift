import Synchronization

/// Single-use and limited-use things (page-token uses, solved challenges) a gateway has to tell the
/// other gateways of a cluster about: recorded as they happen, taken by the cluster's sync round.
public final class SharedUses: Sendable {
    private let pending = Mutex<[String: Int64]>([:])
    /// Entries kept between rounds at most; beyond it new ones are dropped (a store that is away
    /// for long cannot make this grow without bound).
    static let maxPending = 100_000

    public init() {}

    func record(_ item: String, count: Int64 = 1) {
        pending.withLock { p in
            guard p.count < Self.maxPending || p[item] != nil else { return }
            p[item, default: 0] += count
        }
    }

    /// What happened here since the last call.
    public func take() -> [(item: String, count: Int64)] {
        pending.withLock { p in
            defer { p = [:] }
            return p.map { ($0.key, $0.value) }
        }
    }
}
