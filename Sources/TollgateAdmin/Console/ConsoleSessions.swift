import Foundation
import Synchronization
import TollgateCore
import TollgateStore

/// Console log-ins: an admin token is given once, on the login form; the browser then holds only a
/// random session id in an `HttpOnly`, `SameSite=Strict` cookie (never the token, never in a URL).
/// Sessions live in memory for 8 hours and end with the process; each request checks that the
/// token behind the session is still active, so revoking it ends its sessions at once.
final class ConsoleSessions: Sendable {
    struct Session: Sendable {
        let tokenID: String
        let expires: Date
    }

    static let cookie = "tg_console"
    static let lifetime: TimeInterval = 8 * 3600
    private let sessions = Mutex<[String: Session]>([:])

    /// A new session for `token`; returns the cookie's value.
    func open(for token: AdminTokenRecord) -> String {
        let id = Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255) })
        let now = Date()
        sessions.withLock { all in
            all = all.filter { $0.value.expires > now }  // expired ones go when someone logs in
            all[id] = Session(tokenID: token.id, expires: now.addingTimeInterval(Self.lifetime))
        }
        return id
    }

    func close(_ id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// The token behind session `id`, if the session is live and the token still active.
    func token(for id: String, store: any AdminStore) -> AdminTokenRecord? {
        guard id.utf8.count == 64, let session = sessions.withLock({ $0[id] }), session.expires > Date() else { return nil }
        guard let token = try? store.adminToken(id: session.tokenID), token.revokedAt == nil else { return nil }
        return token
    }
}

extension AdminTokenRecord {
    /// The record of `text` if it is an active admin token in `store`.
    static func verify(_ text: Substring, in store: any AdminStore) -> AdminTokenRecord? {
        guard let parsed = APIKeyText(parsing: text), parsed.kind == .admin,
              let token = try? store.adminToken(id: parsed.id), token.revokedAt == nil,
              ConstantTime.equal(token.hash, AdminTokenHash.of(parsed.text)) else { return nil }
        return token
    }
}
