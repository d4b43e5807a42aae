/// What an `issue_client_key` route hands out: a per-install key (`tg_inst_`) that may call only
/// `routes`, lapses after `lifetime` or `maxUses` (whichever comes first), and can be reactivated
/// by an operator (`tollgate keys reactivate`). Protect the route like any costly one: page token,
/// challenge, per-address limits.
public struct ClientKeyGrant: Sendable, Equatable {
    public var routes: [String]
    public var scopes: [String] = []
    public var lifetime: Duration?
    public var maxUses: Int64?

    public init(routes: [String], scopes: [String] = [], lifetime: Duration? = nil, maxUses: Int64? = nil) {
        self.routes = routes
        self.scopes = scopes
        self.lifetime = lifetime
        self.maxUses = maxUses
    }
}
