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
    ACCESS_LOG=1 python3 bench/pinned.py   # also both with their access log on: what a logged line costs
    HEADERS=browser python3 bench/pinned.py  # requests carry a browser's dozen fields (wrk sends only Host)
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import compare  # noqa: E402

TOLLGATE = compare.TOLLGATE  # the binary under test (BEFORE_BIN may swap compare's for a moment)

os.environ.setdefault("DURATION", "8")
compare.DURATION = DURATION = int(os.environ["DURATION"])
from compare import (free_port, keyed_upstream, nginx_proxy, report, stop_all, tollgate_proxy,  # noqa: E402
                     wait_port, worker_pids, wrk_with)

ROUNDS = int(os.environ.get("ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
HEADERS = compare.BROWSER_HEADERS if os.environ.get("HEADERS") == "browser" else []
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User and system time of `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def pin(pid, core):
    subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True, capture_output=True)


def measure(pid, url):
    """CPU µs per request of `pid` while wrk (on core 1) drives `url` (user and system time apart:
    the system calls are the same for both proxies, their cost is not — a write that wakes a
    sleeping reader costs more, and a slower proxy's peers sleep more), and wrk's result."""
    (user0, sys0) = cpu_seconds(pid)
    run = wrk_with(url, CONNECTIONS, core=1, headers=HEADERS)
    (user1, sys1) = cpu_seconds(pid)
    requests = run["rps"] * DURATION
    per = lambda seconds: round(seconds * 1e6 / requests, 2)  # noqa: E731
    return {"cpu_us_per_request": per(user1 - user0 + sys1 - sys0), "user_us": per(user1 - user0),
            "system_us": per(sys1 - sys0), "rps": run["rps"], "non2xx": run["non2xx"]}


def main():
    if os.cpu_count() < 2:
        sys.exit("bench/pinned.py needs 2 cores")
    work = Path(tempfile.mkdtemp(prefix="tollgate-pinned-"))
    up_port = free_port()
    procs = [keyed_upstream(work, up_port)]
    proxies = {}  # name -> (process, port, is nginx)
    try:
        def start_nginx(name, access_log="access_log off;"):
            port = free_port()
            proxies[name] = (nginx_proxy(work, name, port, up_port, access_log=access_log), port, True)
            procs.append(proxies[name][0])

        def start_tollgate(name, binary=None, log=False):
            port = free_port()
            if binary:
                compare.TOLLGATE = Path(binary)
            out = open(work / f"{name}.access.log", "w") if log else subprocess.DEVNULL
            proxies[name] = (tollgate_proxy(work, name, port, up_port, root_extra="access_log: stdout" if log else "",
                                            stdout=out), port, False)
            procs.append(proxies[name][0])

        os.environ["TOLLGATE_WORKERS"] = "1"
        start_nginx("nginx")
        start_tollgate("tollgate")
        if os.environ.get("BEFORE_BIN"):
            start_tollgate("tollgate_before", binary=os.environ["BEFORE_BIN"])
        if os.environ.get("ACCESS_LOG"):
            start_nginx("nginx_log", access_log=f"access_log {work}/nginx_log.access.log combined buffer=64k;")
            start_tollgate("tollgate_log", binary=str(TOLLGATE), log=True)
            if os.environ.get("BEFORE_BIN"):
                start_tollgate("tollgate_before_log", binary=os.environ["BEFORE_BIN"], log=True)
        for port in [up_port] + [port for _, port, _ in proxies.values()]:
            wait_port(port)
        time.sleep(0.5)
        for pid in [procs[0].pid] + worker_pids(procs[0].pid):
            pin(pid, 1)
        targets = {}
        for name, (proc, port, is_nginx) in proxies.items():
            pids = [proc.pid] + (worker_pids(proc.pid) if is_nginx else [])
            for pid in pids:
                pin(pid, 0)
            targets[name] = (pids[-1], f"http://127.0.0.1:{port}/api/address?q=Main+Street")
        for _, url in targets.values():  # warm-up
            subprocess.run(["wrk", "-t1", "-c8", "-d2s", url], capture_output=True)
        rounds = {name: [] for name in targets}
        names = list(targets)
        for i in range(ROUNDS):
            # Each round starts one further along: on this VM a proxy measured right after another
            # came out up to 2 µs apart from the same binary measured first.
            for name in names[i % len(names):] + names[:i % len(names)]:
                rounds[name].append(measure(*targets[name]))
        best = {name: min(r["cpu_us_per_request"] for r in runs) for name, runs in rounds.items()}
        best_user = {name: min(r["user_us"] for r in runs) for name, runs in rounds.items()}
        result = {
            "connections": CONNECTIONS, "duration_s": DURATION, "headers": "browser" if HEADERS else "host only", "rounds": rounds,
            "best_cpu_us_per_request": best, "best_user_us_per_request": best_user,
            "ratio_cpu_tollgate_over_nginx": round(best["tollgate"] / best["nginx"], 2),
        }
        if "tollgate_log" in best:
            # What each access log adds to the CPU of a request, best round against best round.
            result["log_cost_us"] = {"tollgate": round(best["tollgate_log"] - best["tollgate"], 2),
                                     "nginx": round(best["nginx_log"] - best["nginx"], 2)}
            result["log_cost_share"] = {"tollgate": round(best["tollgate_log"] / best["tollgate"] - 1, 3),
                                        "nginx": round(best["nginx_log"] / best["nginx"] - 1, 3)}
        report("pinned", result)
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
