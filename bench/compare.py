"""Interleaved benchmark: nginx reverse proxy vs Tollgate in front of the same nginx static upstream.

Both proxies do the same work per request: match the route, check one query parameter, apply a
per-client-IP limit set high enough never to trigger, add the API key header and reuse keep-alive
connections to the upstream. wrk drives each in turn (nginx, Tollgate, nginx, Tollgate, …).
A second scenario floods a Tollgate route whose limit refuses everything, to compare the cost of a
rejection with the cost of a proxied request. It runs with `delay_after_refusals: 0`, so it measures
what a refusal costs, not how pacing sheds it (bench/flood.py runs with the defaults); set
BEFORE_PACING=1 for a TOLLGATE_BIN older than that setting. HEADERS=browser sends a browser's
dozen fields with every request (wrk sends only Host).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOLLGATE = Path(os.environ.get("TOLLGATE_BIN", ROOT / ".build" / "release" / "tollgate"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
THREADS = int(os.environ.get("WRK_THREADS", "2"))
KEY = "bench_" + os.urandom(12).hex()
BODY = '{"formatted":"10 DOWNING STREET, GB","postcode":"SW1A 2AA","valid":true,"provider_account":"acct_1"}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening")


def nginx(conf_text, directory, name):
    conf = directory / f"{name}.conf"
    conf.write_text(conf_text)
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(directory), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc


def nginx_common(directory, name):
    return f"""
pid {directory}/{name}.pid;
error_log {directory}/{name}.error.log warn;
events {{ worker_connections 4096; }}
"""


def upstream(work, port, location_body):
    """nginx (1 worker) answering `/v2/validate` on `port` as `location_body` says."""
    return nginx(nginx_common(work, "upstream") + f"""
worker_processes 1;
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location /v2/validate {{ {location_body} }}
  }}
}}
""", work, "upstream")


def keyed_upstream(work, port):
    """BODY when the `X-Api-Key` is right, 401 otherwise: the upstream of the proxied scenarios, so a
    proxy that failed to add the key shows."""
    return upstream(work, port, f"""if ($http_x_api_key != "{KEY}") {{ return 401; }} default_type application/json; return 200 '{BODY}';""")


def static_upstream(work, port):
    """BODY whatever the key: the upstream of the scenarios that measure something other than key
    injection (bench/auth.py, bench/store.py)."""
    return upstream(work, port, f"default_type application/json; return 200 '{BODY}';")


# What Tollgate adds to every answer and upstream call by default, configured on nginx's side so
# that both do the same work: a request id to the upstream and back, and the response fields of
# a JSON API (no-store, nosniff, no framing, no referrer, a CSP that allows nothing). Tollgate's
# two RateLimit fields have no nginx equivalent. NGINX_BARE=1 leaves them out (the comparison as
# it was measured before 2026-12-04, night).
SAME_HEADERS = "" if os.environ.get("NGINX_BARE") else """
      proxy_set_header X-Request-ID $request_id;
      add_header Cache-Control "no-store" always;
      add_header X-Request-ID $request_id always;
      add_header X-Content-Type-Options nosniff always;
      add_header X-Frame-Options DENY always;
      add_header Referrer-Policy no-referrer always;
      add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;"""


def nginx_proxy(work, name, port, upstream_port, access_log="access_log off;", tls="", http2=False):
    """nginx (1 worker) doing the bench route's work: a per-address limit that never triggers, the
    `q` check, the key added, keep-alive to the upstream, and (`SAME_HEADERS`) the request id and
    response fields Tollgate adds. `tls`: `ssl_*` directives, served over TLS; `http2`: HTTP/2
    offered there too (nginx 1.22's `listen … http2`)."""
    return nginx(nginx_common(work, name) + f"""
worker_processes 1;
http {{
  {access_log}
  keepalive_requests 1000000;
  limit_req_zone $binary_remote_addr zone=perip:10m rate=1000000r/s;
  upstream paid {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port}{" ssl" if tls else ""}{" http2" if http2 else ""};
    {"http2_max_concurrent_streams 100;" if http2 else ""}
    {tls}
    location = /api/address {{
      limit_req zone=perip burst=1000000 nodelay;
      if ($arg_q = "") {{ return 422; }}
      proxy_pass http://paid/v2/validate?q=$arg_q&format=json;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Api-Key "{KEY}";{SAME_HEADERS}
    }}
  }}
}}
""", work, name)


def report(name, result):
    """Prints `result` and keeps it as bench/results/NAME-TIMESTAMP.json."""
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)


def stop_all(procs):
    """Terminates each process, killing those that do not stop within 10 s."""
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def worker_pids(master_pid):
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def peak_rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def tollgate_proxy(work, name, port, upstream_port, root_extra="", stdout=subprocess.DEVNULL):
    """Tollgate doing the bench route's work (the same as nginx_proxy's) in front of a static
    upstream; `root_extra` adds top-level keys (`access_log`, `tls`); access log off unless given.
    The route keeps nothing durable: `store: memory`, so gateways started together in one
    directory do not share (and race to migrate) a SQLite file."""
    config = work / f"{name}.yaml"
    config.write_text(f"""
listen: 127.0.0.1:{port}
store: memory
{root_extra if "access_log:" in root_extra else "access_log: off" + chr(10) + root_extra}
{"workers: " + os.environ["TOLLGATE_WORKERS"] if os.environ.get("TOLLGATE_WORKERS") else ""}
secrets: {{ KEY: env:BENCH_KEY }}
routes:
  - name: address
    match: {{ method: GET, path: /api/address }}
    upstream: {{ url: "http://127.0.0.1:{upstream_port}/v2/validate", auth: {{ header: X-Api-Key, secret: KEY }} }}
    params: {{ q: {{ type: string, min_length: 1, max_length: 100, required: true }} }}
    fixed: {{ format: json }}
    limits: [{{ per: ip, rate: 1000000/s, burst: 1000000 }}]
""")
    return subprocess.Popen([str(TOLLGATE), "serve", "--config", str(config)], env=dict(os.environ, BENCH_KEY=KEY),
                            stdout=stdout, stderr=subprocess.DEVNULL)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url):
    """wrk's result on `url` with the scenario's connections; HEADERS=browser: a browser's fields on
    every request (below), as real pages send them."""
    return wrk_with(url, CONNECTIONS, headers=BROWSER_HEADERS if os.environ.get("HEADERS") == "browser" else ())


# What a browser sends with a fetch() from a page (Chromium 131), without cookies: the fields a
# gateway parses on every request from a real page, where wrk sends only Host.
BROWSER_HEADERS = [
    "Accept: application/json, text/plain, */*",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: en-US,en;q=0.9,de;q=0.8",
    "Connection: keep-alive",
    "Origin: https://signup.example.com",
    "Referer: https://signup.example.com/register?step=address",
    "Sec-Ch-Ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
    "Sec-Ch-Ua-Mobile: ?0",
    "Sec-Ch-Ua-Platform: \"Linux\"",
    "Sec-Fetch-Dest: empty",
    "Sec-Fetch-Mode: cors",
    "Sec-Fetch-Site: same-site",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
]


def wrk_with(url, connections, core=None, headers=()):
    """wrk's result on `url`; `core`: run it pinned to that CPU (taskset); `headers`: sent with each request."""
    pinned = ["taskset", "-c", str(core)] if core is not None else []
    extra = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(pinned + ["wrk", f"-t{min(THREADS, connections)}", f"-c{connections}", f"-d{DURATION}s", "--latency", *extra, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)", out, re.M):
        lat[pct] = float(value) * UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(0) if errors else None}


def main():
    if not TOLLGATE.exists():
        sys.exit(f"{TOLLGATE} missing: run bench/run (it builds the release binary)")
    work = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    upstream_port, nginx_port, tollgate_port = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(keyed_upstream(work, upstream_port))
        proxy = nginx_proxy(work, "proxy", nginx_port, upstream_port)
        procs.append(proxy)
        config = work / "tollgate.yaml"
        config.write_text(f"""
listen: 127.0.0.1:{tollgate_port}
access_log: off
{"workers: " + os.environ["TOLLGATE_WORKERS"] if os.environ.get("TOLLGATE_WORKERS") else ""}
{"" if os.environ.get("BEFORE_PACING") else "delay_after_refusals: 0"}
secrets: {{ KEY: env:BENCH_KEY }}
routes:
  - name: address
    match: {{ method: GET, path: /api/address }}
    upstream:
      url: http://127.0.0.1:{upstream_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: KEY }}
    params: {{ q: {{ type: string, min_length: 1, max_length: 100, required: true }} }}
    fixed: {{ format: json }}
    limits: [{{ per: ip, rate: 1000000/s, burst: 1000000 }}]
  - name: refused
    match: {{ method: GET, path: /api/refused }}
    upstream:
      url: http://127.0.0.1:{upstream_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: KEY }}
    params: {{ q: {{ type: string, min_length: 1, max_length: 100, required: true }} }}
    limits: [{{ per: ip, rate: 1/day, burst: 1 }}]
""")
        tg = subprocess.Popen([str(TOLLGATE), "serve", "--config", str(config)], env=dict(os.environ, BENCH_KEY=KEY),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(tg)
        for port in (upstream_port, nginx_port, tollgate_port):
            wait_port(port)
        time.sleep(0.3)
        urls = {"nginx": f"http://127.0.0.1:{nginx_port}/api/address?q=Main+Street",
                "tollgate": f"http://127.0.0.1:{tollgate_port}/api/address?q=Main+Street"}
        for name, url in urls.items():  # correctness check and warm-up
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True, text=True).stdout
            if out != "200":
                sys.exit(f"{name} answered {out} on warm-up")
            subprocess.run(["wrk", "-t1", "-c8", "-d2s", url], capture_output=True)

        if os.environ.get("PROFILE"):
            # perf (software clock) on Tollgate under load; report written beside the results.
            perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", str(work / "perf.data"),
                                     "-p", str(tg.pid), "--", "sleep", str(DURATION)], stderr=subprocess.DEVNULL)
            wrk(urls["tollgate"])
            perf.wait()
            report = subprocess.run(["perf", "report", "-i", str(work / "perf.data"), "--no-children", "--stdio",
                                     "--sort", "dso", "-g", "none"], capture_output=True, text=True).stdout
            report += subprocess.run(["perf", "report", "-i", str(work / "perf.data"), "--no-children", "--stdio",
                                      "--sort", "sym", "--percent-limit", "0.4", "-g", "none"], capture_output=True, text=True).stdout
            report += subprocess.run(["perf", "report", "-i", str(work / "perf.data"), "--children", "--stdio",
                                      "--sort", "sym", "--percent-limit", "1.5", "-g", "none"], capture_output=True, text=True).stdout
            report += subprocess.run(["perf", "report", "-i", str(work / "perf.data"), "--no-children", "--stdio",
                                      "--sort", "sym", "--symbols", "swift_retain,swift_release", "-g", "caller,0.5,callee,function,percent",
                                      "--percent-limit", "2"], capture_output=True, text=True).stdout
            out = ROOT / "bench" / "results"
            out.mkdir(exist_ok=True)
            (out / "profile.txt").write_text(report)
            print(f"profile written to {out / 'profile.txt'}")
            return

        results = {"nginx": [], "tollgate": []}
        for round_ in range(1, ROUNDS + 1):
            for name in ("nginx", "tollgate"):
                r = wrk(urls[name])
                results[name].append(r)
                print(f"round {round_} {name:8s} {r['rps']:10.0f} req/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms"
                      + (f"  NON-2xx {r['non2xx']}" if r["non2xx"] else ""), flush=True)

        refused_url = f"http://127.0.0.1:{tollgate_port}/api/refused?q=Main+Street"
        refused = wrk(refused_url)
        print(f"refusal  tollgate {refused['rps']:10.0f} req/s  p50 {refused['p50_ms']:.3f} ms  p99 {refused['p99_ms']:.3f} ms  "
              f"(429s: {refused['non2xx']})", flush=True)

        # Legitimate traffic while another client floods a route that refuses it: both run at once,
        # each with half the connections; the flood must not starve the legitimate calls.
        half = max(1, CONNECTIONS // 2)
        flood = subprocess.Popen(["wrk", "-t1", f"-c{half}", f"-d{DURATION}s", refused_url],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        legit_out = subprocess.run(["wrk", "-t1", f"-c{half}", f"-d{DURATION}s", "--latency", urls["tollgate"]],
                                   capture_output=True, text=True).stdout
        flood_out = flood.communicate()[0]
        legit_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", legit_out).group(1))
        flood_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", flood_out).group(1))
        legit_alone = wrk_with(urls["tollgate"], half)
        print(f"under flood: legitimate {legit_rps:.0f} req/s while {flood_rps:.0f} req/s were refused; "
              f"legitimate alone with {half} connections: {legit_alone['rps']:.0f} req/s", flush=True)

        rss = {"nginx": peak_rss_kib(worker_pids(proxy.pid)), "tollgate": peak_rss_kib([tg.pid])}
        summary = {}
        for name in ("nginx", "tollgate"):
            runs = results[name]
            summary[name] = {"rps": sum(r["rps"] for r in runs) / len(runs),
                             "p50_ms": sum(r["p50_ms"] for r in runs) / len(runs),
                             "p99_ms": sum(r["p99_ms"] for r in runs) / len(runs),
                             "peak_rss_mib": rss[name] / 1024,
                             "non2xx": sum(r["non2xx"] for r in runs)}
        print()
        print(f"{'':10s}{'req/s':>10s}{'p50 ms':>10s}{'p99 ms':>10s}{'peak RSS MiB':>14s}")
        for name, s in summary.items():
            print(f"{name:10s}{s['rps']:10.0f}{s['p50_ms']:10.3f}{s['p99_ms']:10.3f}{s['peak_rss_mib']:14.1f}")
        ratio_throughput = summary["tollgate"]["rps"] / summary["nginx"]["rps"]
        ratio_p99 = summary["tollgate"]["p99_ms"] / summary["nginx"]["p99_ms"]
        ratio_reject = refused["rps"] / summary["tollgate"]["rps"]
        machine = f"{os.cpu_count()} cores, {subprocess.run(['uname', '-m'], capture_output=True, text=True).stdout.strip()}"
        fields = "a browser's fields" if os.environ.get("HEADERS") == "browser" else "Host only"
        print(f"\nmachine: {machine}; wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s, {ROUNDS} rounds interleaved; requests: {fields}")
        print(f"ratio_throughput: {ratio_throughput:.2f}")
        print(f"ratio_p99: {ratio_p99:.2f}")
        print(f"ratio_reject_vs_pass: {ratio_reject:.2f}")
        print(f"ratio_legit_under_flood: {legit_rps / legit_alone['rps']:.2f}")
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        (out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(
            {"summary": summary, "rounds": results, "refused": refused, "ratio_throughput": ratio_throughput,
             "ratio_p99": ratio_p99, "ratio_reject_vs_pass": ratio_reject, "machine": machine, "request_fields": fields,
             "legit_under_flood_rps": legit_rps, "flood_refused_rps": flood_rps, "legit_alone_rps": legit_alone["rps"]}, indent=2))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p is not procs[0] and p is not procs[1] else signal.SIGQUIT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
