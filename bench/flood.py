"""Flood fairness: a legitimate client keeps its throughput while another client, on its own
address, floods a route that refuses it with as many (1x) and four times as many (4x) connections.

Tollgate runs with `max_connections_per_client: 32`; nginx with the usual counterpart, `limit_conn`
32 per address plus `limit_req` refusing the flooded location. The legitimate client (32 connections,
127.0.0.1) calls the proxied route; the flooder (127.0.0.9, through bench/bindshim.c) calls the
refused one. Reports the legitimate client's share of its alone-throughput. Reports; never fails.
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import KEY, BODY, TOLLGATE, free_port, nginx, nginx_common, wait_port  # noqa: E402

DURATION = int(os.environ.get("DURATION", "10"))
LEGIT = 32


def rps(out):
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def wrk(url, connections, env=None):
    return subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{DURATION}s", url], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)


def main():
    work = Path(tempfile.mkdtemp(prefix="tollgate-flood-"))
    shim = work / "bindshim.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(Path(__file__).parent / "bindshim.c"), "-ldl"], check=True)
    flooder = dict(os.environ, LD_PRELOAD=str(shim), BIND_ADDR="127.0.0.9")
    up_port, nginx_port, tg_port = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(nginx(nginx_common(work, "upstream") + f"""
worker_processes 1;
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{up_port};
    location /v2/validate {{ if ($http_x_api_key != "{KEY}") {{ return 401; }} default_type application/json; return 200 '{BODY}'; }} }} }}
""", work, "upstream"))
        procs.append(nginx(nginx_common(work, "proxy") + f"""
worker_processes 1;
http {{ access_log off; keepalive_requests 1000000;
  limit_conn_zone $binary_remote_addr zone=conns:10m;
  limit_req_zone $binary_remote_addr zone=refuse:10m rate=1r/m;
  upstream paid {{ server 127.0.0.1:{up_port}; keepalive 128; }}
  server {{ listen 127.0.0.1:{nginx_port};
    limit_conn conns 32;
    location = /api/address {{ proxy_pass http://paid/v2/validate?q=$arg_q&format=json; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header X-Api-Key "{KEY}"; }}
    location = /api/refused {{ limit_req zone=refuse nodelay; limit_req_status 429; proxy_pass http://paid/v2/validate; }} }} }}
""", work, "proxy"))
        config = work / "tollgate.yaml"
        config.write_text(f"""
listen: 127.0.0.1:{tg_port}
access_log: off
max_connections_per_client: 32
secrets: {{ KEY: env:BENCH_KEY }}
routes:
  - name: address
    match: {{ path: /api/address }}
    upstream: {{ url: "http://127.0.0.1:{up_port}/v2/validate", auth: {{ header: X-Api-Key, secret: KEY }} }}
    params: {{ q: {{ type: string, min_length: 1, max_length: 100, required: true }} }}
    limits: [{{ per: ip, rate: 1000000/s, burst: 1000000 }}]
  - name: refused
    match: {{ path: /api/refused }}
    upstream: {{ url: "http://127.0.0.1:{up_port}/v2/validate", auth: {{ header: X-Api-Key, secret: KEY }} }}
    params: {{ q: {{ type: string, min_length: 1, max_length: 100, required: true }} }}
    limits: [{{ per: ip, rate: 1/day, burst: 1 }}]
""")
        procs.append(subprocess.Popen([str(TOLLGATE), "serve", "--config", str(config)], env=dict(os.environ, BENCH_KEY=KEY),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in (up_port, nginx_port, tg_port):
            wait_port(port)
        print(f"legitimate: {LEGIT} connections from 127.0.0.1; flooder from 127.0.0.9; {DURATION}s each")
        for name, port in (("nginx", nginx_port), ("tollgate", tg_port)):
            legit_url = f"http://127.0.0.1:{port}/api/address?q=Main+Street"
            flood_url = f"http://127.0.0.1:{port}/api/refused?q=Main+Street"
            for factor in (1, 4):
                alone = rps(wrk(legit_url, LEGIT).communicate()[0])  # again each time: this VM drifts
                flood = wrk(flood_url, LEGIT * factor, env=flooder)
                legit = rps(wrk(legit_url, LEGIT).communicate()[0])
                refused = rps(flood.communicate()[0])
                print(f"{name:8s} {factor}x flood: legitimate {legit:8.0f} req/s of {alone:8.0f} alone "
                      f"({legit / alone:.2f}); flood answered {refused:8.0f} req/s", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


if __name__ == "__main__":
    main()
