import NIOCore
import Synchronization
import TollgateCore

/// Decides at accept whether a new client connection may stay: at most `maxConnections` in all and
/// `maxPerClient` per client address (IPv6 grouped by prefix, as limits group it). A refused
/// connection is closed before anything is read from it — the cheapest refusal there is — and
/// counted. Trusted proxies are not capped per client (their connections carry many clients);
/// the global cap still applies to them.
///
/// With one request at a time per HTTP/1.1 connection, the per-client connection cap is also the
/// cap on a client's requests in flight.
///
/// A connection refused for its client's cap is held for `refusal_delay`, unread, before it is
/// closed (``hold()``): a flooder whose client reconnects at once would otherwise make the gateway
/// and the kernel accept and close connections as fast as it can open them. At most `maxHeld` are
/// held at a time (an eighth of the global cap, at most 1 024); beyond that they close at once.
final class ConnectionAdmission: Sendable {
    enum Refusal: String { case global, perClient = "per_client" }

    private let caps: Mutex<(total: Int, perClient: Int)>
    private let state = Mutex<(total: Int, perClient: [ClientKey: Int])>((0, [:]))
    private let refusedGlobal = Atomic<Int>(0)
    private let refusedPerClient = Atomic<Int>(0)
    private let held = Atomic<Int>(0)
    /// Times accepting stopped for a moment because the process was out of descriptors (``AcceptPause``).
    let acceptPauses = Atomic<Int>(0)

    init(maxConnections: Int, maxPerClient: Int) {
        caps = Mutex((maxConnections, maxPerClient))
    }

    var maxConnections: Int { caps.withLock { $0.total } }
    var maxPerClient: Int { caps.withLock { $0.perClient } }

    /// New caps (a reload): connections already open stay; new ones are admitted under these.
    func setCaps(maxConnections: Int, maxPerClient: Int) {
        caps.withLock { $0 = (maxConnections, maxPerClient) }
    }

    /// Takes a place for a connection from `client` (nil: a trusted proxy), or says why not.
    func admit(_ client: ClientKey?) -> Refusal? {
        let (maxConnections, maxPerClient) = caps.withLock { $0 }
        let refusal = state.withLock { s -> Refusal? in
            guard s.total < maxConnections else { return .global }
            if let client {
                let open = s.perClient[client, default: 0]
                guard open < maxPerClient else { return .perClient }
                s.perClient[client] = open + 1
            }
            s.total += 1
            return nil
        }
        switch refusal {
        case .global: refusedGlobal.add(1, ordering: .relaxed)
        case .perClient: refusedPerClient.add(1, ordering: .relaxed)
        case nil: break
        }
        return refusal
    }

    /// Most refused connections held open at a time.
    private var maxHeld: Int { min(1024, maxConnections / 8) }

    /// Takes a place for a refused connection to be held before it is closed; false: close it now.
    func hold() -> Bool {
        let limit = maxHeld
        var current = held.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = held.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// A held connection was closed.
    func releaseHeld() {
        held.subtract(1, ordering: .relaxed)
    }

    /// Gives back the place of a closed connection.
    func release(_ client: ClientKey?) {
        state.withLock { s in
            s.total -= 1
            guard let client, let open = s.perClient[client] else { return }
            if open <= 1 { s.perClient[client] = nil } else { s.perClient[client] = open - 1 }
        }
    }

    func refused(_ reason: Refusal) -> Int {
        reason == .global ? refusedGlobal.load(ordering: .relaxed) : refusedPerClient.load(ordering: .relaxed)
    }
}
