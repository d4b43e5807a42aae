extension PostgresBudgets {
    /// Migration v4's function, kept as released (migrations never change); v5 drops it for
    /// ``decideFunction``, which adds budget leases.
    ///
    /// The budget half of a group commit, in one call (one round trip, so the totals' locks are
    /// held for the function's run only). In order:
    ///
    /// 1. Settles and releases the given ledger entries (only those still `reserved`) and turns
    ///    each one's `charges` into a delta (`cost - reserved`) on the slots it was counted in.
    /// 2. Takes `pg_advisory_xact_lock` on every total involved — the reservations' and the
    ///    settled entries' — in ascending key order, so gateways never deadlock.
    /// 3. Reads each window's sum (a new snapshot, after the locks) and adds the deltas.
    /// 4. Decides reservations in order: every enforced charge fits (`sum + amount <= limit`) or
    ///    the reservation is refused and takes nothing; accepted amounts are added to every window
    ///    of the same total that contains their slot.
    /// 5. Upserts the slots' changes and returns `('refused', reservation, charge, window sum)` per
    ///    refusal and `('total', window, 0, sum)` per window.
    ///
    /// Arrays are 1-based; charges are grouped by reservation (`c_res` ascending).
    static let commitFunction = """
        CREATE OR REPLACE FUNCTION tollgate_budget_commit(
            s_ids BIGINT[], s_costs BIGINT[], s_statuses INT[], s_ats BIGINT[],
            x_ids BIGINT[], x_statuses INT[], x_ats BIGINT[],
            w_budget TEXT[], w_scope TEXT[], w_lo BIGINT[], w_hi BIGINT[],
            r_amount BIGINT[],
            c_res INT[], c_win INT[], c_slot BIGINT[], c_limit BIGINT[], c_enforced BOOLEAN[]
        ) RETURNS TABLE (kind TEXT, idx INT, charge INT, total BIGINT) LANGUAGE plpgsql AS $fn$
        DECLARE
            d_budget TEXT[] := '{}'; d_scope TEXT[] := '{}'; d_slot BIGINT[] := '{}'; d_amount BIGINT[] := '{}';
            cur BIGINT[]; n_win INT := COALESCE(array_length(w_budget, 1), 0);
            n_charges INT := COALESCE(array_length(c_res, 1), 0);
            i INT; j INT; w INT; c_first INT; c_last INT; refusing INT; k BIGINT; rec RECORD;
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
                    kind := 'refused'; idx := i; charge := refusing; total := cur[c_win[refusing]];
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

            INSERT INTO budget_spend (budget, scope, slot, micros)
            SELECT u.b, u.s, u.slot, SUM(u.a) FROM unnest(d_budget, d_scope, d_slot, d_amount) AS u(b, s, slot, a)
            GROUP BY u.b, u.s, u.slot HAVING SUM(u.a) <> 0
            ON CONFLICT (budget, scope, slot) DO UPDATE SET micros = budget_spend.micros + excluded.micros;

            FOR w IN 1 .. n_win LOOP
                kind := 'total'; idx := w; charge := 0; total := cur[w];
                RETURN NEXT;
            END LOOP;
        END
        $fn$
        """
}
