import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import TollgateCore
import TollgateStore

/// The Prometheus text of `/metrics` (served by the admin API on the `admin:` listener). Numbers
/// are gathered from each event loop on request, so counting them costs the data plane nothing but
/// a local increment; they reach the text through swift-metrics and swift-prometheus (``Telemetry``).
final class GatewayMetrics: Sendable {
    private let current: @Sendable () -> GatewayState
    private let contexts: [LoopContext]
    let reloads: ReloadCounters
    let telemetry: Telemetry
    /// Set once the gateway shares rate limits with others.
    let rateSync = NIOLockedValueBox<RateSync?>(nil)

    init(current: @escaping @Sendable () -> GatewayState, contexts: [LoopContext], reloads: ReloadCounters, telemetry: Telemetry) {
        self.current = current
        self.contexts = contexts
        self.reloads = reloads
        self.telemetry = telemetry
    }

    /// The metrics text: counts gathered from every loop and the shared tables, handed to
    /// swift-metrics (``Telemetry``), emitted by swift-prometheus.
    func metrics(on eventLoop: EventLoop) -> EventLoopFuture<String> {
        let perLoop = contexts.map { ctx in
            ctx.eventLoop.submit {
                (ctx.responses, ctx.inFlight, ctx.connections.count, ctx.closedAfterRefusals, ctx.console.totals, ctx.pool.refusedFull, ctx.refusalsDelayed)
            }
        }
        let state = current()
        let reloads = self.reloads
        let t = telemetry
        let rateSync = self.rateSync.withLockedValue { $0 }
        return EventLoopFuture.whenAllSucceed(perLoop, on: eventLoop).map { loops in
            for c in 1...5 {
                t.count("tollgate_responses_total", [("class", "\(c)xx")], total: Int64(loops.reduce(0) { $0 + $1.0[c] }))
            }
            // Every answer by who decided it: passed, cached, or the refusing policy or stage.
            for (i, name) in ConsoleTally.columns.enumerated() where i != ConsoleTally.paidCalls && !name.hasPrefix("status:") {
                let total = Int64(loops.reduce(0) { $0 + $1.4[i] })
                if total > 0 || i < 2 {
                    t.count(name == "signups" ? "tollgate_signups_total" : "tollgate_decisions_total",
                            name == "signups" ? [] : [("decision", name)], total: total)
                }
            }
            t.count("tollgate_upstream_pool_full_total", total: Int64(loops.reduce(0) { $0 + $1.5 }))
            t.count("tollgate_upstream_calls_total", total: Int64(loops.reduce(0) { $0 + $1.4[ConsoleTally.paidCalls] }))
            t.gauge("tollgate_requests_in_flight", [], Int64(loops.reduce(0) { $0 + $1.1 }))
            t.gauge("tollgate_client_connections", [], Int64(loops.reduce(0) { $0 + $1.2 }))
            for entry in state.limiters.all {
                t.gauge("tollgate_ratelimit_tracked_keys", [("limit", entry.name)], Int64(entry.limiter.count))
                t.count("tollgate_ratelimit_evicted_total", [("limit", entry.name)], total: Int64(entry.limiter.evicted))
                t.count("tollgate_ratelimit_overflow_total", [("limit", entry.name)], total: Int64(entry.limiter.overflowed))
            }
            t.count("tollgate_connections_refused_total", [("reason", "global")], total: Int64(state.admission.refused(.global)))
            t.count("tollgate_connections_refused_total", [("reason", "per_client")], total: Int64(state.admission.refused(.perClient)))
            t.count("tollgate_accept_pauses_total", total: Int64(state.admission.acceptPauses.load(ordering: .relaxed)))
            t.count("tollgate_store_commit_failures_total", total: Int64(state.ledger.failedCommits))
            if let shared = state.ledger as? PostgresStore {
                t.count("tollgate_store_notifications_total", total: Int64(shared.notificationsReceived.value))
            }
            if let sync = rateSync {
                t.count("tollgate_ratelimit_sync_failures_total", total: Int64(sync.failures.load(ordering: .relaxed)))
                t.count("tollgate_ratelimit_sync_units_received_total", total: Int64(sync.unitsReceived.load(ordering: .relaxed)))
            }
            t.count("tollgate_connections_closed_after_refusals_total", total: Int64(loops.reduce(0) { $0 + $1.3 }))
            t.count("tollgate_refusals_delayed_total", total: Int64(loops.reduce(0) { $0 + $1.6 }))
            t.count("tollgate_access_log_dropped_total", total: Int64(state.accessLog.dropped))
            t.count("tollgate_alerts_dropped_total", total: Int64(state.alerts.dropped.withLockedValue { $0 }))
            t.count("tollgate_reloads_total", [("result", "ok")], total: Int64(reloads.applied.load(ordering: .relaxed)))
            t.count("tollgate_reloads_total", [("result", "failed")], total: Int64(reloads.refused.load(ordering: .relaxed)))
            let bans = state.access.board.current
            t.gauge("tollgate_bans_active", [("kind", "network")], Int64(bans.networks.count))
            t.gauge("tollgate_bans_active", [("kind", "key")], Int64(bans.keys.count))
            t.gauge("tollgate_bans_active", [("kind", "session")], Int64(bans.sessions.count))
            t.gauge("tollgate_bans_active", [("kind", "domain")], Int64(bans.domains.count))
            if let v = state.verification {
                t.count("tollgate_verification_links_total", [("event", "requested")], total: Int64(v.requested.load(ordering: .relaxed)))
                t.count("tollgate_verification_links_total", [("event", "confirmed")], total: Int64(v.confirmed.load(ordering: .relaxed)))
                t.count("tollgate_verification_domain_blocks_total", total: Int64(v.domainBlocks.load(ordering: .relaxed)))
                let box = v.outbox
                for (result, n) in [("sent", box.sent.load(ordering: .relaxed)), ("failed", box.failed.load(ordering: .relaxed)),
                                    ("dropped", box.dropped.load(ordering: .relaxed)), ("retried", box.retried.load(ordering: .relaxed))] {
                    t.count("tollgate_verification_mails_total", [("result", result)], total: Int64(n))
                }
                t.gauge("tollgate_verified_sessions", [], Int64(v.services.sessions.count))
            }
            t.count("tollgate_auto_bans_total", total: Int64(state.access.autoBans.load(ordering: .relaxed)))
            if let geo = state.geo { t.count("tollgate_geo_reloads_total", total: Int64(geo.reloads.load(ordering: .relaxed))) }
            if let identity = state.identity {
                if let keys = identity.keys { t.gauge("tollgate_api_keys", [], Int64(keys.count)) }
                if let jwks = identity.jwks {
                    t.count("tollgate_jwks_fetches_total", [("result", "ok")], total: Int64(jwks.fetched.load(ordering: .relaxed)))
                    t.count("tollgate_jwks_fetches_total", [("result", "failed")], total: Int64(jwks.failed.load(ordering: .relaxed)))
                    t.gauge("tollgate_jwks_keys", [], Int64(jwks.ring.fetchedCount))
                }
            }
            t.gauge("tollgate_cache_bytes", [], Int64(state.cache.byteCount))
            let now = Int64(NIODeadline.wallClockSeconds)
            // Per-client, per-session, per-key and per-subject totals would be one series per caller: left out.
            for s in state.book.snapshot(now: now) where [.global, .route].contains(state.book.budgets[s.key.budget].scope) {
                t.gauge("tollgate_budget_spent_micros", [("budget", state.book.budgets[s.key.budget].name), ("scope", s.key.scope)], s.spent)
            }
            for budget in state.book.budgets { t.gauge("tollgate_budget_limit_micros", [("budget", budget.name)], budget.limit.micros) }
            return t.text()
        }
    }

    static func label(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: " ")
    }
}
