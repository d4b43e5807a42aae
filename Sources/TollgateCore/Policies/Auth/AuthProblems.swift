/// The answers of authentication and authorization. RFC 6750 §3: a request without credentials
/// gets a bare challenge, a bad token `error="invalid_token"`, a missing scope 403 with
/// `error="insufficient_scope"`. None of them says which check failed: that goes to the log.
extension Problem {
    static func unauthenticated(bearer: Bool) -> Problem {
        Problem(status: 401, code: "unauthenticated", title: "Unauthorized",
                detail: "This endpoint needs credentials.",
                headers: [("WWW-Authenticate", bearer ? "Bearer realm=\"tollgate\"" : "ApiKey realm=\"tollgate\"")])
    }

    static func invalidCredentials(bearer: Bool) -> Problem {
        Problem(status: 401, code: "invalid-credentials", title: "Unauthorized",
                detail: "The credentials are not valid.",
                headers: [("WWW-Authenticate", bearer ? "Bearer realm=\"tollgate\", error=\"invalid_token\"" : "ApiKey realm=\"tollgate\"")])
    }

    /// A key of ours past its expiry or use limit, with how to get it reactivated.
    static func keyLapsed(_ status: APIKeyRecord.Status, help: String?, bearer: Bool) -> Problem {
        let what = status == .exhausted ? "has been used as many times as it may be" : "has expired"
        return Problem(status: 401, code: "key-expired", title: "Unauthorized",
                       detail: "This key \(what). " + (help ?? "Ask the operator to reactivate it."),
                       headers: [("WWW-Authenticate", bearer ? "Bearer realm=\"tollgate\", error=\"invalid_token\"" : "ApiKey realm=\"tollgate\"")])
    }

    static func insufficientScope(_ scopes: [String]) -> Problem {
        Problem(status: 403, code: "insufficient-scope", title: "Forbidden",
                detail: "The credentials do not grant what this endpoint needs.",
                extensions: [JSONMember("required_scopes", .array(scopes.map { .string($0) }))],
                headers: [("WWW-Authenticate", "Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"\(scopes.joined(separator: " "))\"")])
    }

    public static let forbidden = Problem(status: 403, code: "forbidden", title: "Forbidden",
                                          detail: "The caller may not do this.")
}
