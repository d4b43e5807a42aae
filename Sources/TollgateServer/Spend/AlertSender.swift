import Crypto
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TollgateCore
import TollgateStore

/// Fires budget alerts: once per budget, scope, period and threshold (remembered in the store, so a
/// restart does not fire again), to the log and to the webhook. The webhook gets a JSON POST signed
/// with HMAC-SHA256 over `timestamp.body` (`X-Tollgate-Signature: t=…,v1=…`), retried with backoff;
/// none of it runs on a request's path.
final class AlertSender: @unchecked Sendable {
    let book: SpendBook
    let ledger: any SpendLedger
    let logger: Logger
    let endpoint: UpstreamEndpoint?
    let url: UpstreamURL?
    let signingKey: SymmetricKey?
    /// Thresholds already fired, per key+period, to skip the store on the hot path.
    private let fired = NIOLockedValueBox<Set<String>>([])
    static let backoff: [TimeAmount] = [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16)]

    init(config: GatewayConfig, secrets: [String: String], book: SpendBook, ledger: any SpendLedger, logger: Logger) throws {
        self.book = book
        self.ledger = ledger
        self.logger = logger
        url = config.alerts.webhookURL
        endpoint = try config.alerts.webhookURL.map { try UpstreamEndpoint(url: $0, caFile: nil) }
        signingKey = config.alerts.secret.flatMap { secrets[$0] }.map { SymmetricKey(data: Data($0.utf8)) }
    }

    /// Crossings waiting for the store; beyond `maxPending` new ones are dropped (and fire on a
    /// later reservation instead).
    private let pending = NIOLockedValueBox(0)
    static let maxPending = 1024
    private let store = DispatchQueue(label: "tollgate.alerts")
    /// Crossings dropped because the store fell behind.
    let dropped = NIOLockedValueBox(0)

    /// Checks the totals `keys` have now and fires any threshold newly crossed. On the event loop
    /// only the in-memory totals are read; recording the alert in the store (a database write)
    /// happens on the alert queue, and the webhook is sent from `loop`'s pool.
    func check(_ keys: [SpendBook.Key], now: Int64, loop: any EventLoop, pool: UpstreamPool) {
        for key in keys {
            let budget = book.budgets[key.budget]
            guard !budget.alertAt.isEmpty else { continue }
            let spent = book.spent(key, now: now)
            let (start, end) = budget.period.bounds(containing: now, in: budget.timeZone)
            // Calendar periods fire once per period; rolling windows once per window length.
            var firstSecond = start
            if case .rolling(let seconds) = budget.period { firstSecond = now - now % seconds }
            let periodStart = firstSecond
            for threshold in budget.alertAt where spent * 100 >= budget.limit.micros * Int64(threshold) {
                let id = "\(budget.name)|\(key.scope)|\(periodStart)|\(threshold)"
                guard fired.withLockedValue({ $0.insert(id).inserted }) else { continue }
                let admitted = pending.withLockedValue { n -> Bool in
                    guard n < Self.maxPending else { return false }
                    n += 1
                    return true
                }
                guard admitted else {
                    fired.withLockedValue { _ = $0.remove(id) }  // not recorded: a later check tries again
                    dropped.withLockedValue { $0 += 1 }
                    continue
                }
                let boundPool = NIOLoopBound(pool, eventLoop: loop)
                store.async { [self] in
                    defer { pending.withLockedValue { $0 -= 1 } }
                    guard (try? ledger.recordAlert(budget: budget.name, scope: key.scope, periodStart: periodStart,
                                                   threshold: threshold, at: now)) == true else { return }
                    let body = JSONValue.object([
                        JSONMember("type", .string("budget.threshold")),
                        JSONMember("budget", .string(budget.name)),
                        JSONMember("scope", .string(key.scope)),
                        JSONMember("threshold_percent", .number(String(threshold))),
                        JSONMember("spent", .string(Money(micros: spent, currency: budget.limit.currency).description)),
                        JSONMember("limit", .string(budget.limit.description)),
                        JSONMember("period", .string(budget.period.description)),
                        JSONMember("period_start", .string(SpendControl.iso8601(start))),
                        JSONMember("period_end", .string(SpendControl.iso8601(end))),
                        JSONMember("fired_at", .string(SpendControl.iso8601(now))),
                    ]).serialized
                    logger.warning("budget alert", metadata: ["budget": "\(budget.name)", "scope": "\(key.scope)",
                                                              "threshold_percent": "\(threshold)", "spent_micros": "\(spent)"])
                    loop.execute { self.send(body, now: now, attempt: 0, pool: boundPool.value) }
                }
            }
        }
    }

    /// POSTs `body` to the webhook, signed, from `pool`'s loop; retried with backoff.
    func send(_ body: String, now: Int64, attempt: Int, pool: UpstreamPool) {
        guard let endpoint, let url else { return }
        var headers: [(String, String)] = []
        if let signingKey {
            let mac = HMAC<SHA256>.authenticationCode(for: Data("\(now).\(body)".utf8), using: signingKey)
            headers.append(("X-Tollgate-Signature", "t=\(now),v1=\(Hex.encode(mac))"))
        }
        let call = UpstreamCall(endpoint: endpoint,
                                request: OutgoingRequest.encode(method: "POST", url: url, contentType: "application/json",
                                                                body: Array(body.utf8), headers: headers),
                                isHEAD: false, retryable: false, timeout: .seconds(5), connectTimeout: .seconds(2),
                                maxResponseBytes: 64 * 1024)
        pool.execute(call) { [self] result in
            if case .success(let response) = result, (200...299).contains(response.status) { return }
            guard attempt < Self.backoff.count else {
                logger.error("alert webhook failed", metadata: ["attempts": "\(attempt + 1)"])
                return
            }
            pool.eventLoop.assumeIsolated().scheduleTask(in: Self.backoff[attempt]) {
                self.send(body, now: now, attempt: attempt + 1, pool: pool)
            }
        }
    }
}
