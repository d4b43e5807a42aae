import Logging
import NIOCore
import NIOPosix

/// On the listening socket: when accepting fails for lack of resources (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM), stop accepting for `pause`, then try again — instead of spinning on a socket that stays
/// readable while connections wait in its backlog.
///
/// Why not NIO's `AcceptBackoffHandler`: it defers the next `read()`, but after a failed accept the
/// server channel still has its read pending, so no `read()` comes and the event loop keeps waking
/// on the readable socket (measured here: a core at 100 % under `ulimit -n 64`). Turning `autoRead`
/// off takes the socket out of the selector; turning it back on re-arms it. Connections already
/// accepted are served throughout; the kernel keeps new ones in the backlog meanwhile.
final class AcceptPause: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    static let recoverable: Set<Int32> = [EMFILE, ENFILE, ENOBUFS, ENOMEM]

    private let pause: TimeAmount
    private let admission: ConnectionAdmission
    private let logger: Logger
    private var paused = false
    private var lastLogged: NIODeadline?

    /// Each pause is counted in `admission` (`tollgate_accept_pauses_total`) and logged at most
    /// every 10 s.
    init(pause: TimeAmount = .milliseconds(250), admission: ConnectionAdmission, logger: Logger) {
        self.pause = pause
        self.admission = admission
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let io = error as? IOError, Self.recoverable.contains(io.errnoCode) else {
            return context.fireErrorCaught(error)
        }
        guard !paused, let options = context.channel.syncOptions else { return }
        paused = true
        admission.acceptPauses.add(1, ordering: .relaxed)
        let now = NIODeadline.now()
        if lastLogged.map({ now - $0 >= .seconds(10) }) ?? true {
            lastLogged = now
            logger.error("accepting paused: out of file descriptors or memory", metadata: [
                "error": "\(io.description)", "pause_ms": "\(pause.nanoseconds / 1_000_000)",
                "pauses": "\(admission.acceptPauses.load(ordering: .relaxed))"])
        }
        try? options.setOption(ChannelOptions.autoRead, value: false)
        let channel = context.channel
        context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [self] in
            paused = false
            try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        }
    }
}
