import Dispatch
import Logging
import NIOCore
import NIOConcurrencyHelpers
import TollgateCore

/// Follows the confirmations other gateways write to a shared store (PostgreSQL): every
/// ``interval`` it reads those after the last one seen and applies them to this gateway's
/// ``VerifiedSessions``, so a visitor who confirmed a link on one gateway is verified on all of
/// them, and the link is used on all of them. Runs on a queue of its own, never an event loop.
final class VerificationFeed: Sendable {
    static let interval: DispatchTimeInterval = .milliseconds(250)
    /// Rows read per query; a backlog is read in several rounds of one tick.
    static let batch = 1_000

    private let timer: TimerBox
    private let queue: DispatchQueue
    private let poll: @Sendable () -> Void

    init(sessions: VerifiedSessions, journal: any VerificationJournal, logger: Logger) {
        let queue = DispatchQueue(label: "tollgate.verification.feed")
        let timer = DispatchSource.makeTimerSource(queue: queue)
        // Touched only on `queue` (the timer's and pollSoon's); the boxes make that checkable.
        let cursor = NIOLockedValueBox<Int64>(0)
        let failing = NIOLockedValueBox(false)
        timer.schedule(deadline: .now(), repeating: Self.interval)
        let poll: @Sendable () -> Void = {
            do {
                while true {
                    let (found, next) = try journal.confirmations(after: cursor.withLockedValue { $0 }, limit: Self.batch)
                    sessions.apply(found, nowMillis: NIODeadline.wallClockMillis)
                    cursor.withLockedValue { $0 = next }
                    if found.count < Self.batch { break }
                }
                failing.withLockedValue { $0 = false }
            } catch {
                // Once per outage, not every tick.
                let first = failing.withLockedValue { was in
                    defer { was = true }
                    return !was
                }
                if first {
                    logger.warning("cannot follow verification confirmations; retrying", metadata: ["error": "\(error)"])
                }
            }
        }
        self.queue = queue
        self.poll = poll
        timer.setEventHandler(handler: poll)
        timer.resume()
        self.timer = TimerBox(source: timer)
    }

    /// A confirmation was announced (a store notification): read now instead of at the next tick.
    func pollSoon() { queue.async(execute: poll) }

    func stop() { timer.source.cancel() }
}
