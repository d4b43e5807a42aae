#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import TollgateCore
import TollgateStore

/// The upstream path of a request, after routing:
/// policy chain (with throttle delays) → cache lookup → budget reservation (made durable) →
/// upstream call → settlement → response.
extension ClientConnectionHandler {
    /// Runs the route's policies from `index`; waits when one throttles, answers when one refuses,
    /// else moves on to the cache.
    func runChain(route: Route, from index: Int) {
        guard let req = request, req.view != nil, let context else { return }
        let outcome = route.evaluate(&req.view!, from: index)
        switch outcome {
        case .reject(let policy, let problem):
            respondWithProblem(problem, requestID: req.requestID, decidedBy: policy)
        case .delay(let wait, let resumeAt):
            req.delayTimer = context.eventLoop.scheduleTask(in: TimeAmount(wait)) { [weak self, weak req] in
                guard let self, let req, self.request === req else { return }
                req.delayTimer = nil
                self.runChain(route: route, from: resumeAt)
            }
        case .external(let check, let policy, let resumeAt):
            runExternalCheck(check, policy: policy, route: route, req: req, resumeAt: resumeAt)
        case .pass:
            lookUpCache(route: route, req: req)
        }
    }

    /// Makes a policy's HTTP call on this loop's pool (no blocking), lets the policy decide, and
    /// goes on with the chain or answers.
    private func runExternalCheck(_ check: ExternalCheck, policy: String, route: Route, req: InboundRequest, resumeAt: Int) {
        guard let endpoint = loop.state.checkEndpoints[check.url.description] else {
            respondWithProblem(.internalError, requestID: req.requestID, decidedBy: "internal", note: "no endpoint for external check")
            return
        }
        let url = check.url
        var buffer = ByteBuffer(string: "POST \(url.pathTemplate)\(url.staticQuery.isEmpty ? "" : "?" + url.staticQuery) HTTP/1.1\r\n"
            + "Host: \(url.hostHeader)\r\nUser-Agent: tollgate\r\nAccept: application/json\r\n"
            + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(check.formBody.utf8.count)\r\n\r\n")
        buffer.writeString(check.formBody)
        let call = UpstreamCall(endpoint: endpoint, request: buffer, isHEAD: false, retryable: false, timeout: TimeAmount(check.timeout),
                                connectTimeout: TimeAmount(min(check.timeout, .seconds(2))), maxResponseBytes: 64 * 1024)
        loop.pool.execute(call) { [weak self, weak req] result in
            guard let self, let req, self.request === req else { return }
            var decision: Decision
            switch result {
            case .success(let response): decision = check.decide(response.status, Array(response.body.readableBytesView))
            case .failure: decision = check.decide(nil, nil)
            }
            if route.config.shadow.contains(where: { $0.rawValue == policy }), case .reject(let problem) = decision {
                req.view?.shadowed.append("\(policy):\(problem.code)")
                decision = .pass
            }
            switch decision {
            case .reject(let problem):
                self.respondWithProblem(problem, requestID: req.requestID, decidedBy: policy)
            default:
                self.runChain(route: route, from: resumeAt)
            }
        }
    }

    /// Serves a fresh cached answer, joins an identical request already on its way upstream, or
    /// leads the fetch itself.
    private func lookUpCache(route: Route, req: InboundRequest) {
        guard route.config.cache != nil, let context, let params = req.view?.params else {
            reserveSpend(route: route, req: req)
            return
        }
        let key = ResponseCache.key(route: route.name, params: params)
        let waiter: ResponseCache.Waiter = (context.eventLoop, { [weak self, weak req] entry in
            guard let self, let req, self.request === req else { return }
            if let entry {
                self.respondFromCache(entry, route: route, req: req, cacheStatus: "tollgate; fwd=miss; collapsed")
            } else {
                self.reserveSpend(route: route, req: req)
            }
        })
        switch loop.state.cache.lookup(key, now: .now(), waiter: waiter) {
        case .hit(let entry):
            let ttl = max(0, (entry.expires - .now()).nanoseconds / 1_000_000_000)
            respondFromCache(entry, route: route, req: req, cacheStatus: "tollgate; hit; ttl=\(ttl)")
        case .joined:
            break
        case .lead:
            req.cacheKey = key
            reserveSpend(route: route, req: req)
        }
    }

    private func respondFromCache(_ entry: ResponseCache.Entry, route: Route, req: InboundRequest, cacheStatus: String) {
        guard let context else { return }
        loop.state.ledger.count(.cacheHit, route: route.name, day: loop.today(), savedMicros: entry.costMicros)
        let head = ResponseEncoder.Head(status: entry.status, contentType: entry.contentType,
                                        cacheControl: route.config.response.cacheControl, requestID: req.requestID,
                                        keepAlive: req.keepAlive, secure: req.secure,
                                        extraHeaders: [("Cache-Status", cacheStatus)] + (req.view?.responseHeaders ?? []))
        var buffer = context.channel.allocator.buffer(capacity: 512 + entry.body.readableBytes)
        ResponseEncoder.write(head, body: entry.body, into: &buffer)
        finishResponse(buffer, status: entry.status, decision: "pass", decidedBy: "cache")
    }

    /// Reserves the call's cost in every applicable budget and waits until the ledger holds the
    /// reservation; only then is the upstream called.
    private func reserveSpend(route: Route, req: InboundRequest) {
        guard let spend = route.spend, let context else {
            callUpstream(route: route, req: req)
            return
        }
        let now = Int64(NIODeadline.wallClockSeconds)
        var outcome = spend.reserve(client: req.client ?? "unknown", session: sessionTag(req), now: now,
                                    shadow: route.config.shadowStages.contains(.budget))
        if case .reservedOverCap(let reservation, let problem) = outcome {
            req.view?.shadowed.append("budget:\(problem.code)")
            outcome = .reserved(reservation)
        }
        switch outcome {
        case .refused(let problem):
            completeCache(req, with: nil)
            respondWithProblem(problem, requestID: req.requestID, decidedBy: "budget")
        case .reservedOverCap:
            break  // turned into .reserved above
        case .reserved(let reservation):
            req.reservation = reservation
            let eventLoop = context.eventLoop
            let state = loop.state
            let entry = LedgerEntry(requestID: req.requestID, route: route.name, client: reservation.client,
                                    session: reservation.session, reservedMicros: reservation.amount, createdAt: now)
            loop.state.ledger.reserve(entry) { [weak self] result in
                eventLoop.execute {
                    switch result {
                    case .success(let id):
                        reservation.ledgerID.store(id, ordering: .relaxed)
                        guard let self else {
                            Self.abandon(req, state: state)  // the connection is gone: nothing will be sent
                            return
                        }
                        self.loop.state.alerts.check(reservation.keys, now: now, pool: self.loop.pool)
                        self.callUpstream(route: route, req: req)
                    case .failure(let error):
                        state.logger.error("ledger write failed", metadata: ["error": "\(error)"])
                        Self.abandon(req, state: state)
                        if let self, self.request === req {
                            self.respondWithProblem(.ledgerUnavailable, requestID: req.requestID, decidedBy: "ledger",
                                                    note: "ledger write failed")
                        }
                    }
                }
            }
        }
    }

    private func callUpstream(route: Route, req: InboundRequest) {
        guard case .upstream(let upstream) = route.config.target, let template = route.template,
              let endpoint = loop.state.endpoints[route.name], let view = req.view else { return }
        guard context != nil, request === req else {
            abandon(req)  // the client left before anything was sent: nothing to pay for
            return
        }
        let (head, body) = template.render(view, requestID: req.requestID)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        let call = UpstreamCall(endpoint: endpoint, request: buffer, isHEAD: template.method == "HEAD",
                                retryable: template.method == "GET" || template.method == "HEAD",
                                timeout: TimeAmount(upstream.timeout), connectTimeout: TimeAmount(upstream.connectTimeout),
                                maxResponseBytes: upstream.maxResponseBytes)
        let sent = NIODeadline.now()
        loop.pool.execute(call) { [self] result in
            let upstreamMicros = (NIODeadline.now() - sent).nanoseconds / 1000
            self.upstreamAnswered(result, route: route, req: req, upstreamMicros: upstreamMicros)
        }
    }

    /// Settles the spend and completes the cache whether or not the client is still there, then
    /// answers it if it is.
    private func upstreamAnswered(_ result: Result<UpstreamResponse, UpstreamFailure>, route: Route, req: InboundRequest,
                                  upstreamMicros: Int64) {
        settle(result, route: route, req: req)
        var outcome: UpstreamOutcome?
        if case .success(let response) = result {
            outcome = UpstreamOutcome.classify(response, route: route)
        }
        var stored = false
        let ledCache = req.cacheKey != nil
        if ledCache, let ttl = route.config.cache?.ttl,
           case .relay(let status, let contentType, let body, _)? = outcome, (200...299).contains(status) {
            completeCache(req, with: ResponseCache.Entry(status: status, contentType: contentType, body: body,
                                                         expires: .now() + TimeAmount(ttl), costMicros: req.reservation.map { settledMicros($0) } ?? 0))
            stored = true
        } else {
            completeCache(req, with: nil)
        }
        guard request === req, let context else { return }
        switch (result, outcome) {
        case (.failure(let failure), _):
            let problem: Problem
            switch failure {
            case .timeout: problem = .upstreamTimeout
            case .connect: problem = .upstreamUnavailable
            default: problem = .upstreamFailed
            }
            respondWithProblem(problem, requestID: req.requestID, decidedBy: "upstream", note: failure.logNote,
                               upstreamMicros: upstreamMicros)
        case (.success(let response), .refuse(let problem, let note)?):
            respondWithProblem(problem, requestID: req.requestID, decidedBy: "upstream", note: note,
                               upstreamStatus: response.status, upstreamMicros: upstreamMicros)
        case (.success(let response), .relay(let status, let contentType, let body, let headers)?):
            var extra = headers + (req.view?.responseHeaders ?? [])
            if ledCache { extra.append(("Cache-Status", stored ? "tollgate; fwd=miss; stored" : "tollgate; fwd=miss")) }
            let head = ResponseEncoder.Head(status: status, contentType: contentType, cacheControl: route.config.response.cacheControl,
                                            requestID: req.requestID, keepAlive: req.keepAlive, secure: req.secure,
                                            extraHeaders: extra)
            var buffer = context.channel.allocator.buffer(capacity: 512 + body.readableBytes)
            ResponseEncoder.write(head, body: body, into: &buffer)
            finishResponse(buffer, status: status, decision: "pass", decidedBy: nil,
                           upstreamStatus: response.status, upstreamMicros: upstreamMicros)
        case (.success, nil):
            break
        }
    }

    // MARK: Spend and cache bookkeeping

    /// Turns the reservation into the real cost, or gives it back, per the route's rules.
    private func settle(_ result: Result<UpstreamResponse, UpstreamFailure>, route: Route, req: InboundRequest) {
        guard let reservation = req.reservation, let cost = route.spend?.cost else { return }
        let id = reservation.ledgerID.load(ordering: .relaxed)
        let now = Int64(NIODeadline.wallClockSeconds)
        var release = false
        var status: Int?
        var amount = reservation.amount
        switch result {
        case .failure(.connect):
            release = cost.releaseOn.contains(.unreachable)
        case .failure:
            break  // the provider may have billed: keep the worst case
        case .success(let response):
            status = response.status
            release = (response.status >= 500 && cost.releaseOn.contains(.serverError))
                || (response.status == 429 && cost.releaseOn.contains(.rateLimited))
            amount = cost.settle(unitsHeaderValue: cost.unitsHeader.flatMap { response.headers.first($0) }).micros
        }
        if release {
            if reservation.release() { loop.state.ledger.release(id: id, status: status, at: now) }
        } else if reservation.settle(amount) {
            loop.state.ledger.settle(id: id, costMicros: amount, status: status, at: now)
        }
    }

    private func settledMicros(_ reservation: SpendReservation) -> Int64 {
        if case .settled(let cost) = reservation.current { return cost }
        return 0
    }

    /// Ends this request's lead on a cache key (if it had one) and wakes those waiting on it.
    func completeCache(_ req: InboundRequest, with entry: ResponseCache.Entry?) {
        Self.completeCache(req, with: entry, state: loop.state)
    }

    static func completeCache(_ req: InboundRequest, with entry: ResponseCache.Entry?, state: GatewayState) {
        guard let key = req.cacheKey else { return }
        req.cacheKey = nil
        state.cache.complete(key, with: entry)
    }

    /// The request was given up before its upstream call: nothing was spent.
    func abandon(_ req: InboundRequest) {
        Self.abandon(req, state: loop.state)
    }

    /// Releases the request's reservation (recording that in the ledger once it has a row) and ends
    /// its cache lead. Needs no connection: it also runs after the client has gone.
    static func abandon(_ req: InboundRequest, state: GatewayState) {
        if let reservation = req.reservation, reservation.release() {
            let id = reservation.ledgerID.load(ordering: .relaxed)
            if id > 0 { state.ledger.release(id: id, status: nil, at: Int64(NIODeadline.wallClockSeconds)) }
        }
        completeCache(req, with: nil, state: state)
    }

    /// A hash of the session cookie (never the cookie itself) when the gateway issued it, or empty.
    private func sessionTag(_ req: InboundRequest) -> String {
        guard let cookie = req.view?.session else { return "" }
        return SessionTag.of(cookie)
    }
}

extension NIODeadline {
    /// Wall-clock Unix seconds (budgets count calendar periods).
    static var wallClockSeconds: Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts.tv_sec
    }

    /// Wall-clock Unix milliseconds (token ages).
    static var wallClockMillis: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

extension Problem {
    static let ledgerUnavailable = Problem(status: 503, code: "ledger-unavailable", title: "Service Unavailable",
                                           detail: "Spending cannot be recorded right now; try again shortly.",
                                           headers: [("Retry-After", "5")])
}
