"""TLS on the public listener: Tollgate against nginx, both terminating TLS with the same
certificate (ECDSA P-256, made here), TLS 1.2/1.3 with the same TLS 1.2 cipher list, session
tickets on, in front of the same static upstream (plain HTTP, keep-alive), driven in turn:

- `keepalive`: wrk over https, 64 keep-alive connections: what TLS records cost per request;
- `handshake`: wrk over https with `Connection: close`: every request a new connection and a full
  handshake (wrk does not resume sessions): handshakes per second under load;
- `s_time new` / `s_time reuse`: `openssl s_time`, one client, sequential connections — full
  handshakes against resumed ones (a session ticket or the session cache), per second.

Reports each figure and Tollgate/nginx ratios. Reports; never fails.
    ROUNDS=3 DURATION=6 python3 bench/tls.py
"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import (CONNECTIONS, DURATION, ROUNDS, TOLLGATE, free_port, nginx_proxy, report,  # noqa: E402
                     static_upstream, stop_all, tollgate_proxy, wait_port, wrk_with)

ROUTE = "/api/address?q=Main+Street"
CIPHERS = ":".join(["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"])


def certificate(work):
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def nginx_tls(work, port, upstream_port, cert, key):
    return nginx_proxy(work, "tls", port, upstream_port, tls=f"""
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {CIPHERS};
    ssl_session_tickets on;
    ssl_session_cache shared:SSL:10m;""")


def tollgate_tls(work, port, upstream_port, cert, key):
    return tollgate_proxy(work, "tollgate", port, upstream_port, root_extra=f"tls: {{ cert: {cert}, key: {key} }}")


def wrk_close(url):
    """Every request on a new connection: a full TLS handshake each."""
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "-H", "Connection: close", url],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def s_time(port, mode):
    """Connections per second of one sequential client: `-new` full handshakes, `-reuse` resumed."""
    out = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", f"-{mode}", "-time", str(max(2, DURATION // 2)),
                          "-www", ROUTE], capture_output=True, text=True).stdout
    m = re.search(r"([\d.]+) connections/user sec", out)
    return float(m.group(1)) if m else None


def main():
    if not TOLLGATE.exists():
        sys.exit(f"{TOLLGATE} missing: swift build -c release --product tollgate")
    work = Path(tempfile.mkdtemp(prefix="tollgate-tls-bench-"))
    cert, key = certificate(work)
    upstream_port, nginx_port, tollgate_port = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(static_upstream(work, upstream_port))
        procs.append(nginx_tls(work, nginx_port, upstream_port, cert, key))
        procs.append(tollgate_tls(work, tollgate_port, upstream_port, cert, key))
        for port in (upstream_port, nginx_port, tollgate_port):
            wait_port(port)
        ports = {"nginx": nginx_port, "tollgate": tollgate_port}
        urls = {name: f"https://127.0.0.1:{port}{ROUTE}" for name, port in ports.items()}
        for name, url in urls.items():  # correctness check and warm-up
            code = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True, text=True).stdout
            if code != "200":
                sys.exit(f"{name} answered {code} over TLS on warm-up")
        results = {name: {"keepalive": [], "handshake": [], "s_time_new": [], "s_time_reuse": []} for name in ports}
        for _ in range(ROUNDS):
            for name in ports:
                results[name]["keepalive"].append(wrk_with(urls[name], CONNECTIONS))
                results[name]["handshake"].append(wrk_close(urls[name]))
                results[name]["s_time_new"].append(s_time(ports[name], "new"))
                results[name]["s_time_reuse"].append(s_time(ports[name], "reuse"))
        best = {name: {"keepalive": max(r["keepalive"], key=lambda x: x["rps"]),
                       "handshakes_per_s": max(r["handshake"]),
                       "s_time_new_per_s": max(x or 0 for x in r["s_time_new"]),
                       "s_time_reuse_per_s": max(x or 0 for x in r["s_time_reuse"])} for name, r in results.items()}
        t, n = best["tollgate"], best["nginx"]

        def ratio(a, b):
            return round(a / b, 3) if b else None

        report("tls", {
            "rounds": ROUNDS, "duration_s": DURATION, "connections": CONNECTIONS, "certificate": "ECDSA P-256",
            "nginx": n, "tollgate": t,
            "ratio_keepalive_throughput": ratio(t["keepalive"]["rps"], n["keepalive"]["rps"]),
            "ratio_keepalive_p99": ratio(t["keepalive"]["p99_ms"] or 0, n["keepalive"]["p99_ms"] or 0),
            "ratio_handshakes": ratio(t["handshakes_per_s"], n["handshakes_per_s"]),
            "ratio_s_time_new": ratio(t["s_time_new_per_s"], n["s_time_new_per_s"]),
            "ratio_s_time_reuse": ratio(t["s_time_reuse_per_s"], n["s_time_reuse_per_s"]),
        })
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
