import PostgresNIO

/// The PostgreSQL schema, as named migrations applied in order, each in its own transaction and
/// recorded in `tollgate_migrations`; a migration never changes once released. Gateways that start
/// at the same moment take an advisory lock first, so exactly one applies each step and the
/// others find it done.
///
/// The tables are those of the SQLite store (same names, same meaning); times are Unix seconds
/// (`_ms`: milliseconds), money is micro-units in `BIGINT`.
enum PostgresSchema {
    /// `pg_advisory_lock` key: "tollgate" in ASCII, so no other application's lock is taken by accident.
    static let lockKey: Int64 = 0x746f_6c6c_6761_7465

    static let migrations: [(name: String, statements: [String])] = [
        ("v1: ledger, counters, journals, identity, admin, bans, verification", [
            """
            CREATE TABLE ledger (
                id BIGSERIAL PRIMARY KEY,
                request_id TEXT NOT NULL,
                route TEXT NOT NULL,
                client TEXT NOT NULL,
                session TEXT NOT NULL DEFAULT '',
                api_key TEXT NOT NULL DEFAULT '',
                subject TEXT NOT NULL DEFAULT '',
                email TEXT NOT NULL DEFAULT '',
                email_domain TEXT NOT NULL DEFAULT '',
                reserved_micros BIGINT NOT NULL,
                cost_micros BIGINT,
                state TEXT NOT NULL DEFAULT 'reserved' CHECK (state IN ('reserved', 'settled', 'released')),
                status INTEGER,
                created_at BIGINT NOT NULL,
                settled_at BIGINT
            )
            """,
            "CREATE INDEX ledger_created_at ON ledger (created_at)",
            """
            CREATE TABLE usage_counters (
                day TEXT NOT NULL, route TEXT NOT NULL, event TEXT NOT NULL,
                count BIGINT NOT NULL, saved_micros BIGINT NOT NULL,
                PRIMARY KEY (day, route, event)
            )
            """,
            """
            CREATE TABLE refusals (
                day TEXT NOT NULL, route TEXT NOT NULL, client TEXT NOT NULL, reason TEXT NOT NULL, count BIGINT NOT NULL,
                PRIMARY KEY (day, route, client, reason)
            )
            """,
            "CREATE TABLE pauses (route TEXT PRIMARY KEY, paused_at BIGINT NOT NULL)",
            """
            CREATE TABLE alerts_fired (
                budget TEXT NOT NULL, scope TEXT NOT NULL, period_start BIGINT NOT NULL, threshold INTEGER NOT NULL,
                fired_at BIGINT NOT NULL,
                PRIMARY KEY (budget, scope, period_start, threshold)
            )
            """,
            "CREATE TABLE token_uses (nonce BYTEA PRIMARY KEY, uses INTEGER NOT NULL, expires_ms BIGINT NOT NULL)",
            "CREATE INDEX token_uses_expires ON token_uses (expires_ms)",
            "CREATE TABLE solved_challenges (challenge TEXT PRIMARY KEY, expires_s BIGINT NOT NULL)",
            "CREATE INDEX solved_challenges_expires ON solved_challenges (expires_s)",
            """
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('api', 'install')),
                name TEXT NOT NULL, owner TEXT NOT NULL, scopes TEXT NOT NULL, routes TEXT NOT NULL,
                hash BYTEA NOT NULL,
                created_at BIGINT NOT NULL, expires_at BIGINT, max_uses BIGINT,
                uses BIGINT NOT NULL DEFAULT 0, last_used_at BIGINT, revoked_at BIGINT, replaced_by TEXT,
                version BIGINT NOT NULL
            )
            """,
            "CREATE INDEX api_keys_version ON api_keys (version)",
            """
            CREATE TABLE oauth_clients (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_hash BYTEA NOT NULL, scopes TEXT NOT NULL,
                created_at BIGINT NOT NULL, revoked_at BIGINT, version BIGINT NOT NULL
            )
            """,
            "CREATE INDEX oauth_clients_version ON oauth_clients (version)",
            """
            CREATE TABLE admin_tokens (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, scopes TEXT NOT NULL, hash BYTEA NOT NULL,
                created_at BIGINT NOT NULL, revoked_at BIGINT
            )
            """,
            """
            CREATE TABLE audit (
                id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                target TEXT NOT NULL, address TEXT NOT NULL, outcome TEXT NOT NULL
            )
            """,
            "CREATE INDEX audit_at ON audit (at)",
            """
            CREATE TABLE bans (
                id BIGSERIAL PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('address', 'prefix', 'key', 'session', 'domain')),
                value TEXT NOT NULL, reason TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT,
                created_by TEXT NOT NULL, removed_at BIGINT, version BIGINT NOT NULL
            )
            """,
            "CREATE INDEX bans_active ON bans (removed_at, expires_at)",
            """
            CREATE TABLE verification_confirmations (
                nonce BYTEA PRIMARY KEY, link_expires_ms BIGINT NOT NULL, session_tag TEXT NOT NULL,
                address_hash TEXT NOT NULL, domain TEXT NOT NULL, verified_until_ms BIGINT NOT NULL,
                confirmed_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX verification_confirmations_expiry ON verification_confirmations (link_expires_ms, verified_until_ms)",
            """
            CREATE TABLE verification_requests (
                id BIGSERIAL PRIMARY KEY, address_hash TEXT NOT NULL, domain TEXT NOT NULL, session_tag TEXT NOT NULL,
                requested_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX verification_requests_domain ON verification_requests (domain, requested_at)",
        ]),
        ("v2: the order confirmations were committed in, for gateways that follow each other", [
            "ALTER TABLE verification_confirmations ADD COLUMN seq BIGSERIAL",
            "CREATE INDEX verification_confirmations_seq ON verification_confirmations (seq)",
        ]),
        ("v3: budget totals and rate-limit usage shared by the gateways", [
            """
            CREATE TABLE budget_spend (
                budget TEXT NOT NULL, scope TEXT NOT NULL, slot BIGINT NOT NULL, micros BIGINT NOT NULL,
                PRIMARY KEY (budget, scope, slot)
            )
            """,
            "ALTER TABLE ledger ADD COLUMN charges TEXT NOT NULL DEFAULT ''",
            """
            CREATE TABLE rate_events (
                id BIGSERIAL PRIMARY KEY, gateway TEXT NOT NULL, at_ms BIGINT NOT NULL,
                limits TEXT[] NOT NULL, highs BIGINT[] NOT NULL, lows BIGINT[] NOT NULL, units BIGINT[] NOT NULL
            )
            """,
            "CREATE INDEX rate_events_at ON rate_events (at_ms)",
        ]),
        ("v4: budget decisions in one call (tollgate_budget_commit)", [PostgresBudgets.commitFunction]),
        ("v5: budget leases (tollgate_budget_decide, tollgate_lease_reclaim)", PostgresBudgets.leaseMigration),
    ]

    /// Applies the migrations not yet recorded, under the advisory lock.
    static func migrate(_ connections: PostgresConnections) throws {
        try connections.with { s in
            try s.run("SELECT pg_advisory_lock(\(lockKey))")
            defer { _ = try? s.run("SELECT pg_advisory_unlock(\(lockKey))") }
            try s.run("CREATE TABLE IF NOT EXISTS tollgate_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            var done = Set<String>()
            for row in try s.run("SELECT name FROM tollgate_migrations") { done.insert(try row.decode(String.self)) }
            for migration in migrations where !done.contains(migration.name) {
                try s.run("BEGIN")
                do {
                    for statement in migration.statements { try s.run(PostgresQuery(unsafeSQL: statement)) }
                    try s.run("INSERT INTO tollgate_migrations (name) VALUES (\(migration.name))")
                    try s.run("COMMIT")
                } catch {
                    _ = try? s.run("ROLLBACK")
                    throw error
                }
            }
        }
    }
}
