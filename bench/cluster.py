"""Cluster mode's cost on the proxied path: 3 gateways on one PostgreSQL (a private cluster, fsync
on) against 1 gateway on SQLite, interleaved rounds, a priced route with a rate limit and a budget
on (set high enough never to refuse, so every request takes the full path: limit, reservation
checked against the shared total, upstream call, settlement).

The three gateways are loaded at once by three wrk processes (one connection set each, as a
round-robin balancer would spread them). Reports requests per second — all three together and per
gateway — against the single gateway, and PostgreSQL transactions per proxied request (group
commits, rate-limit sync rounds and settlements together, from pg_stat_database). On a machine with
fewer cores than 3 gateways + PostgreSQL + wrk need, per-gateway figures measure CPU sharing, not
the design: read the total.
Cluster variants measured in the same rounds (VARIANTS, comma-separated, default both): `leases`
(the default config: busy totals spent from budget leases) and `exact` (`budget_lease: off`: every
reservation decided in the shared total, the design before leases). CONNECTIONS is the single
gateway's load; the three share it unless PER_GATEWAY=1 gives each gateway that many.
Not a test: it reports, it never fails a build.

    python3 bench/cluster.py          # ROUNDS, DURATION, CONNECTIONS as in bench/compare.py
    NO_BUDGET=1 python3 bench/cluster.py   # the same without the budget: what the shared total costs
"""
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import CONNECTIONS, DURATION, ROUNDS, report, wrk_with  # noqa: E402
import store as store_bench  # noqa: E402


BUDGET = "" if os.environ.get("NO_BUDGET") else """budgets:
  - { name: monthly, limit: 1000000 USD, period: month, scope: global }
"""


LIMIT = "    limits: [{ per: ip, rate: 10000000/s, burst: 1000000 }]\n"


def gateway(work, name, store, upstream_port):
    return store_bench.gateway(work, name, store, upstream_port, root_extra=BUDGET, route_extra=LIMIT)


def together(urls, connections):
    """wrk against every url at once; one result per url."""
    results = [None] * len(urls)

    def run(i):
        results[i] = wrk_with(urls[i], connections)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


VARIANT_STORE = {
    "leases": "",
    "exact": ", budget_lease: off",
}


def main():
    variants = [v for v in os.environ.get("VARIANTS", "leases,exact").split(",") if v]
    with store_bench.postgres_and_upstream("tollgate-cluster-bench-") as (work, cluster, upstream_port, procs):
        single, single_port = gateway(work, "single", f"sqlite:{work}/tollgate.db", upstream_port)
        procs.append(single)
        ports = {}
        for v in variants:
            # Each variant on a database of its own, so no lease or total crosses variants.
            url = cluster.create_database(f"bench_{v}")
            ports[v] = []
            for i in range(3):
                p, port = gateway(work, f"{v}{i}", f"{{ url: '{url}'{VARIANT_STORE[v]} }}", upstream_port)
                procs.append(p)
                ports[v].append(port)
        path = "/api/address?q=10+Downing+St"
        per_node = CONNECTIONS if os.environ.get("PER_GATEWAY") else max(1, CONNECTIONS // 3)
        singles, clusters, tpr = [], {v: [] for v in variants}, {v: [] for v in variants}
        for _ in range(ROUNDS):
            singles.append(wrk_with(f"http://127.0.0.1:{single_port}{path}", CONNECTIONS))
            for v in variants:
                before = store_bench.commits(cluster, f"bench_{v}")
                runs = together([f"http://127.0.0.1:{p}{path}" for p in ports[v]], per_node)
                time.sleep(1.5)  # the settlements' commit after the run
                total = sum(r["rps"] for r in runs)
                tpr[v].append((store_bench.commits(cluster, f"bench_{v}") - before) / max(1, total * DURATION))
                clusters[v].append({"rps_total": round(total, 1), "rps_per_gateway": [r["rps"] for r in runs],
                                    "p99_ms": max(r["p99_ms"] or 0 for r in runs), "non2xx": sum(r["non2xx"] for r in runs)})
        best_single = max(singles, key=lambda r: r["rps"])
        result = {"rounds": ROUNDS, "duration_s": DURATION, "connections": CONNECTIONS, "connections_per_gateway": per_node,
                  "cores": os.cpu_count(), "single_sqlite": best_single}
        for v in variants:
            best = max(clusters[v], key=lambda r: r["rps_total"])
            result[f"cluster_3_postgres_{v}"] = best
            result[f"ratio_total_cluster_vs_single_{v}"] = round(best["rps_total"] / best_single["rps"], 3)
            result[f"ratio_per_gateway_vs_single_{v}"] = round(best["rps_total"] / 3 / best_single["rps"], 3)
            result[f"postgres_transactions_per_request_{v}"] = round(min(tpr[v]), 4)
        report("cluster", result)


if __name__ == "__main__":
    main()
