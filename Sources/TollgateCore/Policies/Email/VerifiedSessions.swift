import Foundation
import Synchronization

/// Page sessions whose visitor opened a verification link, and the links already used.
///
/// Memory is authoritative on the hot path (one lock, one lookup); with a journal every
/// confirmation is also written behind and read back at start, so a restart neither forgets a
/// verified session nor accepts a used link again. Sessions are held by their tag
/// (``SessionTag``), never by the cookie. Both tables are bounded: full of live entries, a new
/// confirmation is refused (`link-unavailable`) rather than something else forgotten.
public final class VerifiedSessions: Sendable {
    private struct Tables {
        var sessions: BoundedTable<String, VerifiedEmail>
        var usedLinks: BoundedTable<Data, Int64>
    }

    private let tables: Mutex<Tables>
    private let journal: (any VerificationJournal)?

    public init(maxTracked: Int, journal: (any VerificationJournal)? = nil, nowMillis: Int64 = 0) {
        tables = Mutex(Tables(sessions: BoundedTable(capacity: maxTracked, sweepInterval: 1000),
                              usedLinks: BoundedTable(capacity: maxTracked, sweepInterval: 1000)))
        self.journal = journal
        apply((try? journal?.confirmations(nowMillis: nowMillis)) ?? [], nowMillis: nowMillis)
    }

    /// Confirmations made elsewhere (read back at start, or another gateway's on a shared store):
    /// their links count as used, their sessions as verified while still valid. Not journaled again.
    public func apply(_ confirmations: [VerificationConfirmation], nowMillis: Int64) {
        guard !confirmations.isEmpty else { return }
        tables.withLock { t in
            for entry in confirmations {
                _ = t.usedLinks.insert(entry.nonce, entry.linkExpiresMillis, now: nowMillis) { $0 }
                if entry.email.untilMillis > nowMillis {
                    _ = t.sessions.insert(entry.sessionTag, entry.email, now: nowMillis) { $0.untilMillis }
                }
            }
        }
    }

    /// The verified address of session `cookie` (an issued session), if still valid at `nowMillis`.
    public func verified(session cookie: String, nowMillis: Int64) -> VerifiedEmail? {
        let tag = SessionTag.of(cookie)
        return tables.withLock { t in
            guard let email = t.sessions[tag], email.untilMillis > nowMillis else { return nil }
            return email
        }
    }

    /// Uses `link` for session `cookie`: marks the link used and the session verified until
    /// `nowMillis + verifiedFor`. A link already used is refused, even by the same session.
    public func confirm(_ link: VerificationLinks.Link, session cookie: String, verifiedFor: Duration, linkTTLMillis: Int64,
                        nowMillis: Int64) -> Result<VerifiedEmail, VerificationLinks.Refusal> {
        let tag = SessionTag.of(cookie)
        var email = link.email
        email.untilMillis = nowMillis + verifiedFor.milliseconds
        let linkExpires = link.issuedMillis + linkTTLMillis + 60_000
        let result: Result<VerifiedEmail, VerificationLinks.Refusal> = tables.withLock { t in
            if t.usedLinks[link.nonce] != nil { return .failure(.used) }
            guard t.usedLinks.makeRoom(now: nowMillis, expiresAt: { $0 }),
                  t.sessions.makeRoom(now: nowMillis, expiresAt: { $0.untilMillis }) || t.sessions[tag] != nil
            else { return .failure(.full) }
            _ = t.usedLinks.insert(link.nonce, linkExpires, now: nowMillis) { $0 }
            _ = t.sessions.insert(tag, email, now: nowMillis) { $0.untilMillis }
            return .success(email)
        }
        if case .success(let email) = result {
            journal?.recordConfirmation(VerificationConfirmation(nonce: link.nonce, linkExpiresMillis: linkExpires,
                                                                 sessionTag: tag, email: email))
        }
        return result
    }

    /// Sessions remembered as verified (some may have expired since the last sweep).
    public var count: Int { tables.withLock { $0.sessions.count } }
}

/// One used link and the session it verified.
public struct VerificationConfirmation: Sendable, Equatable {
    public var nonce: Data
    public var linkExpiresMillis: Int64
    public var sessionTag: String
    public var email: VerifiedEmail

    public init(nonce: Data, linkExpiresMillis: Int64, sessionTag: String, email: VerifiedEmail) {
        self.nonce = nonce
        self.linkExpiresMillis = linkExpiresMillis
        self.sessionTag = sessionTag
        self.email = email
    }
}

/// One verification message asked for, as the store keeps it (no address, only its hash).
public struct VerificationRequest: Sendable, Equatable {
    public var addressHash: String
    public var domain: String
    public var sessionTag: String
    /// Unix seconds.
    public var at: Int64

    public init(addressHash: String, domain: String, sessionTag: String, at: Int64) {
        self.addressHash = addressHash
        self.domain = domain
        self.sessionTag = sessionTag
        self.at = at
    }
}

/// Where confirmations and requests are kept beyond the process (the SQLite store writes them
/// behind, batched). Reading back happens at start only.
public protocol VerificationJournal: Sendable {
    func recordConfirmation(_ confirmation: VerificationConfirmation)
    func recordVerificationRequest(_ request: VerificationRequest)
    /// Confirmations whose link or session is still live at `nowMillis`.
    func confirmations(nowMillis: Int64) throws -> [VerificationConfirmation]
    /// Confirmations stored after `cursor` by any gateway, oldest first, at most `limit`, and the
    /// cursor to ask from next (0 asks from the start). For following other gateways on a shared store.
    func confirmations(after cursor: Int64, limit: Int) throws -> (confirmations: [VerificationConfirmation], cursor: Int64)
}

extension VerificationJournal {
    /// A journal nobody else writes to has nothing to follow.
    public func confirmations(after cursor: Int64, limit: Int) throws -> (confirmations: [VerificationConfirmation], cursor: Int64) {
        ([], cursor)
    }
}
