import NIOCore
import TollgateCore

/// Closes a connection whose client sends too slowly (slowloris): a request head that has begun
/// must be complete within `request_head_timeout`; a body must then keep arriving at
/// `min_body_rate` bytes per second on average, after the same grace. One scheduled task while a
/// head or body stays incomplete across read cycles; the connection cancels it when the head or the
/// body completes. Bound to the connection's event loop.
/// What a ``SlowSenderCheck`` watches: an HTTP/1.1 connection or an HTTP/2 stream.
protocol SlowSenderOwner: AnyObject {
    /// The body bytes of the request being received, so far.
    var bodyBytesReceived: Int { get }
    /// The verdict: the head or body did not arrive in time.
    func tooSlow(_ stage: SlowSenderCheck.Stage)
}

final class SlowSenderCheck {
    enum Stage {
        case head(since: NIODeadline)
        case body(since: NIODeadline, request: InboundRequest)

        var isHead: Bool { if case .head = self { true } else { false } }
    }

    let stage: Stage
    private weak var owner: (any SlowSenderOwner)?
    private var task: Scheduled<Void>?
    private let grace: TimeAmount
    private let rate: Int

    init(stage: Stage, owner: any SlowSenderOwner, loop: any EventLoop, config: GatewayConfig) {
        self.stage = stage
        self.owner = owner
        self.grace = TimeAmount(config.requestHeadTimeout)
        self.rate = config.minBodyRate
        switch stage {
        case .head(let since): schedule(at: since + grace, on: loop)
        case .body(let since, _):
            guard rate > 0 else { return }
            schedule(at: since + grace, on: loop)
        }
    }

    var isHead: Bool { stage.isHead }

    func cancel() {
        task?.cancel()
        task = nil
    }

    private func schedule(at deadline: NIODeadline, on loop: any EventLoop) {
        task = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in self?.fire(on: loop) }
    }

    private func fire(on loop: any EventLoop) {
        task = nil
        guard let owner else { return }
        switch stage {
        case .head:
            owner.tooSlow(stage)
        case .body(let since, _):
            // Bytes owed by now: `rate` per second since the grace ended (plus one second's worth of slack).
            let elapsed = loop.now - since - grace
            let owed = Int(Int64(rate) * elapsed.nanoseconds / 1_000_000_000)
            let received = owner.bodyBytesReceived
            if received < owed {
                owner.tooSlow(stage)
            } else {
                // Due again when the bytes received so far are no longer enough.
                let dueIn = TimeAmount.nanoseconds(Int64(received - owed + 1) * 1_000_000_000 / Int64(max(1, rate)))
                schedule(at: loop.now + max(dueIn, .milliseconds(100)), on: loop)
            }
        }
    }
}
