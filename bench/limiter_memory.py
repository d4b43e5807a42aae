"""Memory of the rate-limit table with many distinct clients, measured on the real binary.

Tollgate runs with 127.0.0.1 as a trusted proxy and a per-IP limit; wrk sends requests whose
X-Forwarded-For is a different address each time (each wrk thread walks its own /8), so every request
adds one key. The route refuses the request afterwards (422: the parameter is missing), so the
upstream is never involved. Tollgate's resident memory is read before and after.
"""
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOLLGATE = ROOT / ".build" / "release" / "tollgate"
TARGET = int(os.environ.get("KEYS", "1000000"))

LUA = """
-- Globals, so that setup() can give each thread its own first octet and init() the run's offset.
counter = 0
prefix = 0
local threads = {}
function setup(thread)
  thread:set("prefix", #threads + 11)
  table.insert(threads, thread)
end
function init(args)
  counter = tonumber(args[1]) or 0
end
function request()
  counter = counter + 1
  local a = counter % 256
  local b = math.floor(counter / 256) % 256
  local c = math.floor(counter / 65536) % 256
  return wrk.format("GET", "/api/limited", {["X-Forwarded-For"] = prefix .. "." .. c .. "." .. b .. "." .. a})
end
"""


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    work = Path(tempfile.mkdtemp(prefix="tollgate-limiter-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (work / "tollgate.yaml").write_text(f"""
listen: 127.0.0.1:{port}
access_log: off
trusted_proxies: [127.0.0.1/32]
rate_limit: {{ max_keys: {TARGET * 2} }}
routes:
  - name: limited
    match: {{ method: GET, path: /api/limited }}
    upstream: {{ url: "http://127.0.0.1:9/" }}
    params: {{ q: {{ type: string, required: true }} }}
    limits: [{{ per: ip, rate: 10/min }}]
""")
    (work / "keys.lua").write_text(LUA)
    tg = subprocess.Popen([str(TOLLGATE), "serve", "--config", str(work / "tollgate.yaml")], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        before = rss_mib(tg.pid)
        sent = 0
        runs = 0
        while sent < TARGET:
            # Each run starts its counters where the previous one could have ended, so no address repeats.
            offset = sent + 1_000_000 * runs
            runs += 1
            out = subprocess.run(["wrk", "-t2", "-c32", "-d5s", "-s", str(work / "keys.lua"), f"http://127.0.0.1:{port}/",
                                  "--", str(offset)],
                                 capture_output=True, text=True, check=True).stdout
            sent += int(re.search(r"(\d+) requests in", out).group(1))
            print(f"  {sent} requests with distinct addresses so far, RSS {rss_mib(tg.pid):.1f} MiB", flush=True)
        after = rss_mib(tg.pid)
        print(f"rss_before_mib: {before:.1f}")
        print(f"rss_after_mib: {after:.1f}")
        print(f"distinct_clients: {sent}")
        print(f"bytes_per_client: {(after - before) * 1024 * 1024 / max(1, sent):.0f}")
    finally:
        tg.terminate()
        tg.wait(10)


if __name__ == "__main__":
    main()
