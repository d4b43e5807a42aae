import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TollgateCore
import TollgateStore

/// The gateway's side of the two-step sign-up: link signing and verified sessions (shared with the
/// policies), the mail outbox, and the domain-flood counter. Kept whole across a reload while its
/// config, `mail` and their secrets are unchanged; otherwise rebuilt from the previous one, keeping
/// the verified sessions and used links, the outbox while `mail` is unchanged (a replaced outbox
/// still sends what it queued), and the domain counts while the rule is.
final class VerificationRuntime: Sendable {
    let config: VerificationConfig
    let mail: MailConfig
    let services: VerificationServices
    let outbox: MailOutbox
    private let access: AccessRuntime
    private let domainCounter: RateLimiter?
    private let journal: (any VerificationJournal)?
    /// With a store other gateways share: their confirmations, applied here.
    let feed: VerificationFeed?
    private let logger: Logger
    /// Links asked for, links confirmed, and domains blocked automatically (for metrics).
    let requested = Atomic<Int>(0)
    let confirmed = Atomic<Int>(0)
    let domainBlocks = Atomic<Int>(0)

    init(config: VerificationConfig, mail: MailConfig, secrets: [String: String], pageTokens: PageTokens,
         access: AccessRuntime, journal: (any VerificationJournal)?, maxKeys: Int, logger: Logger,
         previous: VerificationRuntime? = nil, sameMailSecrets: Bool = false, followOthers: Bool = false) throws {
        self.config = config
        self.mail = mail
        self.access = access
        self.journal = journal
        self.logger = logger
        let kept = previous.flatMap { $0.config.maxTracked == config.maxTracked ? $0.services.sessions : nil }
        let sessions = kept ?? VerifiedSessions(maxTracked: config.maxTracked, journal: journal, nowMillis: NIODeadline.wallClockMillis)
        if kept != nil, let feed = previous?.feed {
            self.feed = feed
        } else {
            previous?.feed?.stop()
            self.feed = followOthers ? journal.map { VerificationFeed(sessions: sessions, journal: $0, logger: logger) } : nil
        }
        services = VerificationServices(config: config, links: VerificationLinks(config: config, secrets: secrets),
                                        sessions: sessions, pageTokens: pageTokens, bans: access.board)
        if let previous, previous.mail == mail, sameMailSecrets {
            outbox = previous.outbox
        } else {
            previous?.outbox.close()
            outbox = try MailOutbox(config: mail, secrets: secrets, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        }
        domainCounter = previous.flatMap { $0.config.domainBlock == config.domainBlock ? $0.domainCounter : nil }
            ?? config.domainBlock.map { RateLimiter(rate: Rate(count: $0.requests, period: $0.within), burst: $0.requests, maxKeys: maxKeys) }
    }

    /// Whether a reload may keep this runtime.
    func fits(_ config: VerificationConfig?, _ mail: MailConfig?, secretsSame: Bool) -> Bool {
        config == self.config && mail == self.mail && secretsSame
    }

    /// The target of a `send_verification` route, after its chain passed (``RequestView/email`` and
    /// ``RequestView/emailAddress`` are set): counts the domain, signs a link bound to the session,
    /// queues the message and answers 202 at once. The answer is the same whether or not the
    /// address exists, so it tells a prober nothing.
    func send(_ view: RequestView, requestID: String, pool: UpstreamPool) -> Response {
        guard let email = view.email, let parsed = view.emailAddress, let session = view.session else {
            return .problem(.internalError, requestID: requestID, by: .stage(.internal), note: "send_verification without an address")
        }
        if let refusal = countDomain(email.domain, nowNanos: view.now) {
            return .problem(refusal, requestID: requestID, by: .stage(.verification), note: "domain flood: \(email.domain)")
        }
        let now = view.wallMillis
        let token = services.links.issue(for: parsed, session: session, nowMillis: now)
        let link = config.linkBase + config.linkPath + "?t=" + token
        let minutes = Int(config.linkTTL.components.seconds / 60)
        let message = config.message.render(link: link, minutes: minutes)
        let job = MailOutbox.Job(to: parsed.deliverable, domain: email.domain, subject: message.subject, text: message.text,
                                 html: message.html, link: link, expiresAt: (now + services.links.ttlMillis) / 1000,
                                 requestID: requestID, pool: pool)
        guard outbox.enqueue(job) else {
            return .problem(Self.mailBusy, requestID: requestID, by: .stage(.verification), note: "mail queue full")
        }
        requested.add(1, ordering: .relaxed)
        journal?.recordVerificationRequest(VerificationRequest(addressHash: email.addressHash, domain: email.domain,
                                                               sessionTag: SessionTag.of(session), at: now / 1000))
        let body = JSONValue.object([JSONMember("status", .string("sent")),
                                     JSONMember("expires_in", .number(String(config.linkTTL.components.seconds)))]).serialized
        return .served(202, contentType: "application/json", body: ByteBuffer(string: body), by: .stage(.verification))
    }

    /// Counts one link asked for by `domain`; past the rule's threshold the domain is banned (here
    /// at once, in the store for the other gateways) and this request refused.
    private func countDomain(_ domain: String, nowNanos: Int64) -> Problem? {
        guard let rule = config.domainBlock, let domainCounter else { return nil }
        guard !domainCounter.acquire(RateLimitPolicy.hashed(domain), now: nowNanos).allowed else { return nil }
        let now = Int64(NIODeadline.wallClockSeconds)
        if access.board.ban(domain: domain, now: now) == nil {
            let ban = Ban(kind: .domain, value: domain, reason: "more than \(rule.requests) verification requests within \(rule.within.compactText)",
                          createdAt: now, expiresAt: now + rule.blockFor.components.seconds, createdBy: "auto:domain-flood")
            access.addAutomatic(ban)
            domainBlocks.add(1, ordering: .relaxed)
        }
        return EmailAddressPolicy.domainRefused("domain-blocked")
    }

    static let mailBusy = Problem(status: 503, code: "mail-busy", title: "Service Unavailable",
                                  detail: "Too many messages are waiting to be sent; try again shortly.",
                                  headers: [("Retry-After", "30")])
}
