import NIOCore
import NIOHTTP1
import TollgateCore

/// A client request as received: its head, where it goes, who sent it, and its body so far. A class:
/// it is handed along the request's whole life and must not be copied at each step.
final class InboundRequest {
    let head: HTTPRequestHead
    /// The config generation the request is served under, from its head to its answer.
    let state: GatewayState
    let requestID: String
    let started: NIODeadline
    /// The client as limits count it and as the log shows it, resolved once (through trusted proxies).
    let client: ResolvedClient
    var keepAlive: Bool
    let secure: Bool
    /// Arrived as an HTTP/2 stream.
    var overHTTP2 = false
    var path: Substring = ""
    var query: Substring = ""
    var route: Route?
    var pathParams: [(name: String, value: Substring)] = []
    /// The answer, when it was decided before the body (unknown route, wrong method, bad target,
    /// shutting down).
    var early: Response?
    /// A gateway endpoint (page token, browser snippet, CORS preflight) instead of a route.
    var builtin: BuiltinEndpoint?
    var maxBody = 64 * 1024
    var bodyBytes = 0
    var body: ByteBuffer?
    /// The client's country, looked up once when a rule or the log first asks.
    private var countryLookup: String??

    init(head: HTTPRequestHead, state: GatewayState, requestID: String, client: ResolvedClient, keepAlive: Bool, secure: Bool,
         started: NIODeadline = .now()) {
        self.head = head
        self.state = state
        self.requestID = requestID
        self.started = started
        self.client = client
        self.keepAlive = keepAlive
        self.secure = secure
    }

    /// The client's country code from `geo` (nil: no database, or the address is not in it).
    func country(_ geo: GeoDatabase?) -> String? {
        if let known = countryLookup { return known }
        let found = geo?.country(of: client.whole)
        countryLookup = .some(found)
        return found
    }
}

/// The client behind a request: its limit key (IPv6 grouped by prefix), its whole address (what
/// bans and address rules match) and its address for logs.
struct ResolvedClient {
    let key: ClientKey
    let whole: ClientKey
    let address: String
}

/// The TCP peer of a connection, and how to find the client behind it.
struct Peer {
    let address: String
    let bytes: [UInt8]
    let key: ClientKey
    /// The whole address (`/128`, IPv4 mapped).
    let whole: ClientKey
    let isTrustedProxy: Bool

    static let unknown = Peer(address: "unknown", bytes: [], key: ClientKey(high: 0, low: 0), isTrustedProxy: false)

    init(address: String, bytes: [UInt8], key: ClientKey, isTrustedProxy: Bool) {
        self.address = address
        self.bytes = bytes
        self.key = key
        self.whole = ClientKey(address: bytes) ?? key
        self.isTrustedProxy = isTrustedProxy
    }

    init(_ remote: SocketAddress?, state: GatewayState) {
        guard let address = remote?.ipAddress else {
            self = .unknown
            return
        }
        let bytes = IPAddress.parse(address) ?? []
        self.init(address: address, bytes: bytes, key: state.config.clientIdentity.key(for: bytes),
                  isTrustedProxy: state.isTrustedProxy(bytes))
    }

    /// The peer itself, or the rightmost untrusted hop when the peer is a trusted proxy.
    func client(_ headers: HTTPHeaders, identity: ClientIdentity) -> ResolvedClient {
        guard isTrustedProxy else { return ResolvedClient(key: key, whole: whole, address: address) }
        let resolved = identity.resolve(peer: bytes, fields: headers)
        let whole = ClientKey(address: resolved)
        return ResolvedClient(key: identity.key(for: resolved), whole: whole ?? key, address: whole?.description ?? address)
    }
}

/// Turns a request head into an ``InboundRequest``: request id, client, route, and any answer that
/// can be decided before the body arrives.
enum RequestIntake {
    /// `now`: when the head was complete (the caller's clock read, if it made one).
    static func begin(_ head: HTTPRequestHead, peer: Peer, secureListener: Bool, loop: LoopContext,
                      at now: NIODeadline = .now()) -> InboundRequest {
        let state = loop.state
        var id = head.headers.first(name: "x-request-id") ?? ""
        if !RequestIDGenerator.isAcceptable(id) { id = loop.requestIDs.next() }
        let secure = secureListener || (peer.isTrustedProxy && head.headers.first(name: "x-forwarded-proto")?.lowercased() == "https")
        let req = InboundRequest(head: head, state: state, requestID: id, client: peer.client(head.headers, identity: state.config.clientIdentity),
                                 keepAlive: RequestFraming.keepsConnection(head) && !loop.draining,
                                 secure: secure, started: now)
        if let (problem, note) = RequestFraming.violation(head) {
            var early = Response.problem(problem, requestID: id, by: .stage(.http), note: note)
            early.closeConnection = true
            req.early = early
            return req
        }
        if let refusal = AccessCheck.gateway(req, peer: peer, loop: loop) {
            req.early = refusal
            return req
        }
        var uri = head.uri[...]
        if uri.utf8.first != UInt8(ascii: "/") {
            if let origin = RequestFraming.originForm(ofAbsolute: head.uri) {
                uri = origin  // absolute-form: routed by its path; its authority picks nothing
            } else {
                req.early = .problem(.badRequest, requestID: id, by: .stage(.http), note: "request target is not origin- or absolute-form")
                return req
            }
        }
        let q = uri.utf8.firstIndex(of: UInt8(ascii: "?"))  // by byte: a `Character` search cost 0.9 %
        req.path = uri[..<(q ?? uri.endIndex)]
        req.query = q.map { uri[uri.utf8.index(after: $0)...] } ?? ""

        if let builtin = BuiltinEndpoint.match(head: head, path: req.path, state: state) {
            req.builtin = builtin
        } else {
            switch state.routes.match(method: head.method.rawValue, path: req.path) {
            case .found(let route, let pathParams):
                req.route = route
                req.pathParams = pathParams
                req.maxBody = route.config.maxBodyBytes
                if let refusal = AccessCheck.route(route, req, loop: loop) {
                    req.early = refusal
                    return req
                }
            case .methodNotAllowed(let allow):
                req.early = .problem(.methodNotAllowed(allow: allow), requestID: id, by: .stage(.routing))
            case .notFound:
                req.early = .problem(.notFound, requestID: id, by: .stage(.routing))
            }
        }
        if loop.draining {
            // Arrived after shutdown began (pipelined behind a request still being answered).
            req.early = .problem(.shuttingDown, requestID: id, by: .stage(.shutdown))
        }
        return req
    }
}
