/// `alerts.rules`: a rate that should not pass a threshold, over a window of the last hour.
/// Evaluated every 10 s; a rule fires once when its measure goes above the threshold and sends a
/// recovery notice when it is back at or below it (one notice each way per episode).
public struct AlertRule: Sendable, Equatable {
    public enum Measure: Sendable, Equatable {
        /// Answers with one of these statuses (e.g. 401 and 403: a credential-stuffing spike; 429).
        case statuses(Set<Int>)
        /// Refused answers as a share of all answers (0…1), once at least `minRequests` were seen.
        case refusalShare(minRequests: Int)
        /// Paid upstream calls per completed sign-up, once at least `minCalls` calls were made.
        case callsPerSignup(minCalls: Int)
    }

    public var name: String
    public var measure: Measure
    public var above: Double
    public var within: Duration
    /// For `refusal_share`: one route's share (nil: the whole gateway's).
    public var route: String?

    /// Statuses counted per bucket, so that rules can name them.
    public static let trackedStatuses = [400, 401, 402, 403, 404, 405, 413, 415, 422, 429, 500, 502, 503, 504]

    public init(name: String, measure: Measure, above: Double, within: Duration) {
        self.name = name
        self.measure = measure
        self.above = above
        self.within = within
    }

    /// The measure over the window (nil: not enough traffic to judge). `total(column)` sums one
    /// column of the console's series over the window.
    public func value(_ total: (String) -> Int, refused: Int, answered: Int) -> Double? {
        switch measure {
        case .statuses(let statuses):
            return Double(statuses.reduce(0) { $0 + total("status:\($1)") })
        case .refusalShare(let minimum):
            return answered >= minimum && answered > 0 ? Double(refused) / Double(answered) : nil
        case .callsPerSignup(let minimum):
            let calls = total("paid_calls")
            guard calls >= minimum else { return nil }
            return Double(calls) / Double(max(1, total("signups")))
        }
    }

    /// What the measure is, for notices: `answers with status 401 or 403`.
    public var describe: String {
        switch measure {
        case .statuses(let s): "answers with status " + s.sorted().map(String.init).joined(separator: " or ")
        case .refusalShare: route.map { "share of requests to \($0) refused" } ?? "share of requests refused"
        case .callsPerSignup: "paid calls per sign-up"
        }
    }
}
