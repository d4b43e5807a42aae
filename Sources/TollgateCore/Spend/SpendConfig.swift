import Foundation

/// What one upstream call of a route costs (`routes[i].cost`).
public struct CostConfig: Sendable, Equatable {
    /// Price of every call.
    public var perCall: Money
    /// A response header in which the provider reports units used (lower-cased), with their price.
    public var unitsHeader: String?
    public var unitPrice: Money?
    /// Most one call may cost; what is reserved before the call when units are settled from a header.
    public var max: Money
    /// Upstream outcomes after which the reservation is released instead of billed.
    public var releaseOn: Set<ReleaseRule>

    public enum ReleaseRule: String, Sendable, CaseIterable {
        /// The upstream could not be reached (no request was delivered).
        case unreachable
        /// The upstream answered 5xx.
        case serverError = "5xx"
        /// The upstream answered 429.
        case rateLimited = "429"
    }

    /// Reserved before the call: the worst case.
    public var reserve: Money { unitsHeader == nil ? perCall : max }

    /// The settled cost given the provider's units header, if any: `per_call + units × unit_price`,
    /// at most `max`. A missing or malformed header settles at the reserved amount.
    public func settle(unitsHeaderValue: String?) -> Money {
        guard unitsHeader != nil else { return perCall }
        guard let text = unitsHeaderValue?.trimmingWhitespace(), let unitPrice,
              let units = Money.parseDecimal(Substring(text)) else { return max }
        // units has 6 implied decimals; unit price is in micros: product / 1e6.
        let (product, overflow) = units.multipliedReportingOverflow(by: unitPrice.micros)
        guard !overflow else { return max }
        let cost = perCall.micros + product / Money.scale
        return Money(micros: Swift.min(cost, max.micros), currency: perCall.currency)
    }
}

/// What a policy does when the store shared with other gateways cannot be reached (`on_store_error`).
public enum OnStoreError: String, Sendable, CaseIterable {
    /// Go on with what this gateway knows alone (its own limits, its own book).
    case open
    /// Refuse (503) rather than decide without the other gateways.
    case closed
}

/// A spend cap (`budgets[i]`).
public struct BudgetConfig: Sendable, Equatable {
    public enum Scope: String, Sendable, CaseIterable {
        /// One total for every route it covers.
        case global
        /// A total per route.
        case route
        /// A total per client address (grouped by the client_ip prefixes).
        case client
        /// A total per browser session: the page-token session cookie, counted only when the gateway
        /// issued it (its MAC verifies); calls without one, or with an invented one, share one total.
        case session
        /// A total per API or client key (the route's `auth` must run); calls without a key share one.
        case key
        /// A total per authenticated subject (a key's owner, a token's `sub`).
        case subject
        /// A total per verified email address (`verified_email` routes); calls without one share one.
        case email
    }

    public var name: String
    public var scope: Scope
    /// Routes it covers; nil covers every route with a cost.
    public var routes: [String]?
    public var limit: Money
    public var period: BudgetPeriod
    public var timeZone: TimeZone
    /// Percentages at which an alert fires, once per period each.
    public var alertAt: [Int]
    /// Status of the refusal: 402 (default) or 429.
    public var status: Int
    /// `closed` (default): no upstream call without a durable reservation. `open`: when the store
    /// cannot take the reservation, the call goes ahead if this gateway's own book has room.
    public var onStoreError: OnStoreError = .closed

    public func covers(_ route: String) -> Bool { routes?.contains(route) ?? true }
}

/// Where alerts go (`alerts.webhook`).
public struct AlertConfig: Sendable, Equatable {
    public var webhookURL: UpstreamURL?
    /// Secret name (under `secrets`) whose value signs the body (HMAC-SHA256, `X-Tollgate-Signature`).
    public var secret: String?
    /// Rate rules (`alerts.rules`): refusal spikes, refusal share, calls per sign-up.
    public var rules: [AlertRule] = []
    /// How often the rules are evaluated (`alerts.interval`).
    public var interval: Duration = .seconds(10)
}

/// Where durable state lives (`store`).
public enum StoreConfig: Sendable, Equatable {
    /// Nothing survives a restart (tests, demos).
    case memory
    /// An SQLite database file (WAL), the embedded default.
    case sqlite(path: String)
    /// A PostgreSQL database that several gateways share (docs/cluster.md).
    case postgres(PostgresStoreConfig)
}

extension StoreConfig {
    /// Whether other gateways may write to the same store (PostgreSQL).
    public var isShared: Bool {
        if case .postgres = self { return true }
        return false
    }
}

/// `store: postgres://USER@HOST:PORT/DATABASE`, or the map form with a password, TLS and pool size.
public struct PostgresStoreConfig: Sendable, Equatable {
    public enum TLS: String, Sendable, CaseIterable {
        /// TLS with the server's certificate checked against `ca_file` or the system roots, and its name.
        case verify
        /// TLS without checking the certificate (a network you trust not to impersonate the server).
        case require
        /// No TLS: loopback hosts only.
        case disable
    }

    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    /// Names an entry of `secrets` (nil: no password, e.g. `trust` on loopback).
    public var passwordSecret: String?
    public var tls: TLS
    public var caFile: String?
    /// Connections each gateway keeps open (`connections`, default 4).
    public var connections: Int = 4
    /// Longest one query may take; past it the connection is dropped and the caller gets an error.
    public var queryTimeout: Duration = .seconds(5)
    /// How often gateways exchange rate-limit usage (`sync_interval`, default 200 ms): the lag of a
    /// global limit, and its error bound (docs/cluster.md).
    public var syncInterval: Duration = .milliseconds(200)
    /// How long a gateway spends from one lease on a busy budget total before giving back what is
    /// left (`budget_lease`, default 5 s; zero: no leases, every reservation is decided in the
    /// shared total). What a crash can strand is one lease per busy total for twice this, plus 2 s.
    public var budgetLease: Duration = .seconds(5)

    public init(host: String, port: Int = 5432, user: String, database: String, passwordSecret: String? = nil,
                tls: TLS? = nil, caFile: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.passwordSecret = passwordSecret
        self.tls = tls ?? (Self.isLoopback(host) ? .disable : .verify)
        self.caFile = caFile
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Where it is, without credentials: `postgres://USER@HOST:PORT/DATABASE`.
    public var description: String { "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }
}

/// The response cache of a route (`routes[i].cache`).
public struct CacheConfig: Sendable, Equatable {
    public var ttl: Duration
}
