import NIOCore

/// A client connection an ``IdleWatch`` closes once nothing happened on it for `idle_timeout`.
protocol IdleWatched: AnyObject {
    /// The owner's watch, kept in a stored property.
    var idleWatch: IdleWatch { get set }
    /// What the connection is doing when the pending check fires.
    var idleStatus: IdleWatch.Status { get }
    /// The config's `idle_timeout`, read when a check is armed (a reload applies from the next one).
    var idleTimeout: TimeAmount { get }
    /// Nothing happened for the timeout: close the connection.
    func closeIdle()
}

/// Closes a connection nothing happened on for its idle timeout, at the cost of one timer per idle
/// period rather than one per request: activity only records the time (``touch(_:on:)``), and the
/// one pending check, when it fires, re-arms itself for what is left of the timeout — a whole
/// timeout more while the connection is busy — or closes it.
///
/// The pending check holds its owner strongly until it fires or ``cancel()`` is called, which
/// the owner does when the connection ends: a `weak` capture would give every connection a side
/// table and put all its reference counting on the slow path (0.8 % of a proxied request's CPU).
/// Bound to the owner's event loop.
struct IdleWatch {
    enum Status {
        /// Nothing in progress: the connection closes once the timeout has passed since the last activity.
        case idle
        /// A request is in progress: the check waits a whole timeout more.
        case busy
        /// Closing already: the check stops.
        case closing
    }

    private var pending: Scheduled<Void>?
    private var lastActivity = NIODeadline.uptimeNanoseconds(0)

    /// Notes activity now and makes sure one check is pending; returns the time it read (a request
    /// whose head this activity completed started then: one clock read serves both).
    @discardableResult
    static func touch(_ owner: some IdleWatched, on eventLoop: any EventLoop) -> NIODeadline {
        let now = eventLoop.now
        owner.idleWatch.lastActivity = now
        if owner.idleWatch.pending == nil { schedule(owner, at: now + owner.idleTimeout, on: eventLoop) }
        return now
    }

    /// Stops watching (the connection ended): the pending check, if any, is cancelled.
    mutating func cancel() {
        pending?.cancel()
        pending = nil
    }

    private static func schedule(_ owner: some IdleWatched, at deadline: NIODeadline, on eventLoop: any EventLoop) {
        owner.idleWatch.pending = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            owner.idleWatch.pending = nil
            let timeout = owner.idleTimeout
            switch owner.idleStatus {
            case .closing:
                return
            case .busy:
                schedule(owner, at: eventLoop.now + timeout, on: eventLoop)
            case .idle:
                let due = owner.idleWatch.lastActivity + timeout
                if due > eventLoop.now { schedule(owner, at: due, on: eventLoop) } else { owner.closeIdle() }
            }
        }
    }
}
