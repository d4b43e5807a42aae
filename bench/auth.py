"""What authentication costs on the proxied path, in one interleaved run: the same Tollgate route
without auth, with an API key, with an HS256 JWT and with an EdDSA JWT (each client reuses its
credential, as real ones do), and nginx proxying without auth, all in front of one nginx upstream.
Prints each throughput relative to the route without auth (goal ≥ 0.9) and to nginx.
"""
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import KEY, ROOT, ROUNDS, TOLLGATE, free_port, nginx, nginx_common, static_upstream, wait_port, wrk_with, CONNECTIONS  # noqa: E402


def wrk_header(url, header):
    if header is None:
        return wrk_with(url, CONNECTIONS)
    import re
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{os.environ.get('DURATION', '10')}s", "--latency", "-H", header, url],
                         capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "non2xx": int(non2xx.group(1)) if non2xx else 0}


def main():
    work = Path(tempfile.mkdtemp(prefix="tollgate-bench-auth-"))
    upstream_port, nginx_port, port = free_port(), free_port(), free_port()
    hs_secret = secrets.token_urlsafe(48)
    ed = ed25519.Ed25519PrivateKey.generate()
    (work / "ed.pem").write_text(ed.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo).decode())
    procs = []
    try:
        procs.append(static_upstream(work, upstream_port))
        procs.append(nginx(nginx_common(work, "proxy") + f"""
worker_processes 1;
http {{
  access_log off;
  keepalive_requests 1000000;
  upstream paid {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{nginx_port};
    location = /api/none {{
      proxy_pass http://paid/v2/validate?q=$arg_q;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Api-Key "{KEY}";
    }}
  }}
}}
""", work, "proxy"))
        routes = ""
        for name, auth in [("none", ""), ("apikey", "    auth: { any_of: [api_key] }\n"), ("jwt", "    auth: { any_of: [jwt] }\n"),
                           ("apikey-bare", "    auth: { any_of: [api_key], identity_headers: false }\n")]:
            routes += f"""
  - name: {name}
    match: {{ method: GET, path: /api/{name} }}
    upstream:
      url: http://127.0.0.1:{upstream_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: KEY }}
    params: {{ q: {{ type: string, min_length: 1, max_length: 100, required: true }} }}
{auth}"""
        config = work / "tollgate.yaml"
        config.write_text(f"""
listen: 127.0.0.1:{port}
access_log: off
secrets: {{ KEY: env:BENCH_KEY, HASH: env:BENCH_HASH, HS: env:BENCH_HS }}
identity:
  key_hash_secret: HASH
  jwt:
    keys:
      - {{ kid: hs, alg: HS256, secret: HS }}
      - {{ kid: ed, alg: EdDSA, pem_file: ed.pem }}
routes:{routes}
""")
        env = dict(os.environ, BENCH_KEY=KEY, BENCH_HASH=secrets.token_hex(16), BENCH_HS=hs_secret)
        created = subprocess.run([str(TOLLGATE), "keys", "create", "--name", "bench", "--json", "--config", str(config)],
                                 env=env, capture_output=True, text=True, check=True).stdout
        api_key = json.loads(created)["key"]
        claims = {"sub": "bench", "exp": int(time.time()) + 3600}
        hs_token = jwt.encode(claims, hs_secret, algorithm="HS256", headers={"kid": "hs"})
        ed_token = jwt.encode(claims, ed, algorithm="EdDSA", headers={"kid": "ed"})
        tg = subprocess.Popen([str(TOLLGATE), "serve", "--config", str(config)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(tg)
        for p in (upstream_port, nginx_port, port):
            wait_port(p)
        cases = {
            "nginx (no auth)": (f"http://127.0.0.1:{nginx_port}/api/none?q=Main", None),
            "no auth": (f"http://127.0.0.1:{port}/api/none?q=Main", None),
            "no auth, key sent": (f"http://127.0.0.1:{port}/api/none?q=Main", f"X-API-Key: {api_key}"),
            "api key": (f"http://127.0.0.1:{port}/api/apikey?q=Main", f"X-API-Key: {api_key}"),
            "api key, no ident": (f"http://127.0.0.1:{port}/api/apikey-bare?q=Main", f"X-API-Key: {api_key}"),
            "jwt HS256": (f"http://127.0.0.1:{port}/api/jwt?q=Main", f"Authorization: Bearer {hs_token}"),
            "jwt EdDSA": (f"http://127.0.0.1:{port}/api/jwt?q=Main", f"Authorization: Bearer {ed_token}"),
        }
        for name, (url, header) in cases.items():
            args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url] + (["-H", header] if header else [])
            code = subprocess.run(args, capture_output=True, text=True).stdout
            if code != "200":
                sys.exit(f"{name} answered {code} on warm-up")
        results = {name: [] for name in cases}
        for round_ in range(1, ROUNDS + 1):
            for name, (url, header) in cases.items():
                r = wrk_header(url, header)
                if r["non2xx"]:
                    sys.exit(f"{name}: {r['non2xx']} non-2xx answers")
                results[name].append(r["rps"])
                print(f"round {round_} {name:16s} {r['rps']:10.0f} req/s", flush=True)
        mean = {name: sum(v) / len(v) for name, v in results.items()}
        print()
        for name in cases:
            print(f"{name:16s} {mean[name]:10.0f} req/s  vs no auth {mean[name] / mean['no auth']:.2f}  "
                  f"vs nginx {mean[name] / mean['nginx (no auth)']:.2f}")
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / f"auth-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps({"rounds": results, "mean": mean}, indent=2))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(5)


if __name__ == "__main__":
    main()
