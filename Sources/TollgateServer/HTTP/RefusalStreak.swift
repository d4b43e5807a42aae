import NIOCore
import TollgateCore

/// One connection's run of refusals, and what it earns: a client whose requests keep being refused
/// is answered more slowly, then disconnected.
///
/// - After `delay_after_refusals` refusals in a row, each further refusal is written only after
///   `refusal_delay`. A client that waits for its answers (every browser, curl and `wrk`) then sends
///   at most one request per delay on that connection, so a flood costs the gateway almost nothing
///   and the event loops' time goes to the clients that are served. A client that does not wait
///   gains nothing: reads are held while an answer is pending.
/// - A ban's answer is always delayed: the ban closes the connection after it, so a banned client
///   never builds a run, and without the delay it could make the gateway accept, answer and close
///   as fast as it reconnects.
/// - After `close_after_refusals` in a row the connection is closed after the answer, so the next
///   run starts on a new connection, which the connection caps bound.
/// - A success resets the run. Only refusals of the client count (``Decider/refusesClient``); a
///   budget spent or a route paused refuses everybody and never delays.
/// - Connections from trusted proxies are never delayed: they carry many clients, and one client's
///   refusals must not hold up the others behind it.
struct RefusalStreak {
    private(set) var count = 0
    /// Whether the answer just recorded refuses a banned client.
    private var banned = false

    /// Counts `response` in the run.
    mutating func record(_ response: Response) {
        count = response.refused && response.decidedBy?.delaysClient == true ? count + 1 : 0
        banned = response.refused && response.decidedBy == .stage(.ban)
    }

    /// How long to hold the answer just recorded, if at all (`after`: `delay_after_refusals`).
    func delay(after: Int, by delay: Duration, trustedProxy: Bool) -> TimeAmount? {
        guard after > 0, count > after || banned, !trustedProxy, delay > .zero else { return nil }
        return TimeAmount(delay)
    }

    /// Counts `response` in the run and says how long its answer must wait, if at all, under the
    /// loop's config; a delayed answer is counted (`tollgate_refusals_delayed_total`). What both
    /// protocols' connections call for every answer.
    mutating func answerDelay(for response: Response, trustedProxy: Bool, loop: LoopContext) -> TimeAmount? {
        record(response)
        // Fields read one by one: copying the whole config would retain every field.
        guard let delay = delay(after: loop.state.config.delayAfterRefusals, by: loop.state.config.refusalDelay,
                                trustedProxy: trustedProxy) else { return nil }
        loop.refusalsDelayed += 1
        return delay
    }

    /// Whether the connection closes after the answer just recorded (`after`: `close_after_refusals`).
    func closes(after: Int) -> Bool {
        after > 0 && count >= after
    }
}

extension Decider {
    /// Whether a refusal by this decider is about the client itself (so a run of them is slowed
    /// down), not a state that refuses every client alike.
    var delaysClient: Bool {
        if case .stage(let stage) = self, stage == .budget || stage == .paused { return false }
        return refusesClient
    }
}
