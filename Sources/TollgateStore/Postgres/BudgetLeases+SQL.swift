extension PostgresBudgets {
    /// The budget half of a group commit with leases (migration v5; replaces
    /// ``commitFunction``). As that one, in one call: settles and releases the given entries, locks
    /// every total involved in ascending key order, reads each window's sum after the locks, and
    /// decides the reservations' charges in arrival order. Then:
    ///
    /// - A settled entry's charges that were drawn from a lease (`US L<id>` in `charges`) move no
    ///   shared total while the lease exists: the lease absorbs the difference, and what is left of
    ///   it goes back when it ends. Once the lease is gone (reclaimed), the difference goes to the
    ///   slot: the reclaim counted the entry as it stood. The check locks the lease row (`FOR KEY
    ///   SHARE`), so a reclaim running at the same time either waits for this commit and sums the
    ///   settled cost, or commits first and this applies the difference.
    /// - After the reservations, each lease request `q` is granted
    ///   `min(want, (limit − window sum) / 8)` rounded down to whole `unit`s, if that is at least four
    ///   units: a `budget_leases` row (expiring `ttl_ms` from now, database time) and the amount added
    ///   to the slot, so every gateway counts it as spent. Returned as `('lease', q, 0, granted, id)`.
    ///
    /// Refusals and window totals come back as before (`lease` 0).
    static let decideFunction = """
        CREATE OR REPLACE FUNCTION tollgate_budget_decide(
            s_ids BIGINT[], s_costs BIGINT[], s_statuses INT[], s_ats BIGINT[],
            x_ids BIGINT[], x_statuses INT[], x_ats BIGINT[],
            w_budget TEXT[], w_scope TEXT[], w_lo BIGINT[], w_hi BIGINT[],
            r_amount BIGINT[],
            c_res INT[], c_win INT[], c_slot BIGINT[], c_limit BIGINT[], c_enforced BOOLEAN[],
            q_win INT[], q_slot BIGINT[], q_limit BIGINT[], q_unit BIGINT[], q_want BIGINT[], q_gateway TEXT, q_ttl_ms BIGINT
        ) RETURNS TABLE (kind TEXT, idx INT, charge INT, total BIGINT, lease BIGINT) LANGUAGE plpgsql AS $fn$
        DECLARE
            d_budget TEXT[] := '{}'; d_scope TEXT[] := '{}'; d_slot BIGINT[] := '{}'; d_amount BIGINT[] := '{}';
            cur BIGINT[]; n_win INT := COALESCE(array_length(w_budget, 1), 0);
            n_charges INT := COALESCE(array_length(c_res, 1), 0);
            i INT; j INT; w INT; c_first INT; c_last INT; refusing INT; k BIGINT; rec RECORD; g BIGINT; lid BIGINT;
        BEGIN
            PERFORM set_config('synchronous_commit', 'off', true);
            FOR rec IN
                WITH settled AS (
                    UPDATE ledger AS l SET state = 'settled', cost_micros = u.cost, status = NULLIF(u.status, -1), settled_at = u.at
                    FROM unnest(s_ids, s_costs, s_statuses, s_ats) AS u(id, cost, status, at)
                    WHERE l.id = u.id AND l.state = 'reserved'
                    RETURNING l.charges, l.cost_micros - l.reserved_micros AS delta
                ), released AS (
                    UPDATE ledger AS l SET state = 'released', cost_micros = 0, status = NULLIF(u.status, -1), settled_at = u.at
                    FROM unnest(x_ids, x_statuses, x_ats) AS u(id, status, at)
                    WHERE l.id = u.id AND l.state = 'reserved'
                    RETURNING l.charges, -l.reserved_micros AS delta
                ), changed AS (SELECT * FROM settled UNION ALL SELECT * FROM released)
                SELECT split_part(c, chr(31), 1) AS b, split_part(c, chr(31), 2) AS s, split_part(c, chr(31), 3)::BIGINT AS slot,
                       changed.delta
                FROM changed, unnest(string_to_array(changed.charges, chr(30))) AS c
                WHERE changed.charges <> '' AND changed.delta <> 0
                  AND (split_part(c, chr(31), 4) = ''
                       OR NOT EXISTS (SELECT 1 FROM budget_leases AS bl
                                      WHERE bl.id = substr(split_part(c, chr(31), 4), 2)::BIGINT FOR KEY SHARE))
            LOOP
                d_budget := d_budget || rec.b; d_scope := d_scope || rec.s; d_slot := d_slot || rec.slot; d_amount := d_amount || rec.delta;
            END LOOP;

            FOR k IN
                SELECT DISTINCT hashtextextended('tollgate-budget:' || t.b || chr(31) || t.s, 0)
                FROM (SELECT unnest(w_budget) AS b, unnest(w_scope) AS s UNION SELECT unnest(d_budget), unnest(d_scope)) AS t
                ORDER BY 1
            LOOP
                PERFORM pg_advisory_xact_lock(k);
            END LOOP;

            SELECT array_agg(COALESCE(x.sum, 0) ORDER BY x.i) INTO cur FROM (
                SELECT u.i, SUM(b.micros)::BIGINT AS sum
                FROM unnest(w_budget, w_scope, w_lo, w_hi) WITH ORDINALITY AS u(budget, scope, lo, hi, i)
                LEFT JOIN budget_spend AS b ON b.budget = u.budget AND b.scope = u.scope AND b.slot >= u.lo AND b.slot < u.hi
                GROUP BY u.i) AS x;
            FOR j IN 1 .. COALESCE(array_length(d_budget, 1), 0) LOOP
                FOR w IN 1 .. n_win LOOP
                    IF w_budget[w] = d_budget[j] AND w_scope[w] = d_scope[j] AND d_slot[j] >= w_lo[w] AND d_slot[j] < w_hi[w] THEN
                        cur[w] := cur[w] + d_amount[j];
                    END IF;
                END LOOP;
            END LOOP;

            c_first := 1;
            WHILE c_first <= n_charges LOOP
                i := c_res[c_first];
                c_last := c_first;
                WHILE c_last < n_charges AND c_res[c_last + 1] = i LOOP c_last := c_last + 1; END LOOP;
                refusing := NULL;
                FOR j IN c_first .. c_last LOOP
                    IF c_enforced[j] AND cur[c_win[j]] + r_amount[i] > c_limit[j] THEN refusing := j; EXIT; END IF;
                END LOOP;
                IF refusing IS NOT NULL THEN
                    kind := 'refused'; idx := i; charge := refusing; total := cur[c_win[refusing]]; lease := 0;
                    RETURN NEXT;
                ELSE
                    FOR j IN c_first .. c_last LOOP
                        FOR w IN 1 .. n_win LOOP
                            IF w_budget[w] = w_budget[c_win[j]] AND w_scope[w] = w_scope[c_win[j]]
                               AND c_slot[j] >= w_lo[w] AND c_slot[j] < w_hi[w] THEN
                                cur[w] := cur[w] + r_amount[i];
                            END IF;
                        END LOOP;
                        d_budget := d_budget || w_budget[c_win[j]]; d_scope := d_scope || w_scope[c_win[j]];
                        d_slot := d_slot || c_slot[j]; d_amount := d_amount || r_amount[i];
                    END LOOP;
                END IF;
                c_first := c_last + 1;
            END LOOP;

            FOR j IN 1 .. COALESCE(array_length(q_win, 1), 0) LOOP
                w := q_win[j];
                g := LEAST(q_want[j], GREATEST(0, q_limit[j] - cur[w]) / 8);
                g := (g / q_unit[j]) * q_unit[j];
                CONTINUE WHEN g < 4 * q_unit[j];
                INSERT INTO budget_leases (gateway, budget, scope, slot, granted, after_row, expires_ms)
                VALUES (q_gateway, w_budget[w], w_scope[w], q_slot[j], g, (SELECT last_value FROM ledger_id_seq),
                        (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT + q_ttl_ms)
                RETURNING id INTO lid;
                FOR i IN 1 .. n_win LOOP
                    IF w_budget[i] = w_budget[w] AND w_scope[i] = w_scope[w] AND q_slot[j] >= w_lo[i] AND q_slot[j] < w_hi[i] THEN
                        cur[i] := cur[i] + g;
                    END IF;
                END LOOP;
                d_budget := d_budget || w_budget[w]; d_scope := d_scope || w_scope[w]; d_slot := d_slot || q_slot[j]; d_amount := d_amount || g;
                kind := 'lease'; idx := j; charge := 0; total := g; lease := lid;
                RETURN NEXT;
            END LOOP;

            INSERT INTO budget_spend (budget, scope, slot, micros)
            SELECT u.b, u.s, u.slot, SUM(u.a) FROM unnest(d_budget, d_scope, d_slot, d_amount) AS u(b, s, slot, a)
            GROUP BY u.b, u.s, u.slot HAVING SUM(u.a) <> 0
            ON CONFLICT (budget, scope, slot) DO UPDATE SET micros = budget_spend.micros + excluded.micros;

            FOR w IN 1 .. n_win LOOP
                kind := 'total'; idx := w; charge := 0; total := cur[w]; lease := 0;
                RETURN NEXT;
            END LOOP;
        END
        $fn$
        """

    /// Ends every lease past its database expiry, whichever gateway held it (one that died, or one
    /// cut off from the database): what the ledger rows drawn from it hold (found among the rows
    /// after `after_row`, the ledger's sequence when it was granted: no clock is trusted) (settled at their cost,
    /// still reserved at the reserved amount, released at nothing) stays counted, the rest of the
    /// grant goes back to its slot. The `DELETE` waits for a commit still writing rows drawn from the
    /// lease (they take `FOR KEY SHARE` on it), and the sum that follows is a new snapshot, so it sees
    /// those rows; a commit that comes later finds the lease gone and writes no row for it.
    /// Returns how many leases it ended.
    static let reclaimFunction = """
        CREATE OR REPLACE FUNCTION tollgate_lease_reclaim() RETURNS INT LANGUAGE plpgsql AS $fn$
        DECLARE rec RECORD; spent BIGINT; n INT := 0;
        BEGIN
            FOR rec IN
                DELETE FROM budget_leases WHERE expires_ms < (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
                RETURNING id, budget, scope, slot, granted, after_row
            LOOP
                SELECT COALESCE(SUM(CASE WHEN l.state = 'released' THEN 0 ELSE COALESCE(l.cost_micros, l.reserved_micros) END), 0)::BIGINT
                INTO spent FROM ledger AS l
                WHERE l.id > rec.after_row AND (l.charges || chr(30)) LIKE '%' || chr(31) || 'L' || rec.id || chr(30) || '%';
                UPDATE budget_spend SET micros = micros - (rec.granted - spent)
                WHERE budget = rec.budget AND scope = rec.scope AND slot = rec.slot;
                n := n + 1;
            END LOOP;
            RETURN n;
        END
        $fn$
        """

    /// Migration v5: the lease table, the functions above, and the v4 function dropped.
    static let leaseMigration: [String] = [
        """
        CREATE TABLE budget_leases (
            id BIGSERIAL PRIMARY KEY, gateway TEXT NOT NULL, budget TEXT NOT NULL, scope TEXT NOT NULL, slot BIGINT NOT NULL,
            granted BIGINT NOT NULL, after_row BIGINT NOT NULL, expires_ms BIGINT NOT NULL
        )
        """,
        "CREATE INDEX budget_leases_expiry ON budget_leases (expires_ms)",
        decideFunction,
        reclaimFunction,
        """
        DROP FUNCTION tollgate_budget_commit(BIGINT[], BIGINT[], INT[], BIGINT[], BIGINT[], INT[], BIGINT[], TEXT[], TEXT[],
                                             BIGINT[], BIGINT[], BIGINT[], INT[], INT[], BIGINT[], BIGINT[], BOOLEAN[])
        """,
    ]
}
