import Dispatch
import NIOCore
import Logging
import Synchronization
import TollgateCore

/// The bans in force on this gateway and how they change: loaded from the store at start, reloaded
/// when the store's ban version moves (polled every 250 ms, off the event loops — so a ban added by
/// the CLI, the admin API or another gateway is in force within that interval), and extended at once
/// by automatic bans, which are then written to the store on a queue of their own.
final class AccessRuntime: Sendable {
    let board: BanBoard
    /// The automatic rules (replaced by a reload; their counts start over when the rules change).
    private let autoBanner: Mutex<(rules: [AutoBanRule], banner: AutoBanner?)>
    private let hasRules = Atomic<Bool>(false)
    /// Whether any automatic-ban rule exists (one atomic load; callers skip the clock read without).
    var hasAutoBanRules: Bool { hasRules.load(ordering: .relaxed) }
    private let store: (any BanStore)?
    private let logger: Logger
    private let writer = DispatchQueue(label: "tollgate.bans")
    /// Automatic bans not yet in the store: kept across reloads of the board until written.
    private let pending = Mutex<[Ban]>([])
    private let seenVersion = Mutex<Int64>(-1)
    private let timer = Mutex<TimerBox?>(nil)
    private let ticks = Mutex(0)
    /// Bans added by automatic rules since start.
    let autoBans = Atomic<Int>(0)

    init(rules: [AutoBanRule], store: (any BanStore)?, maxKeys: Int, logger: Logger) throws {
        self.store = store
        self.logger = logger
        self.autoBanner = Mutex((rules, rules.isEmpty ? nil : AutoBanner(rules: rules, maxKeys: maxKeys)))
        hasRules.store(!rules.isEmpty, ordering: .relaxed)
        let now = Int64(NIODeadline.wallClockSeconds)
        let version = try store?.banVersion() ?? 0
        board = BanBoard(try store?.activeBans(now: now) ?? [])
        seenVersion.withLock { $0 = version }
    }

    /// The rules of a reloaded config; unchanged rules keep their counts.
    func setRules(_ rules: [AutoBanRule], maxKeys: Int) {
        autoBanner.withLock { current in
            if current.rules != rules { current = (rules, rules.isEmpty ? nil : AutoBanner(rules: rules, maxKeys: maxKeys)) }
        }
        hasRules.store(!rules.isEmpty, ordering: .relaxed)
    }

    /// Starts following the store.
    func start() {
        guard store != nil else { return }
        let source = DispatchSource.makeTimerSource(queue: writer)
        source.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250))
        source.setEventHandler { [self] in
            let tick = ticks.withLock { $0 += 1; return $0 }
            refresh(force: tick % 40 == 0)  // every 10 s anyway: expired bans leave the list
        }
        source.resume()
        timer.withLock { $0 = TimerBox(source: source) }
    }

    func stop() {
        timer.withLock { $0?.source.cancel(); $0 = nil }
        writer.sync {}
    }

    /// Reloads the board when the store changed (or when `force`). Runs on `writer`.
    private func refresh(force: Bool) {
        guard let store else { return }
        do {
            let version = try store.banVersion()
            guard force || version != seenVersion.withLock({ $0 }) else { return }
            let active = try store.activeBans(now: Int64(NIODeadline.wallClockSeconds))
            board.replace(with: active + pending.withLock { $0 })
            seenVersion.withLock { $0 = version }
        } catch {
            logger.error("cannot read bans from the store", metadata: ["error": "\(error)"])
        }
    }

    /// Another gateway announced a change (a store notification): check the version now.
    func pollSoon() {
        writer.async { [self] in refresh(force: false) }
    }

    /// Bans the operator (or the admin API) just wrote: reloaded before this returns, so the
    /// admin API's answer means the ban is in force on this gateway.
    func storeChanged() {
        writer.sync { refresh(force: true) }
    }

    /// Counts an answer for the automatic rules; bans the client's network when one trips.
    func count(status: Int, address: ClientKey, nowNanos: Int64) {
        guard hasRules.load(ordering: .relaxed), let autoBanner = autoBanner.withLock({ $0.banner }) else { return }
        let now = Int64(NIODeadline.wallClockSeconds)
        guard let ban = autoBanner.count(status: status, address: address, nowNanos: nowNanos, nowSeconds: now) else { return }
        guard board.current.ban(address: address, now: now) == nil else { return }
        addAutomatic(ban)
    }

    /// Puts an automatic ban in force here at once, and in the store for the other gateways.
    func addAutomatic(_ ban: Ban) {
        board.add(ban)
        autoBans.add(1, ordering: .relaxed)
        logger.warning("automatic ban", metadata: ["kind": "\(ban.kind.rawValue)", "value": "\(ban.value)", "rule": "\(ban.createdBy)",
                                                   "until": "\(ban.expiresAt ?? 0)", "reason": "\(ban.reason)"])
        guard let store else { return }
        pending.withLock { $0.append(ban) }
        writer.async { [self] in
            do { _ = try store.addBan(ban) } catch {
                logger.error("cannot store an automatic ban", metadata: ["error": "\(error)"])
            }
            pending.withLock { $0.removeAll { $0 == ban } }
            refresh(force: true)
        }
    }
}

/// A dispatch timer held by a Sendable owner: created once, then only cancelled (which Dispatch
/// allows from any thread).
struct TimerBox: @unchecked Sendable {
    let source: any DispatchSourceTimer
}
