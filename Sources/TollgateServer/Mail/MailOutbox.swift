import Crypto
import Foundation
import Logging
import NIOCore
import Synchronization
import TollgateCore

/// Verification messages waiting to leave, and the workers that send them — off every request's
/// path: ``enqueue(_:)`` is one bounded, non-blocking hand-over, and the page has its 202 before any
/// connection to the mail server is made.
///
/// At most ``parallel`` messages are in flight; each is tried `1 + retries` times with doubling
/// backoff from 1 s while its failures are transient (connection, timeout, 4yz). A full queue
/// drops the new message (``dropped``); every outcome is counted and logged with the request id
/// and the domain, never the address.
final class MailOutbox: Sendable {
    struct Job: Sendable {
        var to: String
        var domain: String
        var subject: String
        var text: String
        var html: String?
        var link: String
        var expiresAt: Int64
        var requestID: String
        /// For the webhook transport: the pool of the loop that took the request.
        var pool: UpstreamPool?
    }

    static let parallel = 4

    let sent = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let retried = Atomic<Int>(0)
    private let continuation: AsyncStream<Job>.Continuation
    private let config: MailConfig
    private let smtp: SMTPClient.Session?
    private let webhook: (endpoint: UpstreamEndpoint, url: UpstreamURL, key: SymmetricKey?)?
    private let logger: Logger

    init(config: MailConfig, secrets: [String: String], group: any EventLoopGroup, logger: Logger) throws {
        self.config = config
        self.logger = logger
        switch config.transport {
        case .smtp(let settings):
            smtp = try SMTPClient.Session(settings: settings, password: settings.password.flatMap { secrets[$0] },
                                          timeout: TimeAmount(config.timeout))
            webhook = nil
        case .webhook(let url, let secret):
            smtp = nil
            webhook = (try UpstreamEndpoint(url: url, caFile: nil), url,
                       secret.flatMap { secrets[$0] }.map { SymmetricKey(data: Data($0.utf8)) })
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Job.self, bufferingPolicy: .bufferingOldest(config.queue))
        self.continuation = continuation
        Task.detached { [self] in await self.run(stream, group: group) }
    }

    /// Hands `job` to the workers; false (and counted) when the queue is full.
    func enqueue(_ job: Job) -> Bool {
        if case .enqueued = continuation.yield(job) { return true }
        dropped.add(1, ordering: .relaxed)
        logger.error("verification mail dropped: the queue is full", metadata: ["request_id": "\(job.requestID)", "domain": "\(job.domain)"])
        return false
    }

    /// No new messages; those queued are still sent.
    func close() { continuation.finish() }

    private func run(_ stream: AsyncStream<Job>, group: any EventLoopGroup) async {
        await withTaskGroup(of: Void.self) { tasks in
            var running = 0
            for await job in stream {
                if running >= Self.parallel {
                    await tasks.next()
                    running -= 1
                }
                tasks.addTask { await self.deliver(job, group: group) }
                running += 1
            }
        }
    }

    private func deliver(_ job: Job, group: any EventLoopGroup) async {
        for attempt in 0...config.retries {
            do {
                try await send(job, group: group)
                sent.add(1, ordering: .relaxed)
                logger.info("verification mail sent", metadata: ["request_id": "\(job.requestID)", "domain": "\(job.domain)",
                                                                 "attempts": "\(attempt + 1)"])
                return
            } catch {
                let transient = (error as? SMTPFailure)?.isTransient ?? true
                guard transient, attempt < config.retries else {
                    failed.add(1, ordering: .relaxed)
                    logger.error("verification mail failed", metadata: ["request_id": "\(job.requestID)", "domain": "\(job.domain)",
                                                                        "attempts": "\(attempt + 1)", "error": "\(error)"])
                    return
                }
                retried.add(1, ordering: .relaxed)
                logger.warning("verification mail: trying again", metadata: ["request_id": "\(job.requestID)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1 << min(attempt, 6)))
            }
        }
    }

    private func send(_ job: Job, group: any EventLoopGroup) async throws {
        if let smtp {
            let from = MailConfig.bareAddress(config.from) ?? config.from
            let message = MailMessage.render(from: config.from, to: job.to, subject: job.subject, text: job.text, html: job.html)
            try await SMTPClient.send(SMTPClient.Envelope(from: from, to: job.to, message: message), session: smtp, group: group)
        } else if let webhook, let pool = job.pool {
            try await post(job, webhook: webhook, pool: pool)
        }
    }

    /// The webhook transport: one JSON POST per message, signed like the alert webhook.
    private func post(_ job: Job, webhook: (endpoint: UpstreamEndpoint, url: UpstreamURL, key: SymmetricKey?),
                      pool: UpstreamPool) async throws {
        var members = [JSONMember("type", .string("verification.message")), JSONMember("to", .string(job.to)),
                       JSONMember("from", .string(config.from)), JSONMember("subject", .string(job.subject)),
                       JSONMember("text", .string(job.text)), JSONMember("link", .string(job.link)),
                       JSONMember("expires_at", .string(SpendControl.iso8601(job.expiresAt))),
                       JSONMember("request_id", .string(job.requestID))]
        if let html = job.html { members.append(JSONMember("html", .string(html))) }
        let body = JSONValue.object(members).serialized
        let now = Int64(Date().timeIntervalSince1970)
        var headers: [(String, String)] = []
        if let key = webhook.key {
            let mac = HMAC<SHA256>.authenticationCode(for: Data("\(now).\(body)".utf8), using: key)
            headers.append(("X-Tollgate-Signature", "t=\(now),v1=\(Hex.encode(mac))"))
        }
        let call = UpstreamCall(endpoint: webhook.endpoint,
                                request: OutgoingRequest.encode(method: "POST", url: webhook.url, contentType: "application/json",
                                                                body: Array(body.utf8), headers: headers),
                                isHEAD: false, retryable: false, timeout: TimeAmount(config.timeout), connectTimeout: .seconds(2),
                                maxResponseBytes: 64 * 1024)
        let status: Int? = await withCheckedContinuation { waiter in
            pool.eventLoop.execute {
                pool.execute(call) { result in
                    if case .success(let response) = result { waiter.resume(returning: response.status) } else { waiter.resume(returning: nil) }
                }
            }
        }
        guard let status else { throw SMTPFailure.connect("the webhook did not answer") }
        guard (200...299).contains(status) else { throw SMTPFailure.refused(step: "webhook POST", code: status >= 500 ? 450 : 550) }
    }
}
