import Foundation
import HTTPTypes
import Hummingbird
import TollgateCore
import TollgateStore

/// The operator's console at `/console` on the admin listener: a login form, then a page that
/// polls `/console/api/overview` every 2 s and draws it (charts are SVG drawn by the page's own
/// script; no CDN, so it works offline). Writes (ban, pause, resume) need the session cookie, an
/// `Origin` equal to the page's own, a JSON body and a token with the `write` scope; each is audited.
/// Every answer carries a strict CSP; the page puts every value it shows into text nodes, never
/// into markup.
extension AdminAPI {
    static let consoleHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        HTTPField.Name("X-Frame-Options")!: "DENY", HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "same-origin",  // "no-referrer" would make the browser send `Origin: null` on the login form
    ]

    func addConsoleRoutes(_ router: Router<AdminRequestContext>) {
        let sessions = self.sessions
        router.get("/console") { request, _ in
            let loggedIn = sessionToken(request) != nil
            return asset(loggedIn ? ConsoleAssets.dashboard : ConsoleAssets.login, type: "text/html; charset=utf-8")
        }
        router.get("/console/console.js") { _, _ in asset(ConsoleAssets.script, type: "text/javascript; charset=utf-8") }
        router.get("/console/console.css") { _, _ in asset(ConsoleAssets.style, type: "text/css; charset=utf-8") }
        router.post("/console/login") { request, context in
            try checkOrigin(request)
            var request = request
            let body = try await request.collectBody(upTo: 4096)
            let form = QueryString.parse(Substring(String(decoding: body.readableBytesView, as: UTF8.self))) ?? []
            guard let store, let text = form.first(where: { $0.name == "token" })?.value,
                  let token = AdminTokenRecord.verify(Substring(text), in: store), token.scopes.contains(.read) else {
                logger.notice("console login refused", metadata: ["address": "\(context.remoteAddress)"])
                return redirect("/console?failed")
            }
            let id = sessions.open(for: token)
            var response = redirect("/console")
            response.headers[.setCookie] = "\(ConsoleSessions.cookie)=\(id); Path=/console; HttpOnly; SameSite=Strict; Max-Age=\(Int(ConsoleSessions.lifetime))"
            logger.notice("console login", metadata: ["actor": "\(token.id) (\(token.name))", "address": "\(context.remoteAddress)"])
            return response
        }
        router.post("/console/logout") { request, _ in
            try checkOrigin(request)
            if let id = request.cookies[ConsoleSessions.cookie]?.value { sessions.close(id) }
            var response = redirect("/console")
            response.headers[.setCookie] = "\(ConsoleSessions.cookie)=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"
            return response
        }
        router.get("/console/api/overview") { request, _ in
            guard sessionToken(request) != nil else { throw AdminProblem.unauthenticated }
            return json(try await overview(), headers: Self.consoleHeaders)
        }
        router.post("/console/api/bans") { request, context in
            var context = context
            context.token = try consoleWriter(request)
            return try await addBan(request, context)
        }
        router.post("/console/api/routes/:name/pause") { request, context in
            var context = context
            context.token = try consoleWriter(request)
            return try setPaused(context, true)
        }
        router.post("/console/api/routes/:name/resume") { request, context in
            var context = context
            context.token = try consoleWriter(request)
            return try setPaused(context, false)
        }
    }

    func sessionToken(_ request: Request) -> AdminTokenRecord? {
        guard let store, let id = request.cookies[ConsoleSessions.cookie]?.value else { return nil }
        return sessions.token(for: id, store: store)
    }

    /// The token behind a console write, after the anti-CSRF checks: the session cookie (sent by the
    /// browser only to same-site requests), an `Origin` equal to this listener's, a JSON body.
    func consoleWriter(_ request: Request) throws -> AdminTokenRecord {
        try checkOrigin(request)
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
            throw AdminProblem(status: .unsupportedMediaType, code: "unsupported-media-type", detail: "Console writes are JSON.")
        }
        guard let token = sessionToken(request) else { throw AdminProblem.unauthenticated }
        return token
    }

    /// Refuses a write whose `Origin` is missing or is not the page's own (`http://` + Host).
    func checkOrigin(_ request: Request) throws {
        guard let origin = request.headers[.origin], let host = request.head.authority, origin == "http://" + host || origin == "https://" + host else {
            throw AdminProblem(status: .forbidden, code: "cross-origin", detail: "Console writes must come from the console's own page.")
        }
    }
}

private func asset(_ text: String, type: String) -> Response {
    var headers = AdminAPI.consoleHeaders
    headers[.contentType] = type
    return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
}

private func redirect(_ location: String) -> Response {
    var headers = AdminAPI.consoleHeaders
    headers[.location] = location
    return Response(status: .seeOther, headers: headers)
}
