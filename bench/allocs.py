"""Heap allocations and CPU time per request, counted in the real binary (one event loop): Tollgate runs under an LD_PRELOAD shim
(bench/malloccount.c) that counts every malloc, calloc, realloc and aligned allocation in the
process; wrk drives one path for DURATION seconds, and the count's growth, less what the same time
costs idle (timers, the console's ticks), is divided by the requests wrk made. The gateway's CPU
time (user + system, from /proc) is divided the same way: less noisy than requests per second on a
shared machine, since it does not count the time wrk and the upstream take from the cores.

Paths: a proxied call (the bench route of compare.py), a rate-limit refusal (429), a validation
refusal (422) and an unknown path (404), all on keep-alive connections. Reports; never fails.
    python3 bench/allocs.py              # DURATION=5, 16 connections
    ACCESS_LOG=1 python3 bench/allocs.py # the same with the access log on (to /dev/null), and a 404 with a long path
    PROTOCOL=h2 python3 bench/allocs.py  # the proxied call over TLS and HTTP/2 (h2load: 16 x 16 streams, 64 x 1)
    HEADERS=browser python3 bench/allocs.py  # each request with a browser's dozen fields
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import BROWSER_HEADERS, KEY, TOLLGATE, free_port, report, static_upstream, stop_all, wait_port  # noqa: E402

DURATION = int(os.environ.get("DURATION", "5"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
H2 = os.environ.get("PROTOCOL") == "h2"
# HEADERS=browser: every request carries a browser's dozen fields (wrk sends only Host).
HEADER_ARGS = [arg for h in (BROWSER_HEADERS if os.environ.get("HEADERS") == "browser" else []) for arg in ("-H", h)]


def main():
    work = Path(tempfile.mkdtemp(prefix="tollgate-allocs-"))
    shim = work / "malloccount.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(Path(__file__).parent / "malloccount.c")], check=True)
    count_file = work / "count"
    up_port, tg_port = free_port(), free_port()
    tls = ""
    if H2:
        from tls import certificate
        cert, key = certificate(work)
        tls = f"tls: {{ cert: {cert}, key: {key} }}"
    config = work / "tollgate.yaml"
    config.write_text(f"""
listen: 127.0.0.1:{tg_port}
{tls}
access_log: {"stdout" if os.environ.get("ACCESS_LOG") else "off"}
{"" if os.environ.get("BEFORE_PACING") else "delay_after_refusals: 0"}
close_after_refusals: 0
workers: 1
secrets: {{ KEY: env:BENCH_KEY }}
routes:
  - name: address
    match: {{ method: GET, path: /api/address }}
    upstream: {{ url: "http://127.0.0.1:{up_port}/v2/validate", auth: {{ header: X-Api-Key, secret: KEY }} }}
    params: {{ q: {{ type: string, min_length: 1, max_length: 100, required: true }} }}
    fixed: {{ format: json }}
    limits: [{{ per: ip, rate: 1000000/s, burst: 1000000 }}]
  - name: refused
    match: {{ method: GET, path: /api/refused }}
    upstream: {{ url: "http://127.0.0.1:{up_port}/v2/validate", auth: {{ header: X-Api-Key, secret: KEY }} }}
    params: {{ q: {{ type: string, min_length: 1, max_length: 100, required: true }} }}
    limits: [{{ per: ip, rate: 1/day, burst: 1 }}]
""")
    procs = [static_upstream(work, up_port)]
    try:
        gw = subprocess.Popen([str(TOLLGATE), "serve", "--config", str(config)],
                              env=dict(os.environ, BENCH_KEY=KEY, LD_PRELOAD=str(shim), MALLOC_COUNT_FILE=str(count_file)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(gw)
        wait_port(up_port)
        wait_port(tg_port)

        def count():
            count_file.unlink(missing_ok=True)
            gw.send_signal(signal.SIGUSR2)
            for _ in range(100):
                if count_file.exists() and count_file.read_text().endswith("\n"):
                    return int(count_file.read_text())
                time.sleep(0.01)
            sys.exit("the allocation counter did not answer (is the shim loaded?)")

        def cpu_seconds():
            fields = Path(f"/proc/{gw.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        def drive(path):
            if H2:  # path: (connections, streams per connection)
                connections, streams = path
                out = subprocess.run(["h2load", "-D", str(DURATION), "-c", str(connections), "-m", str(streams), "-t", "1",
                                      f"https://127.0.0.1:{tg_port}/api/address?q=Main+Street"],
                                     capture_output=True, text=True, check=True).stdout
                return int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
            out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}s", *HEADER_ARGS, f"http://127.0.0.1:{tg_port}{path}"],
                                 capture_output=True, text=True, check=True).stdout
            return int(re.search(r"(\d+) requests in", out).group(1))

        if H2:
            paths = {"proxied_h2_16x16": (16, 16), "proxied_h2_64x1": (64, 1)}
        else:
            paths = {"proxied": "/api/address?q=Main+Street", "rate_limited_429": "/api/refused?q=Main+Street",
                     "invalid_422": "/api/address?q=", "unknown_404": "/nowhere"}
            if os.environ.get("ACCESS_LOG"):  # a path longer than a small string's 15 bytes, as logged
                paths["unknown_404_long_path"] = "/nowhere/further/than/fifteen/bytes?q=1"
        for path in paths.values():
            drive(path)  # warm: connections, tables, caches
        before, cpu = count(), cpu_seconds()
        time.sleep(DURATION)
        idle, idle_cpu = count() - before, cpu_seconds() - cpu
        result = {"idle_allocations_per_second": round(idle / DURATION)}
        for name, path in paths.items():
            before, cpu = count(), cpu_seconds()
            requests = drive(path)
            grew, used = count() - before, cpu_seconds() - cpu
            result[name] = {"allocations": round((grew - idle) / requests, 1),
                            "cpu_us": round((used - idle_cpu) / requests * 1e6, 1), "requests_per_second": round(requests / DURATION)}
        clients = "h2load over TLS" if H2 else f"{CONNECTIONS} keep-alive connections" + (", a browser's fields" if HEADER_ARGS else "")
        print(f"heap allocations and gateway CPU per request ({clients}, {DURATION}s each, idle subtracted):")
        report("allocs", result)
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
