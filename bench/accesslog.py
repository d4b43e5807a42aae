"""What the access log costs: Tollgate with `access_log: stdout` (into a file) against Tollgate with it
off, next to nginx with `access_log … buffer=64k` against nginx with it off — four proxies in front
of one upstream, the same route as compare.py, driven in turn by wrk in interleaved rounds.
Reports each one's requests per second, each log's cost, and Tollgate/nginx with their logs on.
Reports; never fails.
    ROUNDS=3 DURATION=6 python3 bench/accesslog.py
"""
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import (CONNECTIONS, DURATION, ROUNDS, THREADS, free_port, nginx_proxy, report,  # noqa: E402
                     static_upstream, stop_all, tollgate_proxy, wait_port, wrk)

ROUTE = "/api/address?q=Main+Street"


def tollgate(work, name, port, upstream_port, log):
    out = open(work / f"{name}.access.log", "w")
    return tollgate_proxy(work, name, port, upstream_port, root_extra=f"access_log: {'stdout' if log else 'off'}", stdout=out)


def main():
    work = Path(tempfile.mkdtemp(prefix="tollgate-accesslog-"))
    up = free_port()
    ports = {name: free_port() for name in ("nginx", "nginx_log", "tollgate", "tollgate_log")}
    procs = [static_upstream(work, up)]
    try:
        procs.append(nginx_proxy(work, "nginx", ports["nginx"], up))
        procs.append(nginx_proxy(work, "nginx_log", ports["nginx_log"], up,
                                 access_log=f"access_log {work}/nginx_log.access.log combined buffer=64k;"))
        procs.append(tollgate(work, "tollgate", ports["tollgate"], up, log=False))
        procs.append(tollgate(work, "tollgate_log", ports["tollgate_log"], up, log=True))
        for port in [up, *ports.values()]:
            wait_port(port)
        rps = {name: [] for name in ports}
        for name, port in ports.items():  # warm-up
            subprocess.run(["wrk", "-t1", "-c8", "-d2s", f"http://127.0.0.1:{port}{ROUTE}"], capture_output=True)
        for round_ in range(1, ROUNDS + 1):
            for name, port in ports.items():
                r = wrk(f"http://127.0.0.1:{port}{ROUTE}")
                rps[name].append(r["rps"])
                print(f"round {round_} {name:13s} {r['rps']:10.0f} req/s  p99 {r['p99_ms']:.3f} ms", flush=True)
        best = {name: max(values) for name, values in rps.items()}
        lines = sum(1 for _ in open(work / "tollgate_log.access.log"))
        result = {"rps": best, "rounds": rps,
                  "tollgate_log_cost": round(1 - best["tollgate_log"] / best["tollgate"], 3),
                  "nginx_log_cost": round(1 - best["nginx_log"] / best["nginx"], 3),
                  "ratio_throughput_logs_on": round(best["tollgate_log"] / best["nginx_log"], 3),
                  "ratio_throughput_logs_off": round(best["tollgate"] / best["nginx"], 3),
                  "tollgate_lines_written": lines,
                  "setup": f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s, {ROUNDS} rounds interleaved, best round each"}
        report("accesslog", result)
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
