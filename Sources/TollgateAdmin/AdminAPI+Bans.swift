import Foundation
import HTTPTypes
import Hummingbird
import TollgateCore
import TollgateStore

/// `/v1/bans`: bans in force (read), add one and end one (write). The gateway serving this API
/// applies a change at once; others sharing the store within a second.
extension AdminAPI {
    func addBanRoutes(_ v1: RouterGroup<AdminRequestContext>) {
        v1.get("bans") { _, context in
            try context.require(.read)
            let bans = try storeCall { try db().activeBans(now: Int64(Date().timeIntervalSince1970)) }
            return json(.object([JSONMember("bans", .array(bans.map(BanOperations.describe)))]))
        }
        v1.post("bans") { request, context in try await addBan(request, context) }
        v1.delete("bans/:id") { _, context in
            try context.require(.write)
            guard let id = Int64(try context.parameters.require("id")), id > 0 else { throw AdminProblem.notFound("ban") }
            guard try storeCall({ try db().removeBan(id: id, at: Int64(Date().timeIntervalSince1970)) }) else {
                throw AdminProblem.notFound("ban in force")
            }
            live.bansChanged()
            audit(context, "bans.remove", String(id))
            return json(.object([JSONMember("id", .number(String(id))), JSONMember("removed", .bool(true))]))
        }
    }

    func addBan(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        try context.require(.write)
        let body = try await object(request, allowed: ["kind", "value", "duration_seconds", "reason"])
        var errors: [(String, String)] = []
        guard case .string(let kind)? = body["kind"] else { throw AdminProblem.invalid([("kind", "required: address, prefix, key or session")]) }
        guard case .string(let value)? = body["value"] else { throw AdminProblem.invalid([("value", "required: what to ban")]) }
        var duration: Duration?
        if let d = body["duration_seconds"] {
            // JSON Schema's integer: any number with no fraction.
            if case .number(let n) = d, let s = Double(n), s == s.rounded(), s >= 1, s <= Double(BanOperations.maxDuration.components.seconds) {
                duration = .seconds(Int64(s))
            } else {
                errors.append(("duration_seconds", "must be an integer from 1 to 31622400 (366 days); leave it out for a ban until removed"))
            }
        }
        var reason = ""
        if let r = body["reason"] {
            if case .string(let text) = r { reason = text } else { errors.append(("reason", "must be a string")) }
        }
        if let parsed = Ban.Kind(rawValue: kind), case .failure(let e) = Ban.canonical(kind: parsed, value: value) {
            errors.insert(("value", e.message), at: 0)
        }
        guard errors.isEmpty else { throw AdminProblem.invalid(errors) }
        let actor = context.token.map { "admin:\($0.name)" } ?? "admin"
        let result = try storeCall {
            try BanOperations.add(db(), kind: kind, value: value, duration: duration, reason: reason, by: actor,
                                  now: Int64(Date().timeIntervalSince1970))
        }
        switch result {
        case .failure(let invalid): throw AdminProblem.invalid(invalid.fields)
        case .success(let ban):
            live.bansChanged()
            audit(context, "bans.add", "\(ban.kind.rawValue) \(ban.value)")
            return json(BanOperations.describe(ban), status: .created)
        }
    }
}
