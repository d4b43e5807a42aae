/// What the two-step policies share: the config, link signing and hashing, verified sessions,
/// the page sessions they are bound to, and the bans (a `domain` ban refuses both steps).
public struct VerificationServices: Sendable {
    public let config: VerificationConfig
    public let links: VerificationLinks
    public let sessions: VerifiedSessions
    public let pageTokens: PageTokens
    public let bans: BanBoard?

    public init(config: VerificationConfig, links: VerificationLinks, sessions: VerifiedSessions, pageTokens: PageTokens,
                bans: BanBoard?) {
        self.config = config
        self.links = links
        self.sessions = sessions
        self.pageTokens = pageTokens
        self.bans = bans
    }

    /// The issued page session of `request` (its MAC verifies), set as ``RequestView/session``.
    func session(of request: inout RequestView) -> String? {
        let cookie = request.cookie(pageTokens.config.cookie)
        guard pageTokens.isIssuedSession(cookie) else { return nil }
        request.session = cookie
        return cookie
    }

    public func domainBan(_ domain: String, nowMillis: Int64) -> Ban? {
        bans?.ban(domain: domain, now: nowMillis / 1000)
    }
}

/// `send_verification` routes: reads `{"email": …}` from the JSON body, checks it (syntax, refused
/// and disposable domains, domain bans) and names it for the limits and the target
/// (``RequestView/email``, ``RequestView/emailAddress``). The visitor must hold an issued page
/// session: the link will be bound to it.
public struct EmailAddressPolicy: Policy {
    public let kind = RouteConfig.PolicyKind.emailAddress
    let services: VerificationServices

    public init(services: VerificationServices) { self.services = services }

    public func evaluate(_ request: inout RequestView) -> Decision {
        guard services.session(of: &request) != nil else { return .reject(Self.sessionRequired) }
        guard let json = try? JSONParser.parse(request.body), case .string(let text)? = json["email"] else {
            return .reject(Self.invalid("email-missing", "Send a JSON body with the address as \"email\"."))
        }
        let address: EmailAddress
        do {
            address = try EmailAddress(parsing: text, normalization: services.config.normalization)
        } catch {
            return .reject(Self.invalid(error.rawValue, "This is not an email address we can send to."))
        }
        if DomainMatch.covers(services.config.refusedDomains, address.domain) {
            return .reject(Self.domainRefused("domain-refused"))
        }
        if services.domainBan(address.domain, nowMillis: request.wallMillis) != nil {
            return .reject(Self.domainRefused("domain-blocked"))
        }
        request.email = VerifiedEmail(addressHash: services.links.addressHash(address), domain: address.domain, untilMillis: 0)
        request.emailAddress = address
        return .pass
    }

    static let sessionRequired = Problem(status: 403, code: "session-required", title: "Forbidden",
                                         detail: "Load the page first: the link is bound to its session.")

    static func invalid(_ reason: String, _ detail: String) -> Problem {
        Problem(status: 422, code: "invalid-email", title: "Unprocessable Content", detail: detail,
                extensions: [JSONMember("reason", .string(reason))])
    }

    public static func domainRefused(_ reason: String) -> Problem {
        Problem(status: 403, code: "domain-refused", title: "Forbidden",
                detail: "Addresses of this domain cannot be used here; use another address.",
                extensions: [JSONMember("reason", .string(reason))])
    }
}

/// `require: [verified_email]`: the request's page session must have opened a verification link
/// within `verified_for`, and its domain must not be banned since. Refused with 403
/// `verification-required` (the page should offer the email step) or `domain-refused`.
public struct VerifiedEmailPolicy: Policy {
    public let kind = RouteConfig.PolicyKind.verifiedEmail
    let services: VerificationServices

    public init(services: VerificationServices) { self.services = services }

    public func evaluate(_ request: inout RequestView) -> Decision {
        guard let session = services.session(of: &request),
              let email = services.sessions.verified(session: session, nowMillis: request.wallMillis) else {
            return .reject(Self.required)
        }
        if services.domainBan(email.domain, nowMillis: request.wallMillis) != nil {
            return .reject(EmailAddressPolicy.domainRefused("domain-blocked"))
        }
        request.email = email
        return .pass
    }

    public static let required = Problem(status: 403, code: "verification-required", title: "Forbidden",
                                         detail: "Confirm an email address first: ask for a link and open it in this browser.",
                                         extensions: [JSONMember("reason", .string("verification-required"))])
}
