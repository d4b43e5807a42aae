import NIOCore
import TollgateCore

/// Refusals counted on one event loop, handed to the ledger every 100 ms: a refusal costs a
/// dictionary update on the loop (no lock, no strings built), not a trip through the ledger's
/// shared lock — under a flood of refusals that lock was contended by every loop. Counts are per
/// route, client (as limits group addresses) and reason; the day is the day of the hand-over.
final class RefusalTally {
    /// Why, as cheap to hash as possible: the decider itself, or a shadowed policy's name.
    enum Reason: Hashable {
        case decider(Decider)
        case shadow(String)

        var name: String {
            switch self {
            case .decider(let decider): decider.name
            case .shadow(let name): "shadow:" + name
            }
        }
    }

    private struct Key: Hashable {
        let route: String
        let reason: Reason
        let client: ClientKey
    }

    private var counts: [Key: (count: Int64, address: String)] = [:]
    private var flushTask: Scheduled<Void>?
    static let interval = TimeAmount.milliseconds(100)

    /// Counts one refusal of `client` on `route` by `reason`; the first since a hand-over schedules the next.
    func count(route: String, reason: Reason, client: ResolvedClient, loop: LoopContext) {
        let key = Key(route: route, reason: reason, client: client.key)
        if let entry = counts[key] {
            counts[key] = (entry.count + 1, entry.address)
        } else {
            counts[key] = (1, client.address)
        }
        if flushTask == nil {
            flushTask = loop.eventLoop.assumeIsolated().scheduleTask(in: Self.interval) { [self] in
                flushTask = nil
                flush(to: loop)
            }
        }
    }

    /// Hands every count to the ledger (also at shutdown).
    func flush(to loop: LoopContext) {
        guard !counts.isEmpty else { return }
        let day = loop.today()
        for (key, entry) in counts {
            loop.state.ledger.countRefusal(route: key.route, client: entry.address, reason: key.reason.name, day: day, count: entry.count)
        }
        counts.removeAll(keepingCapacity: true)
    }
}
