import NIOCore
import TollgateCore

/// The pages a verification link leads to, at `verification.link_path`.
///
/// `GET ?t=…` only shows a page with a "Confirm" button: opening the link changes nothing, so mail
/// scanners and link previews that fetch it cannot use it up, and the visitor's session cookie
/// (SameSite=Strict, so absent on a navigation from a mail client) arrives with the button's
/// same-origin POST. `POST` (form `t=…`) checks the link against that session, uses it once,
/// marks the session verified and redirects (303) to `verification.redirect`. Every refusal is a
/// short HTML page saying what to do next, never a stack of JSON, and never the address.
enum VerificationPages {
    static func answer(_ req: InboundRequest, runtime: VerificationRuntime) -> Response {
        if req.head.method == .GET {
            let token = QueryString.parse(req.query)?.first(where: { $0.name == "t" })?.value ?? ""
            if case .failure(let refusal) = runtime.services.links.check(token, session: nil, nowMillis: NIODeadline.wallClockMillis),
               refusal != .otherSession {
                return refused(refusal, req)
            }
            return page(200, title: "Confirm your email address", body: """
                <p>Press the button to confirm your address in this browser.</p>
                <form method="post" action="\(HTMLText.escape(runtime.config.linkPath))">
                <input type="hidden" name="t" value="\(HTMLText.escape(token))">
                <button type="submit" id="confirm">Confirm my address</button>
                </form>
                """, by: nil)
        }
        let body = req.body.map { Array($0.readableBytesView) } ?? []
        let token = FormBody.parse(body)?.first(where: { $0.0 == "t" })?.1 ?? ""
        let services = runtime.services
        let cookie = req.head.headers.cookie(services.pageTokens.config.cookie)
        let session = services.pageTokens.isIssuedSession(cookie) ? cookie : nil
        let now = NIODeadline.wallClockMillis
        let outcome = services.links.check(token, session: session, nowMillis: now).flatMap { link in
            services.sessions.confirm(link, session: session!, verifiedFor: runtime.config.verifiedFor,
                                      linkTTLMillis: services.links.ttlMillis, nowMillis: now)
        }
        switch outcome {
        case .failure(let refusal):
            return refused(refusal, req)
        case .success(let email):
            runtime.confirmed.add(1, ordering: .relaxed)
            if services.domainBan(email.domain, nowMillis: now) != nil {
                return page(403, title: "This address cannot be used", body: "<p>Addresses of this domain are not accepted right now. Go back and use another address.</p>",
                            by: .stage(.verification), refused: true)
            }
            var response = Response.served(303, contentType: "text/html; charset=utf-8",
                                           body: ByteBuffer(string: "<!doctype html><title>Confirmed</title><p>Confirmed.</p>"),
                                           headers: [("Location", runtime.config.redirect)], by: .stage(.verification))
            response.isPage = true
            return response
        }
    }

    static func refused(_ refusal: VerificationLinks.Refusal, _ req: InboundRequest) -> Response {
        let (status, title, text): (Int, String, String) = switch refusal {
        case .forged: (400, "This link is not valid", "Copy the whole link from the message, or ask for a new one.")
        case .expired: (410, "This link has expired", "Go back to the page and ask for a new link.")
        case .used: (410, "This link was already used", "Each link works once. If this browser is not confirmed yet, ask for a new link.")
        case .otherSession: (403, "Open this link in the browser that asked for it",
                             "The link works only in the browser where the address was entered. Open it there, or ask for a new link here.")
        case .full: (503, "Please try again shortly", "The confirmation could not be recorded right now.")
        }
        var response = page(status, title: title, body: "<p>\(text)</p>", by: .stage(.verification), refused: true)
        response.note = "verification link refused: \(refusal.rawValue)"
        return response
    }

    private static func page(_ status: Int, title: String, body: String, by decider: Decider?, refused: Bool = false) -> Response {
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title)</title></head>
            <body><main><h1>\(title)</h1>
            \(body)
            </main></body></html>
            """
        var response = Response.served(status, contentType: "text/html; charset=utf-8", body: ByteBuffer(string: html), by: decider)
        response.isPage = true
        response.refused = refused
        return response
    }
}
