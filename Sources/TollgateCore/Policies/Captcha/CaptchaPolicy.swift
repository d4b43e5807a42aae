import Foundation
import Synchronization

/// Verifies a CAPTCHA token (Turnstile, hCaptcha or reCAPTCHA) with the provider's siteverify
/// endpoint. The policy only describes the call; the data plane makes it without blocking the event
/// loop. Fail-closed by default: if the provider cannot be reached in time, the request is refused.
/// A session (or, without one, a client address) that passed is not asked again for `remember`.
public struct CaptchaPolicy: Policy {
    public struct Config: Sendable, Equatable {
        public enum Provider: String, Sendable, CaseIterable { case turnstile, hcaptcha, recaptcha }
        public var provider: Provider
        public var siteverifyURL: UpstreamURL
        /// Secret name.
        public var secret: String
        public var timeout: Duration
        public var failOpen: Bool
        public var remember: Duration

        public static func defaultURL(_ provider: Provider) -> String {
            switch provider {
            case .turnstile: "https://challenges.cloudflare.com/turnstile/v0/siteverify"
            case .hcaptcha: "https://api.hcaptcha.com/siteverify"
            case .recaptcha: "https://www.google.com/recaptcha/api/siteverify"
            }
        }
    }

    public let kind = RouteConfig.PolicyKind.captcha
    let config: Config
    let secretValue: String
    let sessionCookie: String?
    let passes: CaptchaPasses

    public init(config: Config, secretValue: String, sessionCookie: String?, passes: CaptchaPasses) {
        self.config = config
        self.secretValue = secretValue
        self.sessionCookie = sessionCookie
        self.passes = passes
    }

    public func evaluate(_ request: inout RequestView) -> Decision {
        let holder = sessionCookie.flatMap { request.cookie($0) }.map { "s:" + $0 } ?? "a:" + request.clientKey.description
        let now = request.wallMillis
        if passes.isValid(holder, nowMillis: now) { return .pass }
        guard let token = request.header("x-tollgate-captcha"), !token.isEmpty, token.utf8.count <= 4096 else {
            return .reject(Self.problem("captcha-required"))
        }
        let body = "secret=\(PercentEncoding.encode(secretValue))&response=\(PercentEncoding.encode(token))"
            + "&remoteip=\(PercentEncoding.encode(request.clientAddress))"
        let remember = config.remember.milliseconds
        let failOpen = config.failOpen
        let passes = self.passes
        return .external(ExternalCheck(url: config.siteverifyURL, formBody: body, timeout: config.timeout) { status, response in
            guard let status, (200...299).contains(status), let response else {
                return failOpen ? .pass : .reject(Self.problem("captcha-unverifiable", status: 503))
            }
            guard case .object? = try? JSONParser.parse(response), let json = try? JSONParser.parse(response),
                  json["success"] == .bool(true) else {
                return .reject(Self.problem("captcha-failed"))
            }
            passes.record(holder, untilMillis: now + remember, nowMillis: now)
            return .pass
        })
    }

    static func problem(_ reason: String, status: Int = 403) -> Problem {
        Problem(status: status, code: "captcha", title: status == 503 ? "Service Unavailable" : "Forbidden",
                detail: status == 503 ? "The CAPTCHA could not be checked right now; try again shortly."
                                      : "Complete the CAPTCHA and send its token in X-Tollgate-Captcha.",
                extensions: [JSONMember("reason", .string(reason))])
    }
}

/// Sessions or clients that passed a CAPTCHA recently, until when (Unix milliseconds). Bounded:
/// when full of live passes a new one is not remembered (that holder is simply asked again).
public final class CaptchaPasses: Sendable {
    private let table: Mutex<BoundedTable<String, Int64>>

    public init(maxEntries: Int = 200_000) {
        table = Mutex(BoundedTable(capacity: maxEntries, sweepInterval: 100))
    }

    func isValid(_ holder: String, nowMillis: Int64) -> Bool {
        table.withLock { ($0[holder] ?? 0) > nowMillis }
    }

    func record(_ holder: String, untilMillis: Int64, nowMillis: Int64) {
        table.withLock { _ = $0.insert(holder, untilMillis, now: nowMillis) { $0 } }
    }
}

/// An HTTP call a policy needs before it can decide, made by the data plane without blocking: a
/// form-encoded POST to `url`, then `decide(status, body)` (both nil when the call failed or timed
/// out).
public struct ExternalCheck: Sendable {
    public let url: UpstreamURL
    public let formBody: String
    public let timeout: Duration
    public let decide: @Sendable (_ status: Int?, _ body: [UInt8]?) -> Decision

    public init(url: UpstreamURL, formBody: String, timeout: Duration, decide: @escaping @Sendable (Int?, [UInt8]?) -> Decision) {
        self.url = url
        self.formBody = formBody
        self.timeout = timeout
        self.decide = decide
    }
}
