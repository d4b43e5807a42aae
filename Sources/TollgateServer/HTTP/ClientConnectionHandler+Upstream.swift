import NIOCore
import TollgateCore

/// The upstream path of a request: the policy chain (with throttle delays), the call, the answer.
extension ClientConnectionHandler {
    /// Runs the route's policies from `index`; waits when one throttles, answers when one refuses,
    /// else calls the upstream.
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
        case .pass:
            guard case .upstream(let upstream) = route.config.target else { return }
            callUpstream(route: route, upstream: upstream, req: req)
        }
    }

    private func callUpstream(route: Route, upstream: UpstreamConfig, req: InboundRequest) {
        guard let template = route.template, let endpoint = loop.state.endpoints[route.name], let view = req.view,
              let context else { return }
        let (head, body) = template.render(view, requestID: req.requestID)
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        let call = UpstreamCall(endpoint: endpoint, request: buffer, isHEAD: template.method == "HEAD",
                                retryable: template.method == "GET" || template.method == "HEAD",
                                timeout: TimeAmount(upstream.timeout), connectTimeout: TimeAmount(upstream.connectTimeout),
                                maxResponseBytes: upstream.maxResponseBytes)
        let sent = NIODeadline.now()
        loop.pool.execute(call) { [self] result in
            let upstreamMicros = (NIODeadline.now() - sent).nanoseconds / 1000
            self.upstreamAnswered(result, route: route, upstreamMicros: upstreamMicros)
        }
    }

    private func upstreamAnswered(_ result: Result<UpstreamResponse, UpstreamFailure>, route: Route, upstreamMicros: Int64) {
        guard let req = request, context != nil else { return }
        switch result {
        case .failure(let failure):
            let problem: Problem
            switch failure {
            case .timeout: problem = .upstreamTimeout
            case .connect: problem = .upstreamUnavailable
            default: problem = .upstreamFailed
            }
            respondWithProblem(problem, requestID: req.requestID, decidedBy: "upstream", note: failure.logNote,
                               upstreamMicros: upstreamMicros)
        case .success(let response):
            let outcome = UpstreamOutcome.classify(response, route: route.config, projection: route.projection)
            switch outcome {
            case .refuse(let problem, let note):
                respondWithProblem(problem, requestID: req.requestID, decidedBy: "upstream", note: note,
                                   upstreamStatus: response.status, upstreamMicros: upstreamMicros)
            case .relay(let status, let contentType, let body, let headers):
                let head = ResponseEncoder.Head(status: status, contentType: contentType, cacheControl: route.config.response.cacheControl,
                                                requestID: req.requestID, keepAlive: req.keepAlive, secure: req.secure,
                                                extraHeaders: headers + (req.view?.responseHeaders ?? []))
                var buffer = context!.channel.allocator.buffer(capacity: 512 + body.readableBytes)
                ResponseEncoder.write(head, body: body, into: &buffer)
                finishResponse(buffer, status: status, decision: "pass", decidedBy: nil,
                               upstreamStatus: response.status, upstreamMicros: upstreamMicros)
            }
        }
    }

}
