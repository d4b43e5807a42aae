import Foundation
import Synchronization

/// A route's side of spend control: reserve the worst-case cost in every applicable budget before
/// the upstream call, then settle to the real cost or release it.
public struct SpendControl: Sendable {
    public let route: String
    public let cost: CostConfig
    public let book: SpendBook

    public enum Outcome: Sendable {
        case reserved(SpendReservation)
        case refused(Problem)
        /// Shadow mode: reserved although a cap is passed; `wouldRefuse` is what enforcing would answer.
        case reservedOverCap(SpendReservation, wouldRefuse: Problem)
    }

    public init(route: String, cost: CostConfig, book: SpendBook) {
        self.route = route
        self.cost = cost
        self.book = book
    }

    /// Reserves the call's cost for `client` (and `session`, a hash of the session cookie) at `now`
    /// (Unix seconds), or says why not. In `shadow` mode a passed cap does not refuse: the cost is
    /// reserved anyway and the refusal returned alongside. A pause refuses in either mode.
    /// `key` and `subject` are the authenticated caller's key id and subject (empty without one).
    /// `email` is the verified address's hash (empty without one).
    public func reserve(client: String, session: String = "", key: String = "", subject: String = "", email: String = "",
                        now: Int64, shadow: Bool = false) -> Outcome {
        if book.isPaused(route) { return .refused(Self.paused) }
        let keys = book.keys(route: route, client: client, session: session, key: key, subject: subject, email: email)
        let amount = cost.reserve.micros
        let reservation = { SpendReservation(keys: keys, amount: amount, reservedAt: now, route: route, client: client,
                                             session: session, key: key, subject: subject, email: email, book: book) }
        if let refusal = book.reserve(keys, amount: amount, now: now, evenOverCap: shadow) {
            let problem = Self.exhausted(book.budgets[refusal.budget], resetAt: refusal.resetAt, now: now)
            return shadow ? .reservedOverCap(reservation(), wouldRefuse: problem) : .refused(problem)
        }
        return .reserved(reservation())
    }

    /// The answer when `budget` has no room until `resetAt` (Unix seconds).
    public static func exhausted(_ budget: BudgetConfig, resetAt: Int64, now: Int64) -> Problem {
        Problem(status: budget.status, code: "budget-exhausted",
                title: budget.status == 429 ? "Too Many Requests" : "Payment Required",
                detail: "The spending limit for this service has been reached.",
                extensions: [JSONMember("budget", .string(budget.name)),
                             JSONMember("reset_at", .string(Self.iso8601(resetAt)))],
                headers: [("Retry-After", String(max(1, resetAt - now)))])
    }

    /// The answer while an operator has paused the route's upstream calls.
    public static let paused = Problem(status: 503, code: "paused", title: "Service Unavailable",
                                       detail: "Calls to this service are paused by the operator.")

    public static func iso8601(_ seconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }
}

/// Money taken from budgets for one upstream call. Settled or released once; if the request ends
/// without either (the client went away mid-call), the reserved amount simply stays spent.
public final class SpendReservation: Sendable {
    public let keys: [SpendBook.Key]
    /// Micro-units reserved.
    public let amount: Int64
    public let reservedAt: Int64
    public let route: String
    public let client: String
    /// Hash of the session cookie, or empty.
    public let session: String
    /// The caller's key id and subject, or empty.
    public let key: String
    public let subject: String
    /// The verified address's hash, or empty.
    public let email: String
    private let book: SpendBook
    private let state = Mutex<State>(.reserved)
    /// Row of this reservation in the durable ledger, once written.
    public let ledgerID = Atomic<Int64>(0)

    public enum State: Sendable, Equatable {
        case reserved
        case settled(Int64)
        case released
    }

    init(keys: [SpendBook.Key], amount: Int64, reservedAt: Int64, route: String, client: String, session: String,
         key: String = "", subject: String = "", email: String = "", book: SpendBook) {
        self.session = session
        self.email = email
        self.key = key
        self.subject = subject
        self.keys = keys
        self.amount = amount
        self.reservedAt = reservedAt
        self.route = route
        self.client = client
        self.book = book
    }

    public var current: State { state.withLock { $0 } }

    /// Records the real cost; returns false if already settled or released.
    @discardableResult
    public func settle(_ cost: Int64) -> Bool {
        let first = state.withLock { s -> Bool in
            guard s == .reserved else { return false }
            s = .settled(cost)
            return true
        }
        if first { book.adjust(keys, delta: cost - amount, reservedAt: reservedAt) }
        return first
    }

    /// Gives the reservation back (the upstream did not bill).
    @discardableResult
    public func release() -> Bool {
        let first = state.withLock { s -> Bool in
            guard s == .reserved else { return false }
            s = .released
            return true
        }
        if first { book.adjust(keys, delta: -amount, reservedAt: reservedAt) }
        return first
    }
}
