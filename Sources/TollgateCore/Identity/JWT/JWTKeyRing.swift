import Synchronization

/// The keys JWTs are verified against: those from the config, and the last good set fetched from
/// the JWKS URL. The fetched set is replaced whole (``replaceFetched(_:)``); a failed fetch simply
/// does not call it, so the last good set stays.
///
/// A token naming a `kid` the ring does not have asks for an early refetch (``onUnknownKeyID``),
/// which the fetcher rate-limits; the token itself is refused.
public final class JWTKeyRing: Sendable {
    private let fixed = Mutex<[VerifyingKey]>([])
    private let fetched = Mutex<[VerifyingKey]>([])
    private let generation = Atomic<Int>(0)
    private let unknownKeyHandler = Mutex<(@Sendable (String) -> Void)?>(nil)

    public init(fixed: [VerifyingKey] = []) {
        self.fixed.withLock { $0 = fixed }
    }

    /// Sets the keys from the config (loaded once at start).
    public func replaceFixed(_ keys: [VerifyingKey]) {
        fixed.withLock { $0 = keys }
        generation.add(1, ordering: .relaxed)
    }

    /// Replaces the fetched keys; tokens verified with the old set are no longer trusted from cache.
    public func replaceFetched(_ keys: [VerifyingKey]) {
        fetched.withLock { $0 = keys }
        generation.add(1, ordering: .relaxed)
    }

    /// Changes each time the set changes (the verified-token cache is valid for one generation).
    public var currentGeneration: Int { generation.load(ordering: .relaxed) }

    public var fetchedCount: Int { fetched.withLock { $0.count } }

    /// Called (off the caller's path by the handler's own choice) with a `kid` no key has.
    public func onUnknownKeyID(_ handler: @escaping @Sendable (String) -> Void) {
        unknownKeyHandler.withLock { $0 = handler }
    }

    /// Keys for a token with `kid` and `alg`: those with that id (or every key when the token names
    /// none), and only of exactly that algorithm. Empty when none fits; an unknown `kid` is reported.
    public func candidates(keyID: String?, algorithm: String) -> [VerifyingKey] {
        let all = fixed.withLock { $0 } + fetched.withLock { $0 }
        let known = keyID.map { id in all.contains { $0.keyID == id } } ?? true
        if !known, let keyID, let handler = unknownKeyHandler.withLock({ $0 }) { handler(keyID) }
        return all.filter { $0.algorithm == algorithm && (keyID == nil || $0.keyID == keyID) }
    }
}
