import NIOCore
import Synchronization
import TollgateCore

/// Upstream answers kept for routes that allow it, shared by all event loops.
///
/// The key is the route and its validated parameters in canonical form (declaration order, defaults
/// filled in, values re-encoded), so `?q=a&country=US` and `?country=US&q=a` and `?q=a` (with
/// `US` the default) are one entry. Bounded by total bytes, least recently used out first.
/// Concurrent identical misses are coalesced: the first goes upstream, the others wait for it.
final class ResponseCache: Sendable {
    struct Entry: Sendable {
        let status: Int
        let contentType: String?
        let body: ByteBuffer
        let expires: NIODeadline
        /// What the call that filled the entry cost, i.e. what each hit saves.
        let costMicros: Int64
        var size: Int { body.readableBytes + 256 }
    }

    /// What a lookup found.
    enum Lookup {
        case hit(Entry)
        /// Another request is fetching this key; `waiter` runs (on its event loop) with the entry,
        /// or with nil when that fetch produced nothing cacheable.
        case joined
        /// Nobody is fetching it: the caller goes upstream and must call ``complete(_:with:)``.
        case lead
    }

    typealias Waiter = (eventLoop: any EventLoop, resume: @Sendable (Entry?) -> Void)

    private struct State {
        var entries: [String: (entry: Entry, tick: UInt64)] = [:]
        var bytes = 0
        var tick: UInt64 = 0
        var inFlight: [String: [Waiter]] = [:]
    }

    private let state = Mutex(State())
    let maxBytes: Int

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    static func key(route: String, params: [ValidatedParam]) -> String {
        var key = route
        for p in params {
            key += "\u{1}"
            key += p.name
            key += "\u{2}"
            key += p.value.text
        }
        return key
    }

    func lookup(_ key: String, now: NIODeadline, waiter: Waiter) -> Lookup {
        state.withLock { s in
            if let found = s.entries[key] {
                if found.entry.expires > now {
                    s.tick += 1
                    s.entries[key]!.tick = s.tick
                    return .hit(found.entry)
                }
                s.entries[key] = nil
                s.bytes -= found.entry.size
            }
            if s.inFlight[key] != nil {
                s.inFlight[key]!.append(waiter)
                return .joined
            }
            s.inFlight[key] = []
            return .lead
        }
    }

    /// The leader's fetch ended: store `entry` (if any) and wake the waiters.
    func complete(_ key: String, with entry: Entry?) {
        let waiters = state.withLock { s -> [Waiter] in
            if let entry, entry.size <= maxBytes {
                if let old = s.entries[key] { s.bytes -= old.entry.size }
                s.tick += 1
                s.entries[key] = (entry, s.tick)
                s.bytes += entry.size
                while s.bytes > maxBytes, let victim = s.entries.min(by: { $0.value.tick < $1.value.tick }) {
                    s.entries[victim.key] = nil
                    s.bytes -= victim.value.entry.size
                }
            }
            return s.inFlight.removeValue(forKey: key) ?? []
        }
        for w in waiters { w.eventLoop.execute { w.resume(entry) } }
    }

    var byteCount: Int { state.withLock { $0.bytes } }
}
