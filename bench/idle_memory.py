"""Memory per idle client connection, measured on the real binary: Tollgate's resident memory with
N open connections that have sent nothing, then after each sent one keep-alive request (and waits).

    python3 bench/idle_memory.py            # N=10000, .build/release/tollgate (TOLLGATE_BIN to change)

Prints one line per stage and a JSON summary. Needs a descriptor limit above N for both processes
(raised here with setrlimit up to the hard limit).
"""
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOLLGATE = Path(os.environ.get("TOLLGATE_BIN", ROOT / ".build" / "release" / "tollgate"))
N = int(os.environ.get("CONNECTIONS", "10000"))


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settle(pid, seconds=1.5):
    time.sleep(seconds)
    return rss_kib(pid)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, N + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < N + 100:
        sys.exit(f"descriptor limit {hard} is too low for {N} connections")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="tollgate-idle-"))
    (work / "page.html").write_text("ok")
    (work / "t.yaml").write_text(f"""
listen: 127.0.0.1:{port}
workers: 2
store: memory
access_log: off
idle_timeout: 10m
max_connections: {N + 100}
max_connections_per_client: {N + 100}
routes:
  - name: page
    match: {{ method: GET, path: / }}
    file: page.html
""")
    proc = subprocess.Popen([str(TOLLGATE), "serve", "--config", str(work / "t.yaml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        base = settle(proc.pid)
        conns = []
        for i in range(N):
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        connected = settle(proc.pid, 3)
        request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        for c in conns:
            c.sendall(request)
        for c in conns:
            data = b""
            while not data.endswith(b"ok"):
                chunk = c.recv(4096)
                if not chunk:
                    raise RuntimeError("a connection closed")
                data += chunk
        after = settle(proc.pid, 3)
        result = {"connections": N, "rss_base_kib": base, "rss_connected_kib": connected, "rss_after_request_kib": after,
                  "bytes_per_connection": round((connected - base) * 1024 / N),
                  "bytes_per_keepalive_connection": round((after - base) * 1024 / N)}
        print(f"base {base} KiB; {N} connected, nothing sent: {connected} KiB; after one request each: {after} KiB")
        print(json.dumps(result))
        for c in conns:
            c.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
