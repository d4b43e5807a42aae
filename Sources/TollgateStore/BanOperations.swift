import Foundation
import TollgateCore

/// Adding, listing and removing bans, shared by `tollgate bans` and the admin API so both check
/// the same way and describe a ban the same way.
public enum BanOperations {
    /// The longest ban that can be asked for with an expiry; longer ones are written as permanent.
    public static let maxDuration: Duration = .seconds(366 * 86_400)

    /// Checks and stores a ban; `errors` lists each bad field (`kind`, `value`, `duration`, `reason`).
    public static func add(_ store: any BanStore, kind: String, value: String, duration: Duration?, reason: String,
                           by actor: String, now: Int64) throws -> Result<Ban, FieldErrors> {
        var errors: [(String, String)] = []
        let parsedKind = Ban.Kind(rawValue: kind)
        if parsedKind == nil { errors.append(("kind", "must be one of address, prefix, key, session")) }
        var canonical: String?
        if let parsedKind {
            switch Ban.canonical(kind: parsedKind, value: value) {
            case .success(let v): canonical = v
            case .failure(let e): errors.append(("value", e.message))
            }
        }
        if let duration, duration < .seconds(1) || duration > maxDuration {
            errors.append(("duration", "must be from 1s to 366d (leave it out for a ban until removed)"))
        }
        if reason.unicodeScalars.count > 200 { errors.append(("reason", "must be at most 200 characters")) }
        guard errors.isEmpty, let parsedKind, let canonical else { return .failure(FieldErrors(errors)) }
        let ban = Ban(kind: parsedKind, value: canonical, reason: reason, createdAt: now,
                      expiresAt: duration.map { now + $0.components.seconds }, createdBy: actor)
        return .success(try store.addBan(ban))
    }

    public static func describe(_ ban: Ban) -> JSONValue {
        .object([
            JSONMember("id", .number(String(ban.id))),
            JSONMember("kind", .string(ban.kind.rawValue)),
            JSONMember("value", .string(ban.value)),
            JSONMember("reason", .string(ban.reason)),
            JSONMember("created_at", .string(SpendControl.iso8601(ban.createdAt))),
            JSONMember("expires_at", ban.expiresAt.map { .string(SpendControl.iso8601($0)) } ?? .null),
            JSONMember("created_by", .string(ban.createdBy)),
        ])
    }
}

/// Field-by-field reasons an input was refused.
public struct FieldErrors: Error, Sendable {
    public let fields: [(String, String)]
    public init(_ fields: [(String, String)]) { self.fields = fields }
}
