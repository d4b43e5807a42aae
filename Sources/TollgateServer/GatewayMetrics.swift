import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import TollgateCore

/// The Prometheus text of `/metrics` (served by the admin API on the `admin:` listener). Numbers
/// are gathered from each event loop on request, so counting them costs the data plane nothing but
/// a local increment.
final class GatewayMetrics: Sendable {
    private let current: @Sendable () -> GatewayState
    private let contexts: [LoopContext]
    let reloads: ReloadCounters

    init(current: @escaping @Sendable () -> GatewayState, contexts: [LoopContext], reloads: ReloadCounters) {
        self.current = current
        self.contexts = contexts
        self.reloads = reloads
    }

    /// The metrics text, gathered from every loop.
    func metrics(on eventLoop: EventLoop) -> EventLoopFuture<String> {
        let perLoop = contexts.map { ctx in ctx.eventLoop.submit { (ctx.responses, ctx.inFlight, ctx.connections.count, ctx.closedAfterRefusals) } }
        let state = current()
        let reloads = self.reloads
        return EventLoopFuture.whenAllSucceed(perLoop, on: eventLoop).map { loops in
            var out = ""
            func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int64)]) {
                out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
                for (labels, value) in samples { out += "\(name)\(labels) \(value)\n" }
            }
            metric("tollgate_responses_total", "counter", "Responses by status class.",
                   (1...5).map { c in ("{class=\"\(c)xx\"}", Int64(loops.reduce(0) { $0 + $1.0[c] })) })
            metric("tollgate_requests_in_flight", "gauge", "Requests being answered.", [("", Int64(loops.reduce(0) { $0 + $1.1 }))])
            metric("tollgate_client_connections", "gauge", "Open client connections.", [("", Int64(loops.reduce(0) { $0 + $1.2 }))])
            let limiters = state.limiters.all
            metric("tollgate_ratelimit_tracked_keys", "gauge", "Keys a rate limit tracks now.",
                   limiters.map { ("{limit=\"\(Self.label($0.name))\"}", Int64($0.limiter.count)) })
            metric("tollgate_ratelimit_evicted_total", "counter", "Fully decayed keys dropped to make room.",
                   limiters.map { ("{limit=\"\(Self.label($0.name))\"}", Int64($0.limiter.evicted)) })
            metric("tollgate_ratelimit_overflow_total", "counter",
                   "Requests of new keys counted in the shared overflow bucket because the table was full of live keys.",
                   limiters.map { ("{limit=\"\(Self.label($0.name))\"}", Int64($0.limiter.overflowed)) })
            metric("tollgate_connections_refused_total", "counter", "Connections closed at accept because a cap was reached.",
                   [("{reason=\"global\"}", Int64(state.admission.refused(.global))),
                    ("{reason=\"per_client\"}", Int64(state.admission.refused(.perClient)))])
            metric("tollgate_connections_closed_after_refusals_total", "counter",
                   "Connections closed after their client was refused close_after_refusals times in a row.",
                   [("", Int64(loops.reduce(0) { $0 + $1.3 }))])
            metric("tollgate_access_log_dropped_total", "counter",
                   "Access-log lines dropped because the log writer fell behind (requests never wait for it).",
                   [("", Int64(state.accessLog.dropped))])
            metric("tollgate_alerts_dropped_total", "counter",
                   "Budget alert crossings dropped because the store fell behind (fired on a later reservation).",
                   [("", Int64(state.alerts.dropped.withLockedValue { $0 }))])
            metric("tollgate_reloads_total", "counter", "Config reloads by result (a failed one changes nothing).",
                   [("{result=\"ok\"}", Int64(reloads.applied.load(ordering: .relaxed))),
                    ("{result=\"failed\"}", Int64(reloads.refused.load(ordering: .relaxed)))])
            let bans = state.access.board.current
            metric("tollgate_bans_active", "gauge", "Bans in force on this gateway (addresses and networks, keys, sessions).",
                   [("{kind=\"network\"}", Int64(bans.networks.count)), ("{kind=\"key\"}", Int64(bans.keys.count)),
                    ("{kind=\"session\"}", Int64(bans.sessions.count))])
            metric("tollgate_auto_bans_total", "counter", "Bans made by auto_bans rules since start.",
                   [("", Int64(state.access.autoBans.load(ordering: .relaxed)))])
            if let geo = state.geo {
                metric("tollgate_geo_reloads_total", "counter", "Geo database files picked up while running.",
                       [("", Int64(geo.reloads.load(ordering: .relaxed)))])
            }
            if let identity = state.identity {
                if let keys = identity.keys {
                    metric("tollgate_api_keys", "gauge", "Keys (API and client keys) in the gateway's index.", [("", Int64(keys.count))])
                }
                if let jwks = identity.jwks {
                    metric("tollgate_jwks_fetches_total", "counter", "JWKS fetches by result (a failed one keeps the last good keys).",
                           [("{result=\"ok\"}", Int64(jwks.fetched.load(ordering: .relaxed))),
                            ("{result=\"failed\"}", Int64(jwks.failed.load(ordering: .relaxed)))])
                    metric("tollgate_jwks_keys", "gauge", "Verifying keys from the JWKS now in use.", [("", Int64(jwks.ring.fetchedCount))])
                }
            }
            metric("tollgate_cache_bytes", "gauge", "Bytes held by the response cache.", [("", Int64(state.cache.byteCount))])
            let now = Int64(NIODeadline.wallClockSeconds)
            // Per-client, per-session, per-key and per-subject totals would be one series per caller: left out.
            let spend = state.book.snapshot(now: now).filter { [.global, .route].contains(state.book.budgets[$0.key.budget].scope) }
            metric("tollgate_budget_spent_micros", "gauge", "Spend in the current period, in millionths of the currency (global and per-route budgets).",
                   spend.map { ("{budget=\"\(Self.label(state.book.budgets[$0.key.budget].name))\",scope=\"\(Self.label($0.key.scope))\"}", $0.spent) })
            metric("tollgate_budget_limit_micros", "gauge", "Budget limits.",
                   state.book.budgets.map { ("{budget=\"\(Self.label($0.name))\"}", $0.limit.micros) })
            return out
        }
    }

    static func label(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: " ")
    }
}
