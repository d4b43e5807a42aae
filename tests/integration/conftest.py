"""Fixtures that run the real binaries: `tollgate` and `tollgate-standin`, over loopback sockets."""
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("TOLLGATE_BIN_DIR", ROOT / ".build" / "debug"))
TOLLGATE = BIN_DIR / "tollgate"
STANDIN = BIN_DIR / "tollgate-standin"


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_names(self):
        return {n.lower() for n, _ in self.headers}

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def read_until_closed(sock):
    """Everything the peer sends on `sock` until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def request(port, method, path, headers=None, body=None, host="127.0.0.1", timeout=10.0, source=None):
    """One request on a new connection; `source` picks the local address (any of 127.0.0.0/8)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


class StandIn:
    """The stand-in paid API as a real process; counts calls that reach it."""

    def __init__(self, key, tls_cert=None, tls_key=None, host="127.0.0.1"):
        self.key = key
        self.host = host
        args = [str(STANDIN), "--host", host, "--port", "0"]
        if tls_cert:
            args += ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)]
        env = dict(os.environ, STANDIN_API_KEY=key)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("stand-in did not start: " + self.proc.stderr.read())
        self.port = json.loads(line)["port"]
        self.tls = tls_cert is not None

    def control(self, method, path, body=None):
        if self.tls:
            import ssl
            ctx = ssl._create_unverified_context()
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=5, context=ctx)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None)
            r = conn.getresponse()
            return json.loads(r.read())
        finally:
            conn.close()

    def stats(self):
        return self.control("GET", "/_standin/stats")

    def last(self):
        return self.control("GET", "/_standin/last")

    def mode(self, mode, **options):
        return self.control("POST", "/_standin/mode", dict(mode=mode, **options))

    def reset(self):
        return self.control("POST", "/_standin/reset", {})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


class Gateway:
    """A `tollgate serve` process with a config written for the test. Output is kept for inspection."""

    def __init__(self, config_yaml, env=None, files=None):
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-it-"))
        for name, content in (files or {}).items():
            (self.dir / name).write_text(content)
        self.port = free_port()
        config_yaml = config_yaml.replace("{{PORT}}", str(self.port))
        self.config = self.dir / "tollgate.yaml"
        self.config.write_text(textwrap.dedent(config_yaml))
        self.out_path = self.dir / "stdout.log"
        self.err_path = self.dir / "stderr.log"
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self, expect_failure=False, preexec_fn=None):
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([str(TOLLGATE), "serve", "--config", str(self.config)],
                                     stdout=self.out, stderr=self.err, env=self.env, preexec_fn=preexec_fn)
        if expect_failure:
            self.proc.wait(10)
            return self
        wait_for_port(self.port, proc=self.proc)
        return self

    def get(self, path, headers=None, **kw):
        return request(self.port, "GET", path, headers=headers, **kw)

    def post(self, path, body, headers=None, **kw):
        return request(self.port, "POST", path, headers=headers, body=body, **kw)

    def output(self):
        self.out.flush()
        self.err.flush()
        return self.out_path.read_text() + self.err_path.read_text()

    def access_log(self):
        lines = []
        for line in self.out_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("msg") == "request":
                lines.append(record)
        return lines

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


@pytest.fixture
def api_key():
    return "sk_test_" + secrets.token_hex(16)


@pytest.fixture
def standin(api_key):
    s = StandIn(api_key)
    yield s
    s.stop()


@pytest.fixture
def gateways():
    """Factory: gateways(config_yaml, env=...) starts one; all are stopped at the end of the test."""
    started = []

    def make(config_yaml, env=None, files=None, start=True):
        g = Gateway(config_yaml, env=env, files=files)
        started.append(g)
        return g.start() if start else g

    yield make
    for g in started:
        g.stop()


def address_config(standin_port, extra_route="", root_extra="", timeout="2s", scheme="http", upstream_host="127.0.0.1",
                   connect_timeout="200ms"):
    """The seed scenario's route, pointed at a stand-in."""
    return f"""
listen: 127.0.0.1:{{{{PORT}}}}
shutdown_grace: 5s
secrets:
  ADDRESS_API_KEY: env:ADDRESS_API_KEY
{root_extra}
routes:
  - name: address-lookup
    match: {{ method: GET, path: /api/address }}
    upstream:
      url: {scheme}://{upstream_host}:{standin_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
      timeout: {timeout}
      connect_timeout: {connect_timeout}
    params:
      q:       {{ in: query, type: string, min_length: 3, max_length: 100, required: true }}
      country: {{ in: query, type: enum, values: [US, CA, GB], default: US }}
    fixed: {{ format: json }}
    forward_headers: [Accept-Language]
    response:
      fields: [formatted, postcode, valid]
{extra_route}
"""
