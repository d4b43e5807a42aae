import Foundation

/// What policies see of a client request. Built once by the data plane, handed down the chain,
/// and filled in as policies learn things (validated parameters).
public struct RequestView: Sendable {
    public var method: String
    /// The path part of the request target, still percent-encoded.
    public var path: Substring
    /// The raw query string (after `?`), still percent-encoded; empty when there is none.
    public var query: Substring
    /// Header fields as received, in order.
    public var headers: any HeaderFields
    /// The request body, when the request had one.
    public var body: [UInt8]
    /// The client's address as the gateway resolved it.
    public var clientAddress: String
    /// Path parameters captured by the route pattern, still percent-encoded.
    public var pathParams: [(name: String, value: Substring)]
    /// Parameters that passed validation, in declaration order; set by the validation policy.
    public var params: [ValidatedParam] = []
    /// The client as limits count it (resolved through trusted proxies, IPv6 grouped by prefix).
    public var clientKey: ClientKey
    /// Monotonic time of the request, in nanoseconds; policies use it instead of reading a clock.
    public var now: Int64
    /// Headers policies add to the response, whatever it turns out to be (e.g. CORS).
    public var responseHeaders: [(String, String)] = []
    /// The route's limits as they let this request through: `RateLimit-Policy` and `RateLimit` of
    /// its response, whatever it turns out to be (unless the response carries its own).
    public var rateLimit: RateLimitState?
    /// Resources held while the request is alive (throttle slots); released when it is dropped.
    public var holds: [Hold] = []
    /// Wall-clock time in Unix milliseconds (token ages, challenge expiry); the data plane passes the
    /// time it read once, tests may leave it to the current time.
    public var wallMillis: Int64
    /// What shadow-mode policies would have refused (`policy:code:reason`), for the log.
    public var shadowed: [String] = []
    /// The page-token session cookie, set by ``Route/evaluate(_:from:)`` only when the gateway issued
    /// it (its MAC verifies) and the route counts something per session; nil otherwise.
    public var session: String?
    /// Who is calling, set by the route's `auth` policy once a credential verified; nil before and
    /// on routes without `auth`.
    public var caller: Caller?
    /// The address a request stands for: on a `send_verification` route the one it sent, on a
    /// `verified_email` route the one its session confirmed (hash and domain only); nil otherwise.
    public var email: VerifiedEmail?
    /// On a `send_verification` route, the checked address to send the link to.
    public var emailAddress: EmailAddress?
    /// Why a presented credential was refused (for the log only, never the client).
    public var authFailure: String?

    public init(method: String, path: Substring, query: Substring, headers: [(name: String, value: String)],
                body: [UInt8] = [], clientAddress: String, pathParams: [(name: String, value: Substring)] = [],
                clientKey: ClientKey? = nil, now: Int64 = 0, wallMillis: Int64? = nil) {
        self.init(method: method, path: path, query: query, fields: HeaderList(headers), body: body, clientAddress: clientAddress,
                  pathParams: pathParams, clientKey: clientKey, now: now, wallMillis: wallMillis)
    }

    public init(method: String, path: Substring, query: Substring, fields headers: any HeaderFields,
                body: [UInt8] = [], clientAddress: String, pathParams: [(name: String, value: Substring)] = [],
                clientKey: ClientKey? = nil, now: Int64 = 0, wallMillis: Int64? = nil) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.clientAddress = clientAddress
        self.pathParams = pathParams
        self.clientKey = clientKey ?? ClientKey(clientAddress) ?? ClientKey(high: 0, low: 0)
        self.now = now
        self.wallMillis = wallMillis ?? Int64(Date().timeIntervalSince1970 * 1000)
    }

    /// The value of cookie `name` from the `Cookie` header(s).
    public func cookie(_ name: String) -> String? {
        headers.cookie(name)
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first(name)
    }
}
