import Foundation
import HTTPTypes
import Hummingbird
import TollgateCore
import TollgateStore

/// `POST /v1/keys/{id}/rotate`: a successor key with the same owner, scopes and routes (shown once
/// in the answer); the old key keeps working for `overlap` (default 24h), then expires.
extension AdminAPI {
    func addRotateRoute(_ v1: RouterGroup<AdminRequestContext>) {
        v1.post("keys/:id/rotate") { request, context in
            try context.require(.keys)
            guard let hasher else { throw AdminProblem(status: .conflict, code: "no-identity", detail: "The config has no identity.key_hash_secret.") }
            let id = try context.parameters.require("id")
            var request = request
            let buffer = try await request.collectBody(upTo: 4096)
            var overlap: Duration = .seconds(86_400)
            if buffer.readableBytes > 0 {
                guard let value = try? JSONParser.parse(Array(buffer.readableBytesView)), case .object(let members) = value else {
                    throw AdminProblem.invalid([("body", "must be a JSON object")])
                }
                if let unknown = members.first(where: { $0.key != "overlap" }) { throw AdminProblem.invalid([(unknown.key, "is not a known field")]) }
                if let o = value["overlap"] {
                    guard case .string(let text) = o, let d = Self.duration(text) else {
                        throw AdminProblem.invalid([("overlap", "must be a duration such as 24h")])
                    }
                    overlap = d
                }
            }
            let now = Int64(Date().timeIntervalSince1970)
            let (record, key, _) = try storeCall { try KeyOperations.rotate(db(), hasher: hasher, id: id, overlap: overlap, now: now) }
            audit(context, "keys.rotate", id)
            guard case .object(var members) = KeyOperations.describe(record, now: now) else { throw AdminProblem.unavailable }
            members.append(JSONMember("key", .string(key)))
            return json(.object(members), status: .created)
        }
    }
}
