import NIOCore
import TollgateUpstreamHTTP

extension UpstreamPool {
    /// One client request's trip upstream, possibly over two connections (one retry).
    final class Exchange {
        private(set) var call: UpstreamCall
        let deadline: NIODeadline
        private unowned let pool: UpstreamPool
        /// Who hears the answer.
        enum Answer {
            case closure((Result<UpstreamResponse, UpstreamFailure>) -> Void)
            case taker(any UpstreamAnswerTaker)
        }
        private let answer: Answer
        /// Index in the pool's `active` list, -1 once finished.
        var slot = -1
        var connection: UpstreamConnection?
        var retried = false
        /// Whether its current connection came from the pool (a stale one is retried once).
        var reused = false
        /// In the endpoint's wait queue.
        var isWaiting = false
        /// Its endpoint's slots, once it asked for a connection (saves looking them up again).
        var slots: Slots?
        private(set) var done = false

        /// What a finished call holds instead of its request (shared, never written).
        private static let noRequest = ByteBufferAllocator().buffer(capacity: 0)

        init(call: UpstreamCall, deadline: NIODeadline, pool: UpstreamPool, answer: Answer) {
            self.call = call
            self.deadline = deadline
            self.pool = pool
            self.answer = answer
        }

        func finish(_ result: Result<UpstreamResponse, UpstreamFailure>) {
            guard !done else { return }
            done = true
            pool.finished(self)
            if case .failure(.timeout) = result, let conn = connection {
                conn.abort()  // its call's completion will not run: give its slot back here
                pool.lost(conn)
            }
            connection = nil
            // The request's bytes are not needed any more: the buffer goes back to the shelf, and
            // the call lets go of it so that the next request rendered can reuse its memory.
            pool.requestBuffers.give(call.request)
            call.request = Self.noRequest
            switch answer {
            case .closure(let completion): completion(result)
            case .taker(let taker): taker.answered(result)
            }
        }
    }
}
