"""Resource bounds through the real binary: out of file descriptors, the gateway backs off accepting
instead of spinning on its listening socket, keeps serving the connections it has, and recovers
when descriptors free up."""
import os
import resource
import socket
import time

from access_helpers import eventually
from conftest import Gateway

CONFIG = """
listen: 127.0.0.1:{{PORT}}
workers: 1
store: memory
access_log: off
routes:
  - name: page
    match: { method: GET, path: / }
    file: page.html
"""


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_out_of_descriptors_the_gateway_backs_off_and_recovers():
    gw = Gateway(CONFIG, files={"page.html": "ok"})
    limit = 64
    gw.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    held = []
    try:
        first = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        assert get(first).startswith(b"HTTP/1.1 200")
        # Far more connections than descriptors: the kernel queues them (backlog 1024), the gateway
        # can accept only until it runs out.
        for _ in range(3 * limit):
            held.append(socket.create_connection(("127.0.0.1", gw.port), timeout=5))
        time.sleep(1.0)
        before = cpu_seconds(gw.proc.pid)
        time.sleep(3.0)
        used = cpu_seconds(gw.proc.pid) - before
        assert used < 0.6, f"the gateway used {used:.2f} s of CPU in 3 s while out of descriptors (spinning on accept)"
        # A connection it already had is still served.
        assert get(first).startswith(b"HTTP/1.1 200")
        # Descriptors free up: new connections are accepted again.
        for s in held:
            s.close()
        held = []

        def fresh():
            try:
                with socket.create_connection(("127.0.0.1", gw.port), timeout=3) as s:
                    s.settimeout(3)
                    return get(s).startswith(b"HTTP/1.1 200")
            except OSError:
                return False
        assert eventually(fresh, within=10, step=0.2)
        assert gw.proc.poll() is None
        assert "accepting paused: out of file descriptors" in gw.output()
    finally:
        for s in held:
            s.close()
        gw.stop()
