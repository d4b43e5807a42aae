/// A dictionary with a hard bound on its size whose entries expire: the tables an attacker can try
/// to fill (token uses, solved challenges, CAPTCHA passes, challenge load, rate-limit buckets).
///
/// Cheap when full: a new key in a full table sweeps out expired entries only when something has
/// expired since the last sweep *and* the last sweep is at least `sweepInterval` old; otherwise it
/// is refused at once. So a table full of live entries answers every new key in O(1), and a sweep
/// (O(n)) runs at most once per `sweepInterval` — insert cost stays amortised O(1) at 100 % full,
/// the case that matters under attack. What a refusal means is the owner's choice: fail closed
/// (a token or solution not accepted), share an overflow bucket, or simply not remember.
///
/// Not thread-safe by itself: owners keep it inside their lock. Times are in the owner's unit
/// (nanoseconds, milliseconds or seconds), the same for `now`, expiries and `sweepInterval`.
public struct BoundedTable<Key: Hashable, Value> {
    public let capacity: Int
    public let sweepInterval: Int64
    public private(set) var entries: [Key: Value] = [:]
    private var lastSweep: Int64 = .min
    /// The earliest expiry left after the last sweep: before it, a sweep would free nothing.
    private var nextExpiry: Int64 = .min
    /// Expired entries dropped by sweeps, for metrics.
    public private(set) var swept = 0

    public init(capacity: Int, sweepInterval: Int64) {
        self.capacity = max(1, capacity)
        self.sweepInterval = sweepInterval
    }

    public var count: Int { entries.count }

    public subscript(key: Key) -> Value? { entries[key] }

    /// Replaces the value of a key already present; never refused. False when `key` is absent.
    @discardableResult
    public mutating func update(_ key: Key, _ value: Value) -> Bool {
        guard entries[key] != nil else { return false }
        entries[key] = value
        return true
    }

    /// Stores `value` for `key` (`expiresAt(value) <= now` means expired). For a new key in a full
    /// table, sweeps first when that can help and is due; false when there is still no room.
    public mutating func insert(_ key: Key, _ value: Value, now: Int64, expiresAt: (Value) -> Int64) -> Bool {
        guard entries[key] != nil || makeRoom(now: now, expiresAt: expiresAt) else { return false }
        entries[key] = value
        return true
    }

    /// Whether a new key fits, sweeping first when the table is full and a sweep is due and can help.
    public mutating func makeRoom(now: Int64, expiresAt: (Value) -> Int64) -> Bool {
        if entries.count < capacity { return true }
        guard now >= nextExpiry, lastSweep == .min || now &- lastSweep >= sweepInterval else { return false }
        sweep(now: now, expiresAt: expiresAt)
        return entries.count < capacity
    }

    /// Drops every expired entry now (start-up restores, tests).
    public mutating func sweep(now: Int64, expiresAt: (Value) -> Int64) {
        lastSweep = now
        var earliest = Int64.max
        let before = entries.count
        entries = entries.filter { _, value in
            let expiry = expiresAt(value)
            guard expiry > now else { return false }
            earliest = min(earliest, expiry)
            return true
        }
        swept += before - entries.count
        nextExpiry = earliest
    }
}
