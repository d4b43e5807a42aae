import Foundation
import Hummingbird
import TollgateCore

/// `POST /v1/signups`: the application reports completed sign-ups (as an alternative to a route
/// with `counts_signup: true`), for the console's calls-per-sign-up ratio and its alert.
extension AdminAPI {
    func addSignupRoutes(_ v1: RouterGroup<AdminRequestContext>) {
        v1.post("signups") { request, context in
            try context.require(.write)
            let body = try await object(request, allowed: ["count"])
            var count = 1
            if let c = body["count"] {
                guard case .number(let text) = c, let d = Double(text), d == d.rounded(), d >= 1, d <= 1000 else {
                    throw AdminProblem.invalid([("count", "must be an integer from 1 to 1000")])
                }
                count = Int(d)
            }
            await live.recordSignups(count)
            return json(.object([JSONMember("counted", .number(String(count)))]))
        }
    }
}
