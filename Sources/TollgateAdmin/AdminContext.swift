import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import TollgateCore
import TollgateStore

/// Per-request state of the admin API: the caller's address, the admin token once verified, and a
/// request id that every problem carries.
public struct AdminRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: String
    public var token: AdminTokenRecord?
    public let requestID: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress ?? "-"
        requestID = "adm-" + Base64URL.encode((0..<9).map { _ in UInt8.random(in: 0...255) })
    }

    /// Throws 403 unless the token carries `scope` (401 without a token is the middleware's).
    public func require(_ scope: AdminTokenRecord.Scope) throws {
        guard let token else { throw AdminProblem.unauthenticated }
        guard token.scopes.contains(scope) else { throw AdminProblem.forbidden(scope) }
    }
}

/// Admin tokens are 130-bit random (`tg_adm_…`), so a plain SHA-256 is enough to store them: unlike
/// a password there is nothing to guess offline.
public enum AdminTokenHash {
    public static func of(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }
}

/// An admin API error as RFC 9457 problem+json with the request id; never the token or a store detail.
public struct AdminProblem: HTTPResponseError {
    public let status: HTTPResponse.Status
    public let code: String
    public let detail: String
    public var errors: [JSONMember] = []
    public var headers: HTTPFields = [:]

    public static let unauthenticated = AdminProblem(status: .unauthorized, code: "unauthenticated",
                                                     detail: "The admin API needs an admin token: Authorization: Bearer tg_adm_…",
                                                     headers: [.wwwAuthenticate: "Bearer realm=\"tollgate-admin\""])
    public static let invalidToken = AdminProblem(status: .unauthorized, code: "invalid-credentials", detail: "The admin token is not valid.",
                                                  headers: [.wwwAuthenticate: "Bearer realm=\"tollgate-admin\", error=\"invalid_token\""])
    public static func forbidden(_ scope: AdminTokenRecord.Scope) -> AdminProblem {
        AdminProblem(status: .forbidden, code: "insufficient-scope", detail: "This needs an admin token with the \(scope.rawValue) scope.",
                     headers: [.wwwAuthenticate: "Bearer realm=\"tollgate-admin\", error=\"insufficient_scope\", scope=\"\(scope.rawValue)\""])
    }
    public static func notFound(_ what: String) -> AdminProblem {
        AdminProblem(status: .notFound, code: "not-found", detail: "No such \(what).")
    }
    public static func invalid(_ fields: [(String, String)], code: String = "validation",
                               detail: String = "The request body does not follow the rules.") -> AdminProblem {
        var p = AdminProblem(status: .unprocessableContent, code: code, detail: detail)
        p.errors = [JSONMember("errors", .array(fields.map { .object([JSONMember("field", .string($0.0)), JSONMember("detail", .string($0.1))]) }))]
        return p
    }
    public static let unavailable = AdminProblem(status: .serviceUnavailable, code: "store-unavailable",
                                                 detail: "The store cannot be reached right now; try again shortly.")

    public init(status: HTTPResponse.Status, code: String, detail: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let id = (context as? AdminRequestContext)?.requestID ?? "-"
        let problem = Problem(status: Int(status.code), code: code, title: status.reasonPhrase, detail: detail, extensions: errors)
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Request-ID")!] = id
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: problem.json(requestID: id))))
    }
}

/// Verifies `Authorization: Bearer tg_adm_…` against the store on every request (admin traffic is
/// small, and a revoked token stops at once); sets ``AdminRequestContext/token``.
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext
    let store: (any DurableStore)?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let store else { throw AdminProblem.unavailable }
        guard let header = request.headers[.authorization] else { throw AdminProblem.unauthenticated }
        let value = Substring(header)
        guard AuthPolicy.hasBearerScheme(value.utf8), let token = AdminTokenRecord.verify(value.dropFirst(7), in: store) else {
            throw AdminProblem.invalidToken
        }
        var context = context
        context.token = token
        return try await next(request, context)
    }
}

/// The admin API's paths and their methods, for `405` + `Allow` (Hummingbird answers an unrouted
/// method with 404). Kept beside the router; the OpenAPI test fails when they drift apart.
enum AdminPaths {
    static let table: [(pattern: [Substring], methods: [String])] = [
        ("/livez", ["GET"]), ("/readyz", ["GET"]), ("/metrics", ["GET"]), ("/openapi.json", ["GET"]),
        ("/v1/routes", ["GET"]), ("/v1/routes/:name/pause", ["POST"]), ("/v1/routes/:name/resume", ["POST"]),
        ("/v1/budgets", ["GET"]), ("/v1/usage", ["GET"]), ("/v1/keys", ["GET", "POST"]), ("/v1/keys/:id", ["GET"]),
        ("/v1/keys/:id/revoke", ["POST"]), ("/v1/keys/:id/rotate", ["POST"]), ("/v1/keys/:id/reactivate", ["POST"]), ("/v1/clients", ["GET", "POST"]),
        ("/v1/clients/:id/revoke", ["POST"]), ("/v1/audit", ["GET"]), ("/v1/bans", ["GET", "POST"]), ("/v1/bans/:id", ["DELETE"]),
        ("/v1/config/validate", ["POST"]), ("/v1/config/reload", ["POST"]), ("/v1/signups", ["POST"]),
    ].map { ($0.0.split(separator: "/"), $0.1) }

    static func methods(for path: String) -> [String]? {
        let parts = path.split(separator: "/")
        return table.first { entry in
            entry.pattern.count == parts.count && zip(entry.pattern, parts).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
        }?.methods
    }
}

/// Adds the request id and `Cache-Control: no-store` to every answer, and turns an error that is
/// not already a problem into a generic 500 (logged, never shown).
struct AdminErrorMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            response.headers[HTTPField.Name("X-Request-ID")!] = context.requestID
            if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
            return response
        } catch let problem as AdminProblem {
            return try problem.response(from: request, context: context)
        } catch let error as HTTPResponseError where error.status == .notFound {
            if let allowed = AdminPaths.methods(for: request.uri.path), !allowed.contains(request.method.rawValue) {
                return try AdminProblem(status: .methodNotAllowed, code: "method-not-allowed", detail: "This resource does not take that method.",
                                        headers: [.allow: allowed.joined(separator: ", ")]).response(from: request, context: context)
            }
            return try AdminProblem.notFound("resource").response(from: request, context: context)
        } catch let error as HTTPResponseError {
            let problem = AdminProblem(status: error.status, code: error.status == .notFound ? "not-found" : "bad-request",
                                       detail: error.status == .notFound ? "No such resource." : "The request cannot be handled.")
            return try problem.response(from: request, context: context)
        } catch {
            context.logger.error("admin API failure", metadata: ["error": "\(error)", "request_id": "\(context.requestID)"])
            return try AdminProblem(status: .internalServerError, code: "internal", detail: "Something went wrong; it has been logged.")
                .response(from: request, context: context)
        }
    }
}
