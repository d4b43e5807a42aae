"""The ledger's cost on the proxied path: one gateway on SQLite vs the same gateway on PostgreSQL
(a private cluster in a temp dir), interleaved rounds, wrk against a priced route (every call
reserves in the ledger before the upstream is called, then settles).

Reports requests per second and p99 for each store, their ratio, and PostgreSQL transactions per
proxied request (from pg_stat_database: group commit carries many reservations per transaction).
PostgreSQL runs with fsync on, as SQLite does. With BASE_BIN=/path/to/older/tollgate the older
binary's SQLite figure is measured in the same rounds (a before/after of the ledger path).
Not a test: it reports, it never fails a build.

    python3 bench/store.py            # ROUNDS, DURATION, CONNECTIONS as in bench/compare.py
"""
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from compare import DURATION, KEY, ROUNDS, TOLLGATE, free_port, report, static_upstream, stop_all, wait_port, wrk  # noqa: E402
import pg_cluster  # noqa: E402


def gateway(work, name, store, upstream_port, binary=TOLLGATE, root_extra="", route_extra=""):
    """A gateway in front of the upstream with one priced route (`lookup`); `root_extra` and
    `route_extra` add top-level and route keys (bench/cluster.py adds a budget and a limit)."""
    port = free_port()
    config = work / f"{name}.yaml"
    config.write_text(f"""
listen: 127.0.0.1:{port}
access_log: off
secrets: {{ KEY: env:BENCH_KEY }}
store: {store}
{root_extra}routes:
  - name: lookup
    match: {{ method: GET, path: /api/address }}
    upstream:
      url: http://127.0.0.1:{upstream_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: KEY }}
    params:
      q: {{ in: query, type: string, min_length: 1, max_length: 100, required: true }}
    fixed: {{ format: json }}
    cost: 0.001 USD
{route_extra}""")
    proc = subprocess.Popen([str(binary), "serve", "--config", str(config)], env=dict(os.environ, BENCH_KEY=KEY),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port)
    return proc, port


@contextlib.contextmanager
def postgres_and_upstream(prefix):
    """A temp dir, a private PostgreSQL (fsync on, as SQLite) and the static upstream, as
    (work, cluster, upstream_port, procs); stops every process in `procs` and the cluster after."""
    if not TOLLGATE.exists():
        sys.exit(f"{TOLLGATE} missing: swift build -c release --product tollgate")
    work = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = pg_cluster.Cluster(work / "pg", fsync=True).start()
    procs = []
    try:
        upstream_port = free_port()
        procs.append(static_upstream(work, upstream_port))
        wait_port(upstream_port)
        yield work, cluster, upstream_port, procs
    finally:
        stop_all(procs)
        cluster.stop()


def commits(cluster, database="tollgate"):
    return int(cluster.psql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{database}'"))


def main():
    with postgres_and_upstream("tollgate-store-bench-") as (work, cluster, upstream_port, procs):
        sqlite, sqlite_port = gateway(work, "sqlite", f"sqlite:{work}/tollgate.db", upstream_port)
        postgres, pg_port = gateway(work, "postgres", cluster.url(), upstream_port)
        procs += [sqlite, postgres]
        base = os.environ.get("BASE_BIN")
        if base:
            old, old_port = gateway(work, "sqlite-base", f"sqlite:{work}/base.db", upstream_port, binary=base)
            procs.append(old)
        path = "/api/address?q=10+Downing+St"
        results = {"sqlite": [], "postgres": []} | ({"sqlite_base": []} if base else {})
        transactions_per_request = []
        for _ in range(ROUNDS):
            if base:
                results["sqlite_base"].append(wrk(f"http://127.0.0.1:{old_port}{path}"))
            results["sqlite"].append(wrk(f"http://127.0.0.1:{sqlite_port}{path}"))
            before = commits(cluster, "tollgate")
            run = wrk(f"http://127.0.0.1:{pg_port}{path}")
            time.sleep(1.5)  # the settlements' commit after the run
            transactions_per_request.append((commits(cluster, "tollgate") - before) / max(1, run["rps"] * DURATION))
            results["postgres"].append(run)
        best = {k: max(v, key=lambda r: r["rps"]) for k, v in results.items()}
        result = {
            "rounds": ROUNDS, "duration_s": DURATION,
            "sqlite": best["sqlite"], "postgres": best["postgres"],
            "ratio_throughput_postgres_vs_sqlite": round(best["postgres"]["rps"] / best["sqlite"]["rps"], 3),
            "postgres_transactions_per_request": round(min(transactions_per_request), 4),
        }
        if base:
            result["sqlite_base"] = best["sqlite_base"]
            result["ratio_throughput_sqlite_vs_base"] = round(best["sqlite"]["rps"] / best["sqlite_base"]["rps"], 3)
        report("store", result)


if __name__ == "__main__":
    main()
