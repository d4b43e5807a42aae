/// `verification:` — the two-step sign-up: an address gets a signed link, and opening it marks the
/// visitor's page session as verified for `verifiedFor`.
public struct VerificationConfig: Sendable, Equatable {
    /// Secret names; the first signs links, all verify (rotation).
    public var keys: [String]
    /// Secret name of the key for the stored address hashes; defaults to the first signing key.
    /// Give it its own secret to rotate link keys without resetting per-address counts.
    public var hashKey: String
    /// Scheme, host and port links point at (`https://signup.example.com`): never taken from the
    /// request's `Host`, which the visitor chooses.
    public var linkBase: String
    /// Where links land: GET shows a confirmation page, POST (from that page) confirms.
    public var linkPath = "/_tollgate/verify/link"
    public var linkTTL: Duration = .seconds(30 * 60)
    public var verifiedFor: Duration = .seconds(24 * 3600)
    /// Where the browser goes once the link is confirmed: a path on this site.
    public var redirect = "/"
    /// Domains refused outright (and their subdomains): the config's list and the disposable list file.
    public var refusedDomains: Set<String> = []
    public var normalization = EmailAddress.Normalization.standard
    /// Automatic temporary blocks of a domain that asks for too many links.
    public var domainBlock: DomainBlockRule?
    public var message: MailTemplate
    /// Most links remembered as used and sessions remembered as verified (each bounded; full → the
    /// oldest expired are swept, then new confirmations are refused).
    public var maxTracked = 100_000

    public init(keys: [String], hashKey: String, linkBase: String, message: MailTemplate) {
        self.keys = keys
        self.hashKey = hashKey
        self.linkBase = linkBase
        self.message = message
    }
}

/// `verification.domain_blocks`: a domain whose addresses asked for more than `requests` links within
/// `within` is banned (a `domain` ban, `auto:domain-flood`) for `blockFor`.
public struct DomainBlockRule: Sendable, Equatable {
    public var requests: Int
    public var within: Duration
    public var blockFor: Duration

    public init(requests: Int, within: Duration, blockFor: Duration) {
        self.requests = requests
        self.within = within
        self.blockFor = blockFor
    }
}

/// The verification message: subject and bodies read from files at load time. `{{link}}` is
/// replaced by the link and `{{minutes}}` by its lifetime; nothing else the visitor sent appears.
public struct MailTemplate: Sendable, Equatable {
    public var subject: String
    public var text: String
    public var html: String?

    public init(subject: String, text: String, html: String?) {
        self.subject = subject
        self.text = text
        self.html = html
    }

    public static let standard = MailTemplate(
        subject: "Confirm your email address",
        text: "Open this link to confirm your address (valid for {{minutes}} minutes):\n\n{{link}}\n\nIf you did not ask for this, ignore this message.\n",
        html: nil)

    /// The message for `link`; `escapeHTML` applies to the HTML body.
    public func render(link: String, minutes: Int) -> (subject: String, text: String, html: String?) {
        func fill(_ s: String, _ link: String) -> String {
            s.replacingAll("{{link}}", with: link).replacingAll("{{minutes}}", with: String(minutes))
        }
        return (subject, fill(text, link), html.map { fill($0, HTMLText.escape(link)) })
    }
}

/// `mail:` — how verification messages leave: SMTP, or a webhook to the application's own mailer.
public struct MailConfig: Sendable, Equatable {
    public enum Transport: Sendable, Equatable {
        case smtp(SMTPSettings)
        /// A signed JSON POST (`X-Tollgate-Signature`, as the alert webhook) per message.
        case webhook(url: UpstreamURL, secret: String?)
    }

    public var transport: Transport
    /// The From address (`Sign-up <noreply@example.com>` or a bare address).
    public var from: String
    /// Per attempt.
    public var timeout: Duration = .seconds(10)
    /// Attempts after the first, with doubling backoff from 1 s.
    public var retries = 3
    /// Messages waiting to be sent; beyond it new ones are dropped and counted.
    public var queue = 1000

    public init(transport: Transport, from: String) {
        self.transport = transport
        self.from = from
    }

    /// The secret names `mail` uses (the SMTP password, the webhook's signing secret).
    public static func secretNames(_ mail: MailConfig) -> [String] {
        switch mail.transport {
        case .smtp(let s): [s.password].compactMap { $0 }
        case .webhook(_, let secret): [secret].compactMap { $0 }
        }
    }
}

public struct SMTPSettings: Sendable, Equatable {
    public enum Security: String, Sendable, Equatable, CaseIterable {
        /// STARTTLS after EHLO; a server without it is an error (the default).
        case starttls
        /// TLS from the first byte (port 465).
        case tls
        /// Plain text: only to a loopback host (a local relay or a test catcher).
        case none
    }

    public var host: String
    public var port: Int
    public var security: Security = .starttls
    public var username: String?
    /// Secret name.
    public var password: String?
    /// PEM bundle to verify the server's certificate with, instead of the system's roots.
    public var caFile: String?
    /// The name this gateway gives in EHLO.
    public var heloName = "tollgate.localhost"

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// Escaping for text put into HTML.
public enum HTMLText {
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
