/// What the operator's console shows from the running gateway's memory (everything durable it reads
/// from the store): answers by decision over the last hour in 30-second buckets, calls and refusals
/// by country, the latest refused requests, and sign-ups. Plain data, so the admin module needs
/// nothing of the data plane.
public struct ConsoleSnapshot: Sendable {
    /// Bucket length and count of ``series``.
    public static let bucketSeconds: Int64 = 30
    public static let buckets = 120

    /// The column names of each bucket's counts: `passed`, `cached`, `paid_calls` (calls made to a
    /// paid API), `signups`, then one per deciding policy or stage (`rate_limit`, `validation`, `ban`, …).
    public var columns: [String]
    /// Oldest first; `start` is a Unix second.
    public var series: [(start: Int64, counts: [Int])]
    public var countries: [(code: String, calls: Int, refusals: Int)]
    public var recent: [RecentRefusal]
    /// Alert notices (fired and recovered), newest first.
    public var alerts: [AlertNotice] = []
    /// Passed and refused answers per route and bucket (only for routes a `refusal_share` rule names).
    public var routes: [String: [(start: Int64, passed: Int, refused: Int)]] = [:]

    /// Passed and refused answers of `route` in the buckets starting at or after `since`.
    public func routeTotals(_ route: String, since: Int64) -> (passed: Int, refused: Int) {
        (routes[route] ?? []).reduce((0, 0)) { $1.start >= since ? ($0.0 + $1.passed, $0.1 + $1.refused) : $0 }
    }

    public init(columns: [String], series: [(start: Int64, counts: [Int])], countries: [(code: String, calls: Int, refusals: Int)],
                recent: [RecentRefusal]) {
        self.columns = columns
        self.series = series
        self.countries = countries
        self.recent = recent
    }

    /// The columns that count refusals, by the policy or stage that refused.
    public var refusalColumns: [String] { columns.dropFirst(4).filter { !$0.hasPrefix("status:") } }

    /// The sum of column `name` over the buckets that start at or after `since`.
    public func total(_ name: String, since: Int64 = 0) -> Int {
        guard let i = columns.firstIndex(of: name) else { return 0 }
        return series.reduce(0) { $0 + ($1.start >= since ? $1.counts[i] : 0) }
    }
}

/// One refused request as the console lists it. `path` and `userAgent` are the client's own bytes
/// (cut to 120 characters): whoever shows them must escape them.
public struct RecentRefusal: Sendable {
    public var at: Int64
    public var client: String
    public var route: String
    public var method: String
    public var path: String
    public var userAgent: String
    public var status: Int
    public var reason: String

    public init(at: Int64, client: String, route: String, method: String, path: String, userAgent: String, status: Int, reason: String) {
        self.at = at
        self.client = client
        self.route = route
        self.method = method
        self.path = path
        self.userAgent = userAgent
        self.status = status
        self.reason = reason
    }
}

/// One alert notice: a rule fired (`firing`) or its episode ended (`recovered`).
public struct AlertNotice: Sendable {
    public var at: Int64
    public var rule: String
    public var state: String
    public var text: String

    public init(at: Int64, rule: String, state: String, text: String) {
        self.at = at
        self.rule = rule
        self.state = state
        self.text = text
    }
}
