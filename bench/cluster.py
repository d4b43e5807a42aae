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


def main():
    with store_bench.postgres_and_upstream("tollgate-cluster-bench-") as (work, cluster, upstream_port, procs):
        single, single_port = gateway(work, "single", f"sqlite:{work}/tollgate.db", upstream_port)
        procs.append(single)
        ports = []
        for i in range(3):
            p, port = gateway(work, f"node{i}", cluster.url(), upstream_port)
            procs.append(p)
            ports.append(port)
        path = "/api/address?q=10+Downing+St"
        per_node = max(1, CONNECTIONS // 3)
        singles, clusters, tpr = [], [], []
        for _ in range(ROUNDS):
            singles.append(wrk_with(f"http://127.0.0.1:{single_port}{path}", CONNECTIONS))
            before = store_bench.commits(cluster)
            runs = together([f"http://127.0.0.1:{p}{path}" for p in ports], per_node)
            time.sleep(1.5)  # the settlements' commit after the run
            total = sum(r["rps"] for r in runs)
            tpr.append((store_bench.commits(cluster) - before) / max(1, total * DURATION))
            clusters.append({"rps_total": round(total, 1), "rps_per_gateway": [r["rps"] for r in runs],
                             "p99_ms": max(r["p99_ms"] or 0 for r in runs), "non2xx": sum(r["non2xx"] for r in runs)})
        best_single = max(singles, key=lambda r: r["rps"])
        best_cluster = max(clusters, key=lambda r: r["rps_total"])
        result = {
            "rounds": ROUNDS, "duration_s": DURATION, "connections": CONNECTIONS, "cores": os.cpu_count(),
            "single_sqlite": best_single, "cluster_3_postgres": best_cluster,
            "ratio_total_cluster_vs_single": round(best_cluster["rps_total"] / best_single["rps"], 3),
            "ratio_per_gateway_vs_single": round(best_cluster["rps_total"] / 3 / best_single["rps"], 3),
            "postgres_transactions_per_request": round(min(tpr), 4),
        }
        report("cluster", result)


if __name__ == "__main__":
    main()
