import Dispatch
import Logging
import NIOCore
import Synchronization
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

    init(sessions: VerifiedSessions, journal: any VerificationJournal, logger: Logger) {
        let queue = DispatchQueue(label: "tollgate.verification.feed")
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let cursor = Mutex<Int64>(0)
        let failing = Mutex(false)
        timer.schedule(deadline: .now(), repeating: Self.interval)
        timer.setEventHandler {
            do {
                while true {
                    let (found, next) = try journal.confirmations(after: cursor.withLock { $0 }, limit: Self.batch)
                    sessions.apply(found, nowMillis: NIODeadline.wallClockMillis)
                    cursor.withLock { $0 = next }
                    if found.count < Self.batch { break }
                }
                failing.withLock { $0 = false }
            } catch {
                // Once per outage, not every tick.
                let first = failing.withLock { was in
                    defer { was = true }
                    return !was
                }
                if first {
                    logger.warning("cannot follow verification confirmations; retrying", metadata: ["error": "\(error)"])
                }
            }
        }
        timer.resume()
        self.timer = TimerBox(source: timer)
    }

    func stop() { timer.source.cancel() }
}
