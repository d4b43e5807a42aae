/// What policies see of a client request. Built once by the data plane, handed down the chain,
/// and filled in as policies learn things (validated parameters).
public struct RequestView: Sendable {
    public var method: String
    /// The path part of the request target, still percent-encoded.
    public var path: Substring
    /// The raw query string (after `?`), still percent-encoded; empty when there is none.
    public var query: Substring
    /// Header fields as received, in order.
    public var headers: [(name: String, value: String)]
    /// The request body, when the request had one.
    public var body: [UInt8]
    /// The client's address as the gateway resolved it.
    public var clientAddress: String
    /// Path parameters captured by the route pattern, still percent-encoded.
    public var pathParams: [(name: String, value: Substring)]
    /// Parameters that passed validation, in declaration order; set by the validation policy.
    public var params: [ValidatedParam] = []

    public init(method: String, path: Substring, query: Substring, headers: [(name: String, value: String)],
                body: [UInt8] = [], clientAddress: String, pathParams: [(name: String, value: Substring)] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.clientAddress = clientAddress
        self.pathParams = pathParams
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        for (n, v) in headers where n.utf8.count == name.utf8.count && n.lowercased() == name.lowercased() {
            return v
        }
        return nil
    }
}
