/// The outcome of a reload: applied (with the config's warnings) or refused (with every reason;
/// nothing changed).
public enum ReloadOutcome: Sendable {
    case applied(warnings: [ConfigIssue])
    case refused(errors: [ConfigIssue])

    public var isApplied: Bool { if case .applied = self { true } else { false } }
}

/// What a reload may change. Everything but the sockets, the threads and the store: those are
/// bound at start, so a change to them refuses the whole reload (restart to apply it) rather than
/// applying the rest and leaving the operator to guess which half is in force.
public enum ReloadPlan {
    /// Why `new` cannot be applied to a gateway running `old` without a restart (empty: it can).
    public static func restartOnly(_ old: GatewayConfig, _ new: GatewayConfig) -> [ConfigIssue] {
        var out: [ConfigIssue] = []
        func refuse(_ path: String, _ what: String) {
            out.append(ConfigIssue(severity: .error, path: path, line: nil, message: "\(what) changed: a restart is needed to apply it; nothing was reloaded"))
        }
        if old.listen != new.listen { refuse("listen", "the listener's address") }
        if old.admin != new.admin { refuse("admin", "the admin listener's address") }
        if old.workers != new.workers { refuse("workers", "the number of event loops") }
        if old.store != new.store { refuse("store", "the store") }
        if (old.tls == nil) != (new.tls == nil) { refuse("tls", "whether the listener uses TLS") }
        if old.tls?.redirectHTTP != new.tls?.redirectHTTP { refuse("tls.redirect_http", "the HTTP redirect listener's address") }
        return out
    }
}
