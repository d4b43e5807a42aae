"""HTTP/2 on the public listener: Tollgate against nginx (`listen … ssl http2`), both terminating TLS
with the same certificate and ciphers (bench/tls.py's) in front of the same static upstream (plain
HTTP/1.1, keep-alive), driven in turn by h2load (nghttp2-client):

- `multiplexed`: 16 connections × 16 concurrent streams — what a browser-heavy client mix does;
- `one_stream`: 64 connections, one stream at a time each — HTTP/1.1 keep-alive's shape over h2.

Reports requests per second, mean time per request, and Tollgate/nginx ratios. Reports; never fails.
    ROUNDS=3 DURATION=6 python3 bench/h2.py
"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import DURATION, ROUNDS, TOLLGATE, free_port, nginx_proxy, report, static_upstream, stop_all, tollgate_proxy, wait_port  # noqa: E402
from tls import CIPHERS, ROUTE, certificate  # noqa: E402

SCENARIOS = {"multiplexed": (16, 16), "one_stream": (64, 1)}


def h2load(url, connections, streams):
    """Requests per second and mean ms per request over DURATION seconds (h2load -D)."""
    out = subprocess.run(["h2load", "-D", str(DURATION), "-c", str(connections), "-m", str(streams), "-t", "1", url],
                         capture_output=True, text=True).stdout
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    ok = re.search(r"status codes: (\d+) 2xx", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    if not rps or not ok or not done or ok.group(1) != done.group(1):
        sys.exit(f"h2load against {url} did not get only 2xx answers:\n{out}")
    m = mean.group(1)
    mean_ms = float(m[:-2]) if m.endswith("ms") else float(m[:-2]) / 1000 if m.endswith("us") else float(m[:-1]) * 1000
    return {"rps": float(rps.group(1)), "mean_ms": mean_ms}


def main():
    if not TOLLGATE.exists():
        sys.exit(f"{TOLLGATE} missing: swift build -c release --product tollgate")
    work = Path(tempfile.mkdtemp(prefix="tollgate-h2-bench-"))
    cert, key = certificate(work)
    upstream_port, nginx_port, tollgate_port = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(static_upstream(work, upstream_port))
        procs.append(nginx_proxy(work, "h2", nginx_port, upstream_port, http2=True, tls=f"""
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {CIPHERS};"""))
        procs.append(tollgate_proxy(work, "tollgate", tollgate_port, upstream_port, root_extra=f"tls: {{ cert: {cert}, key: {key} }}"))
        for port in (upstream_port, nginx_port, tollgate_port):
            wait_port(port)
        urls = {"nginx": f"https://127.0.0.1:{nginx_port}{ROUTE}", "tollgate": f"https://127.0.0.1:{tollgate_port}{ROUTE}"}
        for name, url in urls.items():  # correctness check and warm-up
            out = subprocess.run(["curl", "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", url],
                                 capture_output=True, text=True).stdout
            if out != "200 2":
                sys.exit(f"{name} answered {out!r} over h2 on warm-up")
        results = {name: {s: [] for s in SCENARIOS} for name in urls}
        for round_ in range(1, ROUNDS + 1):
            for scenario, (connections, streams) in SCENARIOS.items():
                for name, url in urls.items():
                    r = h2load(url, connections, streams)
                    results[name][scenario].append(r)
                    print(f"round {round_} {scenario:11s} {name:8s} {r['rps']:10.0f} req/s  mean {r['mean_ms']:.3f} ms", flush=True)
        best = {name: {s: max(rs, key=lambda r: r["rps"]) for s, rs in by.items()} for name, by in results.items()}
        summary = {"rounds": ROUNDS, "duration_s": DURATION, "scenarios": {s: f"{c} connections x {m} streams" for s, (c, m) in SCENARIOS.items()},
                   "nginx": best["nginx"], "tollgate": best["tollgate"]}
        for s in SCENARIOS:
            summary[f"ratio_{s}_throughput"] = round(best["tollgate"][s]["rps"] / best["nginx"][s]["rps"], 3)
            summary[f"ratio_{s}_mean_latency"] = round(best["tollgate"][s]["mean_ms"] / best["nginx"][s]["mean_ms"], 3)
        report("h2", summary)
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
