import Testing
@testable import TollgateCore

@Suite struct RateLimiterTests {
    let second: Int64 = 1_000_000_000
    let k = BucketKey(high: 1, low: 2)

    @Test func burstThenSteadyRate() {
        let limiter = RateLimiter(rate: Rate("10/s")!, burst: 5, maxKeys: 100)
        let t0: Int64 = 1_000 * second
        let results = (0..<6).map { _ in limiter.acquire(k, now: t0).allowed }
        #expect(results == [true, true, true, true, true, false])
        #expect(limiter.acquire(k, now: t0).retryAfterNanos == second / 10)
        // One interval later exactly one more is allowed.
        #expect(limiter.acquire(k, now: t0 + second / 10).allowed)
        #expect(!limiter.acquire(k, now: t0 + second / 10).allowed)
        // After a full second the burst is back.
        let later = (0..<6).map { _ in limiter.acquire(k, now: t0 + 2 * second).allowed }
        #expect(later == [true, true, true, true, true, false])
    }

    @Test func remainingAndReset() {
        let limiter = RateLimiter(rate: Rate("60/min")!, burst: 3, maxKeys: 100)
        let t0: Int64 = 50 * second
        let first = limiter.acquire(k, now: t0)
        #expect(first.remaining == 2 && first.resetNanos == second)
        let second_ = limiter.acquire(k, now: t0)
        #expect(second_.remaining == 1 && second_.resetNanos == 2 * second)
    }

    @Test func weightsCountAsSeveral() {
        let limiter = RateLimiter(rate: Rate("10/s")!, burst: 10, maxKeys: 100)
        #expect(limiter.acquire(k, weight: 4, now: 0).remaining == 6)
        #expect(limiter.acquire(k, weight: 4, now: 0).remaining == 2)
        #expect(!limiter.acquire(k, weight: 4, now: 0).allowed)
        #expect(limiter.acquire(k, weight: 2, now: 0).allowed)
    }

    @Test func clockGoingBackwardsGrantsNothingExtra() {
        let limiter = RateLimiter(rate: Rate("1/s")!, burst: 1, maxKeys: 100)
        #expect(limiter.acquire(k, now: 100 * second).allowed)
        #expect(!limiter.acquire(k, now: 90 * second).allowed)
        #expect(!limiter.acquire(k, now: 100 * second).allowed)
        #expect(limiter.acquire(k, now: 101 * second).allowed)
    }

    @Test func throttleAdmitsLateWithinMaxDelay() {
        let limiter = RateLimiter(rate: Rate("2/s")!, burst: 1, maxKeys: 100)
        #expect(limiter.acquire(k, now: 0, maxDelayNanos: second).delayNanos == 0)
        #expect(limiter.acquire(k, now: 0, maxDelayNanos: second).delayNanos == second / 2)
        #expect(limiter.acquire(k, now: 0, maxDelayNanos: second).delayNanos == second)
        #expect(!limiter.acquire(k, now: 0, maxDelayNanos: second).allowed)
    }

    @Test func dryRunAndRefund() {
        let limiter = RateLimiter(rate: Rate("1/min")!, burst: 1, maxKeys: 100)
        #expect(limiter.acquire(k, now: 0, commit: false).allowed)
        #expect(limiter.acquire(k, now: 0).allowed)
        #expect(!limiter.acquire(k, now: 0).allowed)
        limiter.refund(k)
        #expect(limiter.acquire(k, now: 0).allowed)
    }

    @Test func evictionOnlyDropsDecayedKeys() {
        let limiter = RateLimiter(rate: Rate("1/s")!, burst: 1, maxKeys: 4, stripes: 1)
        for i in 0..<4 { #expect(limiter.acquire(BucketKey(high: 0, low: UInt64(i)), now: 0).allowed) }
        #expect(limiter.count == 4)
        // Table full of live keys: a new key shares the overflow bucket and is counted.
        #expect(limiter.acquire(BucketKey(high: 0, low: 99), now: 0).allowed)
        #expect(!limiter.acquire(BucketKey(high: 0, low: 100), now: 0).allowed)
        #expect(limiter.overflowed == 2)
        // The live keys kept their (empty) buckets: no free reset.
        #expect(!limiter.acquire(BucketKey(high: 0, low: 0), now: 0).allowed)
        // Once their state has decayed they can be dropped, and new keys get their own bucket.
        #expect(limiter.acquire(BucketKey(high: 0, low: 200), now: 2 * second).allowed)
        #expect(limiter.evicted == 4)
        #expect(limiter.count == 1)
    }

    @Test func rateParsing() {
        #expect(Rate("10/s")?.periodNanos == second)
        #expect(Rate("100/min")?.periodNanos == 60 * second)
        #expect(Rate("1000/day")?.windowSeconds == 86400)
        #expect(Rate("5/30s")?.windowSeconds == 30)
        #expect(Rate("0/s") == nil)
        #expect(Rate("ten/s") == nil)
        #expect(Rate("5/fortnight") == nil)
    }

    @Test func policyRefundsEarlierLimitsWhenALaterOneRefuses() throws {
        let yaml = """
        routes:
          - name: r
            match: { path: /r }
            upstream: { url: "http://h/" }
            limits:
              - { per: ip, rate: 10/s }
              - { per: global, rate: 1/min }
        """
        let config = try ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp").config
        let registry = LimiterRegistry(maxKeys: 100)
        let route = try Route(config: config.routes[0], secrets: [:], limiters: registry)
        func call() -> Route.ChainOutcome {
            var view = RequestView(method: "GET", path: "/r", query: "", headers: [], clientAddress: "198.51.100.1", now: 5 * second)
            return route.evaluate(&view)
        }
        guard case .pass = call() else { Issue.record("first should pass"); return }
        guard case .reject(let policy, let problem) = call() else { Issue.record("second should be refused"); return }
        #expect(policy == .rateLimit && problem.status == 429)
        #expect(problem.headers.contains { $0.0 == "Retry-After" && $0.1 == "60" })
        #expect(problem.headers.contains { $0.0 == "RateLimit-Policy" && $0.1 == "\"ip\";q=10;w=1, \"global\";q=1;w=60" })
        // The refused request did not consume the per-ip allowance: 9 left, not 8.
        let ip = registry.all.first { $0.name == "ip" }!.limiter
        #expect(ip.acquire(BucketKey(ClientKey("198.51.100.1")!), now: 5 * second).remaining == 8)
    }

    /// Only a route with a `skip_successful` limit asks to hear how its requests ended; its failures
    /// are counted then, its successes not.
    @Test func onlySkipSuccessfulLimitsObserveCompletion() throws {
        func route(_ limit: String) throws -> (Route, LimiterRegistry) {
            let yaml = "routes:\n  - name: r\n    match: { path: /r }\n    upstream: { url: \"http://h/\" }\n    limits: [\(limit)]\n"
            let registry = LimiterRegistry(maxKeys: 100)
            return (try Route(config: ConfigLoader.load(yaml: yaml, baseDirectory: "/tmp").config.routes[0], secrets: [:], limiters: registry), registry)
        }
        #expect(try !route("{ per: ip, rate: 5/min }").0.observesCompletion)
        let (skipping, registry) = try route("{ per: ip, rate: 5/min, skip_successful: true }")
        #expect(skipping.observesCompletion)
        var view = RequestView(method: "GET", path: "/r", query: "", headers: [], clientAddress: "198.51.100.1", now: 5 * second)
        guard case .pass = skipping.evaluate(&view) else { Issue.record("should pass"); return }
        skipping.completed(view, status: 200)
        skipping.completed(view, status: 502)
        let limiter = registry.all.first!.limiter
        #expect(limiter.peek(BucketKey(ClientKey("198.51.100.1")!), now: 5 * second).remaining == 4)
    }

    @Test func headerAndCookieKeys() {
        func view(_ headers: [(String, String)], from address: String = "1.1.1.1") -> RequestView {
            RequestView(method: "GET", path: "/", query: "", headers: headers.map { (name: $0.0, value: $0.1) }, clientAddress: address)
        }
        let a = RateLimitPolicy.key(.header("x-api-key"), view([("X-Api-Key", "a")]))
        // The same value from another client, with the header spelled otherwise, is the same bucket...
        #expect(a == RateLimitPolicy.key(.header("x-api-key"), view([("x-api-key", "a")], from: "2.2.2.2")))
        // ...another value is another bucket, and no header at all is the shared one.
        #expect(a != RateLimitPolicy.key(.header("x-api-key"), view([("X-Api-Key", "b")])))
        #expect(RateLimitPolicy.key(.header("x-api-key"), view([])) == .shared)
        #expect(a != .shared)
        let cookies = view([("Cookie", "sid=1; other=2")])
        #expect(RateLimitPolicy.key(.cookie("sid"), cookies) != RateLimitPolicy.key(.cookie("other"), cookies))
        #expect(RateLimitPolicy.key(.cookie("sid"), cookies) == RateLimitPolicy.key(.cookie("sid"), view([("Cookie", "x=9; sid=1")])))
    }

    @Test func peekReportsTheBucketWithoutTakingFromIt() {
        let limiter = RateLimiter(rate: Rate("10/s")!, burst: 10, maxKeys: 100)
        let key = BucketKey(ClientKey("198.51.100.9")!)
        #expect(limiter.peek(key, now: 0) == (remaining: 10, resetNanos: 0))
        #expect(limiter.count == 0)  // peeking adds no key
        _ = limiter.acquire(key, weight: 3, now: 0)
        let state = limiter.peek(key, now: 0)
        #expect(state.remaining == 7 && state.resetNanos == 300_000_000)
        #expect(limiter.peek(key, now: 0) == state)  // and takes nothing
        #expect(limiter.acquire(key, now: 0).remaining == 6)
    }

    @Test func sharedLimitsMustAgree() {
        let yaml = """
        routes:
          - name: a
            match: { path: /a }
            upstream: { url: "http://h/" }
            limits: [{ per: global, rate: 10/s }]
          - name: b
            match: { path: /b }
            upstream: { url: "http://h/" }
            limits: [{ per: global, rate: 20/s }]
        """
        #expect(loadErrors(yaml).contains { $0.contains("limit global is shared by name but defined differently") })
        #expect(loadErrors(yaml.replacingOccurrences(of: "rate: 10/s }]", with: "rate: 10/x }]")).contains { $0.contains("must be COUNT/PERIOD") })
    }

    /// A cluster's limiter hands out what it took (refunds subtracted) and takes the others' usage
    /// as debt: two limiters that exchange usage admit together what one would.
    @Test func gatewaysExchangingUsageShareOneAllowance() {
        let a = RateLimiter(rate: Rate("10/s")!, burst: 5, maxKeys: 100, recordsUsage: true)
        let b = RateLimiter(rate: Rate("10/s")!, burst: 5, maxKeys: 100, recordsUsage: true)
        let key = RateLimitPolicy.hashed("key-1")
        #expect(key == RateLimitPolicy.hashed("key-1") && key != RateLimitPolicy.hashed("key-2"))
        let one = RateLimiter(rate: Rate("10/s")!, burst: 5, maxKeys: 100)
        var admitted = 0, alone = 0
        for step in 0..<200 {  // 2 s at one request per 10 ms to each, exchanging every 100 ms
            let now = Int64(step) * 10_000_000
            for limiter in [a, b] where limiter.acquire(key, now: now).allowed { admitted += 1 }
            for _ in 0..<2 where one.acquire(key, now: now).allowed { alone += 1 }
            if step % 10 == 9 {
                let (fromA, fromB) = (a.takeUnsynced(), b.takeUnsynced())
                for u in fromA { b.charge(u.key, units: u.units, now: now) }
                for u in fromB { a.charge(u.key, units: u.units, now: now) }
            }
        }
        // Two exchanging limiters admit what one would (each bursts once first), give or take a
        // request of lag; without the exchange they would admit twice as much.
        #expect(admitted >= alone - 2 && admitted <= alone + 5 + 2, "\(admitted) against \(alone) for one limiter")
        #expect(alone >= 20)
        _ = a.acquire(key, now: 10_000_000_000)
        a.refund(key)
        #expect(a.takeUnsynced().isEmpty)
        let plain = RateLimiter(rate: Rate("10/s")!, burst: 5, maxKeys: 100)
        _ = plain.acquire(key, now: 0)
        #expect(plain.takeUnsynced().isEmpty)
    }

    /// Decimal digits written by any sink, without a string per number.
    @Test func sinksWriteDecimals() {
        for n: Int64 in [0, 7, 10, 99, 100, 1_234_567, -1, -40, .max, .min] {
            var s = ""
            s.appendDecimal(n)
            var bytes: [UInt8] = []
            bytes.appendDecimal(n)
            #expect(s == String(n) && String(decoding: bytes, as: UTF8.self) == String(n))
        }
    }

    /// `RateLimit` as one passing request's limits give it: rendered in order, seconds rounded up,
    /// a sixth limit past the four kept inline included.
    @Test func rateLimitStateRendersEveryLimitInOrder() {
        var state = RateLimitState(policy: "p")
        for i in 1...6 { state.append("l\(i)", remaining: 10 - i, resetNanos: Int64(i) * 1_000_000_000 - 1) }
        #expect(state.value == (1...6).map { "\"l\($0)\";r=\(10 - $0);t=\($0)" }.joined(separator: ", "))
        var bytes: [UInt8] = []
        state.render(into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == state.value && state.entries.count == 6)
    }
}

