import NIOCore
import TollgateCore

/// Who may be served at all, decided from the request head before anything else runs: the
/// gateway's address rules and bans (``gateway(_:peer:loop:)``), then the route's address and
/// country rules (``route(_:_:loop:)``). Each refusal is a 403 problem decided by the `ban` or
/// `access` stage; a banned client's connection is closed after the answer (unless it is a trusted
/// proxy, whose connection carries other clients too), so a banned flood pays for every reconnect.
enum AccessCheck {
    static func gateway(_ req: InboundRequest, peer: Peer, loop: LoopContext) -> Response? {
        let state = req.state
        let whole = req.client.whole
        if !state.config.addresses.isEmpty, !state.config.addresses.admits(whole) {
            return refusal(.addressDenied, by: .access, req, close: !peer.isTrustedProxy, note: "gateway address rules")
        }
        let board = state.access.board
        if board.hasAddressBans, let ban = loop.bannedAddress(whole) {
            return refusal(.banned, by: .ban, req, close: !peer.isTrustedProxy, note: "ban \(ban.id) \(ban.kind.rawValue) \(ban.value)")
        }
        if board.hasSessionBans, let cookie = state.config.pageTokens?.cookie, let session = req.head.headers.cookie(cookie),
           let ban = board.ban(session: session, now: Int64(NIODeadline.wallClockSeconds)) {
            return refusal(.banned, by: .ban, req, close: !peer.isTrustedProxy, note: "ban \(ban.id) session")
        }
        return nil
    }

    /// Takes the `Route` (a reference), not its `RouteConfig`: passing the config struct copied all
    /// of it on every request (measured: ~0.7 % of CPU on the proxied path).
    static func route(_ route: Route, _ req: InboundRequest, loop: LoopContext) -> Response? {
        if let rules = route.config.addresses, !rules.admits(req.client.whole) {
            return refusal(.addressDenied, by: .access, req, close: false, note: "route address rules")
        }
        if let rules = route.config.countries {
            let country = req.country(req.state.geo)
            if !rules.admits(country) {
                return refusal(.countryDenied, by: .access, req, close: false, note: "country \(country ?? "unknown")")
            }
        }
        return nil
    }

    private static func refusal(_ problem: Problem, by stage: Stage, _ req: InboundRequest, close: Bool, note: String) -> Response {
        var response = Response.problem(problem, requestID: req.requestID, by: .stage(stage), note: note)
        response.closeConnection = close
        return response
    }
}

extension LoopContext {
    /// The ban on `address` from this loop's copy of the ban list, refreshed when the board moved:
    /// one atomic load and one hash lookup per distinct prefix length, no lock.
    func bannedAddress(_ address: ClientKey) -> Ban? {
        let board = state.access.board
        let generation = board.generation
        if generation != bans.generation { bans = (generation, board.current) }
        return bans.list.ban(address: address, now: Int64(NIODeadline.wallClockSeconds))
    }
}
