import Logging
import NIOCore
import Synchronization
import TollgateCore

/// Keeps the JWKS part of a ``JWTKeyRing`` current: fetches `identity.jwt.jwks_url` on one event
/// loop's pool (never on a request's path), every `jwks_refresh`, and early when a token names an
/// unknown `kid` — at most once per `jwks_min_interval`, however many such tokens arrive. A failed
/// fetch or an unusable document keeps the last good set.
final class JWKSFetcher: @unchecked Sendable {
    let url: UpstreamURL
    let endpoint: UpstreamEndpoint
    let ring: JWTKeyRing
    let config: JWTConfig
    let logger: Logger
    /// Uptime (ns) before which no early fetch starts.
    private let earliestEarlyFetch = Atomic<Int64>(0)
    /// Fetches that ended, for tests and metrics: (succeeded, failed).
    let fetched = Atomic<Int>(0)
    let failed = Atomic<Int>(0)

    init(config: JWTConfig, url: UpstreamURL, ring: JWTKeyRing, logger: Logger) throws {
        self.config = config
        self.url = url
        self.endpoint = try UpstreamEndpoint(url: url, caFile: nil)
        self.ring = ring
        self.logger = logger
    }

    /// Starts the schedule on `loop`; the future completes after the first fetch, whatever its result.
    func start(on loop: LoopContext) -> EventLoopFuture<Void> {
        let promise = loop.eventLoop.makePromise(of: Void.self)
        ring.onUnknownKeyID { [self] kid in
            let now = Int64(NIODeadline.now().uptimeNanoseconds)
            let earliest = earliestEarlyFetch.load(ordering: .relaxed)
            guard now >= earliest,
                  earliestEarlyFetch.compareExchange(expected: earliest, desired: now + config.jwksMinInterval.nanoseconds,
                                                     ordering: .relaxed).exchanged else { return }
            loop.eventLoop.execute { self.fetch(on: loop, reason: "unknown kid", done: nil) }
        }
        loop.eventLoop.execute { [self] in
            fetch(on: loop, reason: "start", done: promise)
            loop.eventLoop.scheduleRepeatedTask(initialDelay: TimeAmount(config.jwksRefresh), delay: TimeAmount(config.jwksRefresh)) { _ in
                self.fetch(on: loop, reason: "schedule", done: nil)
            }
        }
        return promise.futureResult
    }

    private func fetch(on loop: LoopContext, reason: String, done: EventLoopPromise<Void>?) {
        earliestEarlyFetch.store(Int64(NIODeadline.now().uptimeNanoseconds) + config.jwksMinInterval.nanoseconds, ordering: .relaxed)
        let call = UpstreamCall(endpoint: endpoint,
                                request: OutgoingRequest.encode(method: "GET", url: url, accept: "application/json", contentType: nil, body: []),
                                isHEAD: false, retryable: true, timeout: .seconds(5), connectTimeout: .seconds(2),
                                maxResponseBytes: 512 * 1024)
        loop.pool.execute(call) { [self] result in
            guard case .success(let response) = result, response.status == 200 else {
                failed.add(1, ordering: .relaxed)
                logger.warning("JWKS fetch failed; keeping the last good keys", metadata: [
                    "reason": "\(reason)", "result": "\(result.map(\.status))", "keys": "\(ring.fetchedCount)"])
                done?.succeed()
                return
            }
            let bytes = Array(response.body.readableBytesView)
            Task {
                do {
                    let (keys, skipped) = try await JWTKeyLoader.fromJWKS(bytes)
                    if keys.isEmpty { throw JWTKeyLoader.Failure(description: "no usable key") }
                    ring.replaceFetched(keys)
                    fetched.add(1, ordering: .relaxed)
                    logger.info("JWKS loaded", metadata: ["reason": "\(reason)", "keys": "\(keys.count)",
                                                         "skipped": "\(skipped.joined(separator: "; "))"])
                } catch {
                    failed.add(1, ordering: .relaxed)
                    logger.warning("JWKS unusable; keeping the last good keys", metadata: ["error": "\(error)"])
                }
                done?.succeed()
            }
        }
    }
}
