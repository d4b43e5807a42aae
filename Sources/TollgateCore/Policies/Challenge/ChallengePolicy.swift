import Synchronization

/// Asks for proof of work before the call: always, or once the client is over a soft rate. The
/// work asked for doubles with each step of the client's recent load, so a person pays milliseconds
/// and a script hammering the route pays seconds per call.
public struct ChallengePolicy: Policy {
    public enum When: Sendable, Equatable {
        case always
        /// Only when the client is over `softRate`.
        case overRate
    }

    public let kind = RouteConfig.PolicyKind.challenge
    let pow: ProofOfWork
    let when: When
    let route: String
    /// Recent load per client: one GCRA arrival time, allowed to run ahead without limit (bounded by
    /// the step cap), so that load above the soft rate is measured rather than refused.
    let meter: LoadMeter

    public init(pow: ProofOfWork, when: When, softRate: Rate, route: String) {
        self.pow = pow
        self.when = when
        self.route = route
        self.meter = LoadMeter(rate: softRate)
    }

    public func evaluate(_ request: inout RequestView) -> Decision {
        let client = request.clientKey.description
        let level = meter.record(BucketKey(request.clientKey), nowNanos: request.now)
        if when == .overRate, level == 0 { return .pass }
        let nowSeconds = request.wallMillis / 1000
        if let solution = request.header("x-tollgate-solution") {
            guard let refusal = pow.verify(solution, route: route, client: client, nowSeconds: nowSeconds) else { return .pass }
            return .reject(problem(reason: refusal.rawValue, client: client, level: level, nowSeconds: nowSeconds))
        }
        return .reject(problem(reason: "challenge-required", client: client, level: level, nowSeconds: nowSeconds))
    }

    private func problem(reason: String, client: String, level: Int, nowSeconds: Int64) -> Problem {
        let challenge = pow.challenge(route: route, client: client, maxNumber: pow.difficulty(level: level), nowSeconds: nowSeconds)
        return Problem(status: 403, code: "challenge", title: "Forbidden",
                       detail: "Solve the proof-of-work challenge and send the solution in X-Tollgate-Solution.",
                       extensions: [JSONMember("reason", .string(reason)), JSONMember("challenge", challenge)])
    }
}

/// Measures how far over a soft rate each client is, in whole steps (a step = one rate's worth of
/// requests beyond its allowance). Bounded: at most `maxKeys` clients, decayed ones dropped first.
public final class LoadMeter: Sendable {
    let interval: Int64
    let window: Int64
    /// Theoretical arrival times per client; a client that finds the table full of live keys is
    /// measured at load 0 that time (its requests still need whatever the route requires).
    private let tats: Mutex<BoundedTable<BucketKey, Int64>>

    public init(rate: Rate, maxKeys: Int = 200_000) {
        interval = max(1, rate.periodNanos / Int64(rate.count))
        window = rate.periodNanos
        tats = Mutex(BoundedTable(capacity: maxKeys, sweepInterval: 100_000_000))
    }

    /// Counts one request; returns the client's load level (0 within the soft rate).
    public func record(_ key: BucketKey, nowNanos: Int64) -> Int {
        tats.withLock { table in
            // Cap how far ahead the arrival time may run: 30 steps is more than any difficulty uses.
            let tat = min(max(table[key] ?? nowNanos, nowNanos) + interval, nowNanos + window * 31)
            _ = table.insert(key, tat, now: nowNanos) { $0 }
            let over = tat - nowNanos - window
            return over <= 0 ? 0 : Int((over + window - 1) / window)  // whole windows over, rounded up
        }
    }
}
