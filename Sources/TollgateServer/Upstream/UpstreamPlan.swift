import CoreMetrics
import NIOCore
import TollgateCore

/// How one upstream route calls its upstream, worked out once per config instead of per request:
/// its endpoint, the call's bounds, whether it may be retried, and the latency histogram it
/// records into. The gateway state holds one per route, at the route's ``Route/position``
/// (``GatewayState/upstreamPlan(for:)``; nil for routes without an upstream).
///
/// Per request this was a dictionary lookup of the endpoint by route name (hashing the name), a
/// copy of the route's upstream config, two method comparisons and, per answer, a locked
/// dictionary lookup of the histogram.
struct UpstreamPlan {
    /// The call every request of the route makes, its request bytes left empty: endpoint, bounds,
    /// and whether it may be retried (GET and HEAD, when a pooled connection turns out stale).
    private let terms: UpstreamCall
    /// `tollgate_upstream_duration_seconds{route}`.
    let latency: CoreMetrics.Timer

    /// The call for one request, `request` being its rendered head and body.
    func call(_ request: ByteBuffer) -> UpstreamCall {
        var call = terms
        call.request = request
        return call
    }

    /// One plan per route of `routes`, in order; nil where a route has no upstream.
    static func forRoutes(_ routes: [RouteConfig], telemetry: Telemetry) throws -> [UpstreamPlan?] {
        let endpoints = try UpstreamEndpoint.forRoutes(routes)
        return routes.map { route in
            guard let upstream = route.upstream, let endpoint = endpoints[route.name] else { return nil }
            let method = upstream.method
            let terms = UpstreamCall(endpoint: endpoint, request: ByteBuffer(), isHEAD: method == "HEAD",
                                     retryable: method == "GET" || method == "HEAD", timeout: TimeAmount(upstream.timeout),
                                     connectTimeout: TimeAmount(upstream.connectTimeout), maxResponseBytes: upstream.maxResponseBytes)
            return UpstreamPlan(terms: terms, latency: telemetry.upstreamLatency(route: route.name))
        }
    }
}
