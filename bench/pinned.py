"""CPU time per proxied request with each proxy pinned to its own core: the speed issue's "µs per
request, pinned" figure, measured the same way for nginx and Tollgate in one interleaved run.

The proxy under test (nginx with 1 worker, or Tollgate with 1 event loop) runs alone on core 0
(`taskset -c 0`); wrk and the upstream (nginx, 1 worker) run on core 1. Each round drives the
bench route of compare.py for DURATION seconds and reads the proxy's user + system time from
/proc before and after; that time divided by the requests wrk completed is its CPU per request.
On a VM this is steadier than requests per second, which also counts what wrk and the upstream
take from their core. Needs 2 cores. Reports; never fails.
    python3 bench/pinned.py                      # ROUNDS=3 DURATION=8, 16 connections
    TOLLGATE_BIN=/tmp/old/tollgate python3 bench/pinned.py
    BEFORE_BIN=/tmp/old/tollgate python3 bench/pinned.py   # also that binary, in the same rounds
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import compare  # noqa: E402

os.environ.setdefault("DURATION", "8")
compare.DURATION = DURATION = int(os.environ["DURATION"])
from compare import (KEY, free_port, nginx, nginx_common, nginx_proxy, report, stop_all, tollgate_proxy,  # noqa: E402
                     wait_port, worker_pids, wrk_with)

ROUNDS = int(os.environ.get("ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
TICKS = os.sysconf("SC_CLK_TCK")
BODY = '{"formatted":"10 DOWNING STREET, GB","postcode":"SW1A 2AA","valid":true,"provider_account":"acct_1"}'


def cpu_seconds(pid):
    """User and system time of `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def pin(pid, core):
    subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True, capture_output=True)


def keyed_upstream(work, port):
    """The upstream of compare.py: 401 unless the key is right."""
    return nginx(nginx_common(work, "upstream") + f"""
worker_processes 1;
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location /v2/validate {{
      if ($http_x_api_key != "{KEY}") {{ return 401; }}
      default_type application/json;
      return 200 '{BODY}';
    }}
  }}
}}
""", work, "upstream")


def measure(pid, url):
    """CPU µs per request of `pid` while wrk (on core 1) drives `url` (user and system time apart:
    the system calls are the same for both proxies, their cost in this VM is not), and wrk's result."""
    (user0, sys0) = cpu_seconds(pid)
    run = wrk_with(url, CONNECTIONS, core=1)
    (user1, sys1) = cpu_seconds(pid)
    requests = run["rps"] * DURATION
    per = lambda seconds: round(seconds * 1e6 / requests, 2)  # noqa: E731
    return {"cpu_us_per_request": per(user1 - user0 + sys1 - sys0), "user_us": per(user1 - user0),
            "system_us": per(sys1 - sys0), "rps": run["rps"], "non2xx": run["non2xx"]}


def main():
    if os.cpu_count() < 2:
        sys.exit("bench/pinned.py needs 2 cores")
    work = Path(tempfile.mkdtemp(prefix="tollgate-pinned-"))
    up_port, ng_port, tg_port = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(keyed_upstream(work, up_port))
        procs.append(nginx_proxy(work, "proxy", ng_port, up_port))
        os.environ["TOLLGATE_WORKERS"] = "1"
        procs.append(tollgate_proxy(work, "tollgate", tg_port, up_port))
        before_port = free_port() if os.environ.get("BEFORE_BIN") else None
        if before_port:
            compare.TOLLGATE = Path(os.environ["BEFORE_BIN"])
            procs.append(compare.tollgate_proxy(work, "before", before_port, up_port))
        for port in (up_port, ng_port, tg_port) + ((before_port,) if before_port else ()):
            wait_port(port)
        time.sleep(0.5)
        up_workers = worker_pids(procs[0].pid)
        ng_workers = worker_pids(procs[1].pid)
        for pid in [procs[0].pid] + up_workers:
            pin(pid, 1)
        for pid in [procs[1].pid] + ng_workers + [p.pid for p in procs[2:]]:
            pin(pid, 0)
        targets = {"nginx": (ng_workers[0], f"http://127.0.0.1:{ng_port}/api/address?q=Main+Street"),
                   "tollgate": (procs[2].pid, f"http://127.0.0.1:{tg_port}/api/address?q=Main+Street")}
        if before_port:
            targets["tollgate_before"] = (procs[3].pid, f"http://127.0.0.1:{before_port}/api/address?q=Main+Street")
        for _, url in targets.values():  # warm-up
            subprocess.run(["wrk", "-t1", "-c8", "-d2s", url], capture_output=True)
        rounds = {name: [] for name in targets}
        for _ in range(ROUNDS):
            for name, (pid, url) in targets.items():
                rounds[name].append(measure(pid, url))
        best = {name: min(r["cpu_us_per_request"] for r in runs) for name, runs in rounds.items()}
        best_user = {name: min(r["user_us"] for r in runs) for name, runs in rounds.items()}
        report("pinned", {
            "connections": CONNECTIONS, "duration_s": DURATION, "rounds": rounds,
            "best_cpu_us_per_request": best, "best_user_us_per_request": best_user,
            "ratio_cpu_tollgate_over_nginx": round(best["tollgate"] / best["nginx"], 2),
        })
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
