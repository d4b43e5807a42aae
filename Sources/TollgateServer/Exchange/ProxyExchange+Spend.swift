import NIOCore
import TollgateCore
import TollgateStore
import TollgateUpstreamHTTP

/// The money half of an exchange: the reservation made durable before the upstream is called,
/// its settlement at the real cost (or its release) afterwards, and the cache lead that ends with
/// either. Same invariants as ``ProxyExchange``: nothing is reserved before the chain passed, the
/// upstream is never called before the ledger holds the reservation, and a reservation always ends
/// settled, released, or (the client left mid-call) counted at its worst case.
extension ProxyExchange {
    /// Reserves the call's cost in every applicable budget and waits until the ledger holds the
    /// reservation; only then is the upstream called.
    func reserveSpend() {
        guard let spend = route.spend else {
            // The kill switch stops every upstream call, priced or not.
            guard !gateway.book.isPaused(route.name) else {
                endCacheLead(with: nil)
                return finish(.problem(SpendControl.paused, requestID: request.requestID, by: .stage(.paused)))
            }
            return callUpstream()
        }
        let now = Int64(NIODeadline.wallClockSeconds)
        let shadow = route.shadow.covers(.budget)
        // With shared totals the store decides; the book's own view would miss the other gateways.
        var outcome = spend.reserve(client: request.client.address, session: view.session.map(SessionTag.of) ?? "",
                                    key: view.caller?.keyID ?? "", subject: view.caller?.subject ?? "",
                                    email: view.email?.addressHash ?? "", now: now,
                                    shadow: shadow || gateway.sharedSpend != nil)
        if case .reservedOverCap(let reserved, let problem) = outcome {
            if shadow { _ = route.shadow.letsThrough(problem, at: .budget, on: &view) } else { localRefusal = problem }
            outcome = .reserved(reserved)
        }
        switch outcome {
        case .refused(let problem):
            endCacheLead(with: nil)
            finish(.problem(problem, requestID: request.requestID, by: .stage(problem.code == "paused" ? .paused : .budget)))
        case .reservedOverCap:
            preconditionFailure("turned into .reserved above")
        case .reserved(let reserved):
            reservation = reserved
            state = .reserving
            var entry = LedgerEntry(requestID: request.requestID, route: route.name, client: reserved.client,
                                    session: reserved.session, reservedMicros: reserved.amount, createdAt: now)
            entry.keyID = reserved.key
            entry.subject = reserved.subject
            entry.email = reserved.email
            entry.emailDomain = view.email?.domain ?? ""
            if let shared = gateway.sharedSpend { entry.charges = shared.charges(reserved.keys, now: now, enforced: !shadow) }
            let eventLoop = loop.eventLoop
            let exchange = NIOLoopBound(self, eventLoop: eventLoop)  // the ledger answers on its own thread
            gateway.ledger.reserve(entry) { result in
                eventLoop.execute { exchange.value.ledgerAnswered(result, at: now) }
            }
        }
    }

    private func ledgerAnswered(_ result: Result<Int64, any Error>, at now: Int64) {
        switch result {
        case .success(let id):
            reservation?.ledgerID.store(id, ordering: .relaxed)
            if let shared = gateway.sharedSpend, let reservation { shared.mirror(reservation.keys, now: now) }
            guard owner != nil else {
                abandon()  // the client left before anything was sent: nothing to pay for
                return done()
            }
            if let reservation { gateway.alerts.check(reservation.keys, now: now, loop: loop.eventLoop, pool: loop.pool) }
            callUpstream()
        case .failure(let refused as BudgetRefused):
            // Another gateway's spend filled the cap first: nothing was written, nothing is owed.
            let keys = reservation?.keys ?? []
            reservation?.release()
            endCacheLead(with: nil)
            let problem = gateway.sharedSpend?.problem(refused, keys: keys, now: now) ?? .ledgerUnavailable
            finish(.problem(problem, requestID: request.requestID, by: .stage(.budget)))
        case .failure(let error):
            gateway.logger.error("ledger write failed", metadata: ["error": "\(error)"])
            if let reservation, reservation.keys.allSatisfy({ gateway.book.budgets[$0.budget].onStoreError == .open }),
               !reservation.keys.isEmpty {
                // on_store_error: open — this gateway's own book decides, and nothing is recorded.
                guard owner != nil else {
                    abandon()
                    return done()
                }
                guard let problem = localRefusal else { return callUpstream() }
                reservation.release()
                endCacheLead(with: nil)
                return finish(.problem(problem, requestID: request.requestID, by: .stage(.budget)))
            }
            abandon()
            finish(.problem(.ledgerUnavailable, requestID: request.requestID, by: .stage(.ledger), note: "ledger write failed"))
        }
    }

    /// Turns the reservation into the real cost, or gives it back, per the route's rules.
    func settle(_ result: Result<UpstreamResponse, UpstreamFailure>) {
        guard let reservation, let cost = route.spend?.cost else { return }
        let id = reservation.ledgerID.load(ordering: .relaxed)
        let now = Int64(NIODeadline.wallClockSeconds)
        var release = false
        var status: Int?
        var amount = reservation.amount
        switch result {
        case .failure(.connect):
            release = cost.releaseOn.contains(.unreachable)
        case .failure(.poolFull):
            release = true  // nothing was sent: nothing can have been billed
        case .failure:
            break  // the provider may have billed: keep the worst case
        case .success(let response):
            status = response.status
            release = (response.status >= 500 && cost.releaseOn.contains(.serverError))
                || (response.status == 429 && cost.releaseOn.contains(.rateLimited))
            amount = cost.settle(unitsHeaderValue: cost.unitsHeader.flatMap { response.headers.first($0) }).micros
        }
        if release {
            if reservation.release(), id > 0 { gateway.ledger.release(id: id, status: status, at: now) }
        } else if reservation.settle(amount), id > 0 {
            gateway.ledger.settle(id: id, costMicros: amount, status: status, at: now)
        }
    }

    var settledMicros: Int64 {
        if case .settled(let cost)? = reservation?.current { return cost }
        return 0
    }

    /// Ends this exchange's lead on a cache key (if it has one) and wakes those waiting on it.
    func endCacheLead(with entry: ResponseCache.Entry?) {
        guard let key = cacheKey else { return }
        cacheKey = nil
        gateway.cache.complete(key, with: entry)
    }

    /// Given up before the upstream call: releases the reservation (recording that in the ledger
    /// once it has a row) and ends the cache lead.
    func abandon() {
        if let reservation, reservation.release() {
            let id = reservation.ledgerID.load(ordering: .relaxed)
            if id > 0 { gateway.ledger.release(id: id, status: nil, at: Int64(NIODeadline.wallClockSeconds)) }
        }
        endCacheLead(with: nil)
    }
}

extension Problem {
    static let ledgerUnavailable = Problem(status: 503, code: "ledger-unavailable", title: "Service Unavailable",
                                           detail: "Spending cannot be recorded right now; try again shortly.",
                                           headers: [("Retry-After", "5")])
}
