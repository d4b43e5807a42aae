import NIOCore
import TollgateCore
import TollgateStore
import TollgateUpstreamHTTP

/// Receives the one response of an exchange; the client connection that owns it.
protocol ExchangeOwner: AnyObject {
    /// `response` is handed over (`consuming`): the one response of a request travels from the
    /// exchange to the encoder without a copy (it is a large struct; each copy retained its fields).
    func exchange(_ exchange: ProxyExchange, answered response: consuming Response)
}

/// One request on an upstream route, from its policy chain to its one ``Response``.
///
/// Stages, in order, each able to answer: CORS headers → the policy chain (with throttle waits and
/// external checks) → the response cache → budget reservation, made durable in the ledger → the
/// upstream call → settlement → the answer. ``State`` says which stage is running. The money half
/// (reservation, settlement, release, the cache lead) is in `ProxyExchange+Spend.swift`.
///
/// Invariants:
/// - Bound to one event loop; every callback comes back to it.
/// - Answers at most once (``finish(_:)`` moves to `.done`); nothing is answered once the owner is
///   gone, but money and the cache are still settled: a reservation is settled, released, or (the
///   client left mid-call) stays counted at its worst case; a cache lead always ends, so requests
///   waiting on it never hang.
/// - Nothing is reserved before the chain passed, and the upstream is never called before the
///   reservation is committed to the ledger.
final class ProxyExchange {
    enum State {
        /// Running the chain from this policy index.
        case policies(next: Int)
        /// Waiting out a throttle delay before resuming the chain.
        case throttled(resumeAt: Int)
        /// Waiting for a policy's external check (CAPTCHA siteverify).
        case checking(resumeAt: Int)
        /// Waiting for an identical request already on its way upstream.
        case awaitingCache
        /// Cost reserved in the budgets; waiting for the ledger to commit it.
        case reserving
        /// Waiting for the upstream's answer.
        case upstream
        case done
    }

    let request: InboundRequest
    let route: Route
    let loop: LoopContext
    /// The config generation the request started under (a reload does not change it mid-way).
    let gateway: GatewayState
    /// Held strongly until the exchange ends or the owner goes (both clear it), which breaks the
    /// cycle with the connection that holds this exchange.
    var owner: ExchangeOwner?
    var state: State = .policies(next: 0)
    /// What the policies see and add to; what the response is completed from.
    var view: RequestView
    /// Money reserved for the upstream call.
    var reservation: SpendReservation?
    /// With shared totals: what this gateway's own book would have answered (nil: it had room),
    /// for `on_store_error: open` budgets when the store cannot decide.
    var localRefusal: Problem?
    /// Set while this exchange leads the fetch of a cache key.
    var cacheKey: String?
    private var delayTimer: Scheduled<Void>?
    /// When the upstream call went out (its latency is logged and measured).
    private var upstreamSent = NIODeadline.distantPast

    init(request: InboundRequest, route: Route, loop: LoopContext, owner: ExchangeOwner) {
        self.request = request
        self.route = route
        self.loop = loop
        self.gateway = request.state
        self.owner = owner
        let headers = request.head.headers
        view = RequestView(method: request.head.method.rawValue, path: request.path, query: request.query, fields: headers,
                           body: request.body.map { Array($0.readableBytesView) } ?? [],
                           clientAddress: request.client.address, pathParams: request.pathParams,
                           clientKey: request.client.key, now: Int64(Self.arrival(of: request).uptimeNanoseconds),
                           wallMillis: NIODeadline.wallClockMillis)
    }

    /// When the policies see the request arrive: when its head did (that read's clock, no second
    /// read), or now for a request with a body, which may have taken a while to come in.
    private static func arrival(of request: InboundRequest) -> NIODeadline {
        request.body == nil ? request.started : .now()
    }

    /// Starts the exchange: CORS, then the chain.
    func start() {
        applyCORS()
        runChain(from: 0)
    }

    /// The client connection went away: stop what costs nothing to stop. A throttled request is
    /// dropped; later stages notice the missing owner and give back what they took.
    func ownerGone() {
        owner = nil
        if case .throttled = state {
            delayTimer?.cancel()
            delayTimer = nil
            abandon()
            state = .done
        }
    }

    // MARK: Stages

    /// Every response of a CORS route says which origin may read it; in shadow mode an origin the
    /// rules refuse is granted too, and noted.
    private func applyCORS() {
        guard let cors = route.config.cors, let origin = request.head.headers.first(name: "origin") else { return }
        if !cors.allows(origin: origin), route.shadow.letsThrough(.corsRefused, at: .cors, on: &view) {
            view.responseHeaders = cors.grantAsAsked(origin: origin)
        } else {
            view.responseHeaders = cors.responseHeaders(origin: origin)
        }
    }

    private func runChain(from index: Int) {
        state = .policies(next: index)
        switch route.evaluate(&view, from: index) {
        case .reject(let policy, let problem):
            finish(.problem(problem, requestID: request.requestID, by: .policy(policy), note: view.authFailure.map { "token refused: \($0)" }))
        case .delay(let wait, let resumeAt):
            state = .throttled(resumeAt: resumeAt)
            delayTimer = loop.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(wait)) { [self] in
                delayTimer = nil
                guard case .throttled = state else { return }
                runChain(from: resumeAt)
            }
        case .external(let check, let policy, let resumeAt):
            runExternalCheck(check, policy: policy, resumeAt: resumeAt)
        case .pass:
            lookUpCache()
        }
    }

    /// Makes a policy's HTTP call on this loop's pool (no blocking) and lets the route decide on the answer.
    private func runExternalCheck(_ check: ExternalCheck, policy: RouteConfig.PolicyKind, resumeAt: Int) {
        state = .checking(resumeAt: resumeAt)
        guard let endpoint = gateway.checkEndpoints[check.url.description] else {
            finish(.problem(.internalError, requestID: request.requestID, by: .stage(.internal), note: "no endpoint for external check"))
            return
        }
        let form = Array(check.formBody.utf8)
        let call = UpstreamCall(endpoint: endpoint,
                                request: OutgoingRequest.encode(method: "POST", url: check.url, accept: "application/json",
                                                              contentType: "application/x-www-form-urlencoded", body: form),
                                isHEAD: false, retryable: false, timeout: TimeAmount(check.timeout),
                                connectTimeout: TimeAmount(min(check.timeout, .seconds(2))), maxResponseBytes: 64 * 1024)
        loop.upstream.execute(call) { [self] result in
            guard owner != nil else { return done() }
            var status: Int?
            var body: [UInt8]?
            if case .success(let response) = result {
                status = response.status
                body = Array(response.body.readableBytesView)
            }
            switch route.decide(check, by: policy, status: status, body: body, request: &view) {
            case .reject(let problem): finish(.problem(problem, requestID: request.requestID, by: .policy(policy)))
            default: runChain(from: resumeAt)
            }
        }
    }

    /// Serves a fresh cached answer, joins an identical request already on its way upstream, or
    /// leads the fetch itself.
    private func lookUpCache() {
        guard route.config.cache != nil else { return reserveSpend() }
        let key = ResponseCache.key(route: route.name, params: view.params)
        state = .awaitingCache
        let exchange = NIOLoopBound(self, eventLoop: loop.eventLoop)  // the cache wakes waiters on their own loop
        let waiter: ResponseCache.Waiter = (loop.eventLoop, { entry in
            let this = exchange.value
            guard this.owner != nil else { return this.done() }
            if let entry {
                this.answerFromCache(entry, status: "tollgate; fwd=miss; collapsed")
            } else {
                this.reserveSpend()
            }
        })
        switch gateway.cache.lookup(key, now: .now(), waiter: waiter) {
        case .hit(let entry):
            let ttl = max(0, (entry.expires - .now()).nanoseconds / 1_000_000_000)
            answerFromCache(entry, status: "tollgate; hit; ttl=\(ttl)")
        case .joined:
            break
        case .lead:
            cacheKey = key
            reserveSpend()
        }
    }

    private func answerFromCache(_ entry: ResponseCache.Entry, status: String) {
        gateway.ledger.count(.cacheHit, route: route.name, day: loop.today(), savedMicros: entry.costMicros)
        var response = Response.served(entry.status, contentType: entry.contentType, body: entry.body,
                                       headers: [("Cache-Status", status)], by: .stage(.cache))
        response.cacheControl = route.config.response.cacheControl
        finish(response)
    }

    func callUpstream() {
        // Upstream routes first: they have a plan, and the config's target need not be looked at.
        guard let template = route.template, let plan = gateway.upstreamPlan(for: route) else { return callOwnService() }
        guard owner != nil else {
            abandon()
            return done()
        }
        state = .upstream
        var buffer = loop.pool.requestBuffers.take(capacity: template.typicalHeadBytes, allocator: ByteBufferAllocator())
        loop.upstreamHead.removeAll(keepingCapacity: true)
        let body = template.render(&view, requestID: request.requestID, into: &loop.upstreamHead)
        buffer.writeBytes(loop.upstreamHead)
        buffer.writeBytes(body)
        upstreamSent = NIODeadline.now()
        loop.upstream.execute(plan.call(buffer), answering: self, at: upstreamSent)
    }

    /// The routes whose "upstream" is the gateway's own: the verification mail and client keys.
    private func callOwnService() {
        if case .sendVerification = route.config.target, let verification = gateway.verification {
            state = .upstream
            return finish(verification.send(view, requestID: request.requestID, pool: loop.pool))
        }
        if case .issueClientKey(let grant) = route.config.target, let identity = gateway.identity {
            state = .upstream
            let (eventLoop, exchange) = (loop.eventLoop, NIOLoopBound(self, eventLoop: loop.eventLoop))
            return identity.issueClientKey(grant, route: route.name, requestID: request.requestID) { response in
                eventLoop.execute { exchange.value.owner == nil ? exchange.value.done() : exchange.value.finish(response) }
            }
        }
        abandon()
        finish(.problem(.internalError, requestID: request.requestID, by: .stage(.internal), note: "route has no upstream"))
    }

    /// Settles the spend and completes the cache whether or not the client is still there, then
    /// answers it if it is.
    private func upstreamAnswered(_ result: Result<UpstreamResponse, UpstreamFailure>, micros: Int64) {
        settle(result)
        var response: Response
        switch result {
        case .failure(let failure):
            let problem: Problem
            switch failure {
            case .timeout: problem = .upstreamTimeout
            case .connect: problem = .upstreamUnavailable
            case .poolFull: problem = .upstreamBusy
            default: problem = .upstreamFailed
            }
            endCacheLead(with: nil)
            response = .problem(problem, requestID: request.requestID, by: .stage(.upstream), note: failure.logNote)
        case .success(let answer):
            switch UpstreamOutcome.classify(answer, route: route) {
            case .refuse(let problem, let note):
                endCacheLead(with: nil)
                response = .problem(problem, requestID: request.requestID, by: .stage(.upstream), note: note)
            case .relay(let status, let contentType, let body, let headers):
                response = .served(status, contentType: contentType, body: body, headers: headers)
                response.cacheControl = route.config.response.cacheControl
                if cacheKey != nil {
                    var stored = false
                    if let ttl = route.config.cache?.ttl, (200...299).contains(status) {
                        endCacheLead(with: ResponseCache.Entry(status: status, contentType: contentType, body: body,
                                                               expires: .now() + TimeAmount(ttl), costMicros: settledMicros))
                        stored = true
                    } else {
                        endCacheLead(with: nil)
                    }
                    response.headers.append(("Cache-Status", stored ? "tollgate; fwd=miss; stored" : "tollgate; fwd=miss"))
                }
            }
            response.upstreamStatus = answer.status
            if (200...299).contains(answer.status), route.config.auth?.revokeClientKeyOnSuccess == true,
               let caller = view.caller, caller.method == .clientKey, let id = caller.keyID {
                gateway.identity?.revokeClientKey(id, requestID: request.requestID)
            }
        }
        response.upstreamMicros = micros
        guard owner != nil else { return done() }
        finish(response)
    }

    // MARK: Ending

    func finish(_ response: consuming Response) {
        guard !isDone else { return }
        state = .done
        response.shadowed = view.shadowed
        let owner = self.owner
        self.owner = nil
        owner?.exchange(self, answered: consume response)
    }

    /// Ends without an answer (the owner is gone).
    func done() {
        state = .done
        owner = nil
    }

    var isDone: Bool {
        if case .done = state { return true }
        return false
    }
}

extension ProxyExchange: UpstreamAnswerTaker {
    func answered(_ result: Result<UpstreamResponse, UpstreamFailure>) {
        upstreamAnswered(result, micros: (NIODeadline.now() - upstreamSent).nanoseconds / 1000)
    }
}
