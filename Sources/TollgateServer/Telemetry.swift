import CoreMetrics
import Metrics
import NIOConcurrencyHelpers
import Prometheus
import TollgateCore

/// The gateway's metrics through swift-metrics, with swift-prometheus as the backend on a registry
/// of its own (no global bootstrap, so a process may run several gateways; the admin API's
/// `/metrics` emits it).
///
/// The hot path pays nothing for it: counts per request stay plain integers owned by each event
/// loop, and at each scrape their growth since the last scrape is added to the swift-metrics
/// counters (``count(_:_:total:)``); gauges are recorded at scrape time. Only the upstream latency
/// histogram is recorded as it happens — once per upstream call, which already costs a round trip.
final class Telemetry: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    private let counters = NIOLockedValueBox<[String: (counter: CoreMetrics.Counter, last: Int64)]>([:])
    private let gauges = NIOLockedValueBox<[String: CoreMetrics.Gauge]>([:])
    private let timers = NIOLockedValueBox<[String: CoreMetrics.Timer]>([:])

    /// Upstream latency buckets, in seconds: 5 ms to 30 s.
    static let upstreamBuckets: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                              .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                              .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30)]

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.upstreamBuckets
        self.factory = factory
    }

    /// Raises counter `name{labels}` to `total` (a count kept elsewhere since start). A total that
    /// went down (its source was rebuilt by a reload) counts as growth from zero.
    func count(_ name: String, _ labels: [(String, String)] = [], total: Int64) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let (counter, growth) = counters.withLockedValue { all -> (CoreMetrics.Counter, Int64) in
            let entry = all[key] ?? (CoreMetrics.Counter(label: name, dimensions: labels, factory: factory), 0)
            let growth = total >= entry.last ? total - entry.last : total
            all[key] = (entry.counter, total)
            return (entry.counter, growth)
        }
        if growth > 0 { counter.increment(by: growth) }
    }

    /// Sets gauge `name{labels}`.
    func gauge(_ name: String, _ labels: [(String, String)] = [], _ value: Int64) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let gauge = gauges.withLockedValue { all in
            if let g = all[key] { return g }
            let g = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
            all[key] = g
            return g
        }
        gauge.record(value)
    }

    /// The upstream latency histogram of `route` (one per route name, kept across reloads), which
    /// the route's ``UpstreamPlan`` records each call into.
    func upstreamLatency(route: String) -> CoreMetrics.Timer {
        timers.withLockedValue { all in
            if let t = all[route] { return t }
            let t = CoreMetrics.Timer(label: "tollgate_upstream_duration_seconds", dimensions: [("route", route)], preferredDisplayUnit: .seconds,
                          factory: factory)
            all[route] = t
            return t
        }
    }

    /// The Prometheus text exposition of everything recorded.
    func text() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
