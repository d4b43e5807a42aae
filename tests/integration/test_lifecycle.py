"""Start-up, config checking and graceful shutdown of the real binary; secrets never in output."""
import http.client
import re
import signal
import socket
import subprocess
import threading
import time

from conftest import TOLLGATE, ROOT, address_config, read_until_closed, request


def test_graceful_shutdown_completes_in_flight_request(gateways, standin, api_key):
    gw = gateways(address_config(standin.port, timeout="5s"), env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=1500)
    result = {}

    def call():
        result["response"] = gw.get("/api/address?q=Main+Street")

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.4)  # the request is now waiting on the slow upstream
    gw.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    # No longer accepting new connections.
    refused = False
    try:
        request(gw.port, "GET", "/api/address?q=Main+Street", timeout=1)
    except OSError:
        refused = True
    assert refused
    t.join(10)
    assert result["response"].status == 200
    assert gw.proc.wait(10) == 0
    assert standin.stats()["calls"] == 1


def test_shutdown_grace_bounds_the_wait(gateways, standin, api_key):
    config = address_config(standin.port, timeout="10s").replace("shutdown_grace: 5s", "shutdown_grace: 500ms")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=8000)
    outcome = {}

    def call():
        try:
            outcome["response"] = gw.get("/api/address?q=Main+Street", timeout=15)
        except (OSError, http.client.HTTPException) as e:
            outcome["error"] = e
        outcome["after"] = time.monotonic() - started

    started = time.monotonic()
    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    gw.proc.send_signal(signal.SIGINT)
    assert gw.proc.wait(10) == 0
    assert time.monotonic() - signalled < 3
    t.join(15)
    # The request still waiting when the grace ran out was cut off then, not after the upstream's 8 s.
    assert "error" in outcome and "response" not in outcome, outcome
    assert outcome["after"] < 3


def test_requests_arriving_during_shutdown_get_503(gateways, standin, api_key):
    """A request pipelined behind one still in flight when SIGTERM arrives is answered 503 (with
    Retry-After, then the connection closes) instead of being dropped unanswered."""
    gw = gateways(address_config(standin.port, timeout="5s"), env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=1200)
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    one = b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(one)
    time.sleep(0.3)
    s.sendall(one)  # queued behind the first
    time.sleep(0.2)
    gw.proc.send_signal(signal.SIGTERM)
    data = read_until_closed(s)
    s.close()
    assert [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)] == [200, 503]
    second = data[data.index(b"HTTP/1.1 503"):]
    assert b"Retry-After: 1" in second and b"Connection: close" in second and b"shutting-down" in second
    assert gw.proc.wait(10) == 0
    assert standin.stats()["calls"] == 1


def test_missing_secret_stops_startup_naming_the_variable(gateways, standin):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": ""}, start=False)
    gw.env.pop("ADDRESS_API_KEY", None)
    gw.start(expect_failure=True)
    assert gw.proc.returncode != 0
    assert "ADDRESS_API_KEY is not set" in gw.output()


def test_secret_from_file_and_dotenv(gateways, standin, api_key):
    config = address_config(standin.port).replace("env:ADDRESS_API_KEY", "file:key.txt")
    gw = gateways(config, files={"key.txt": api_key + "\n"})
    assert gw.get("/api/address?q=Main+Street").status == 200
    config = address_config(standin.port).replace("env:ADDRESS_API_KEY", "env:FROM_DOTENV")
    gw = gateways(config, files={".env": f"FROM_DOTENV={api_key}\n"})
    assert gw.get("/api/address?q=Main+Street").status == 200
    assert standin.stats()["authorized"] == 2


def test_key_never_appears_in_any_response_or_log(gateways, standin, api_key):
    gw = gateways(address_config(standin.port, timeout="300ms"), env={"ADDRESS_API_KEY": api_key})
    bodies = []
    for mode, options, path in [("normal", {}, "/api/address?q=Main+Street"), ("normal", {}, "/api/address?q=x"),
                                ("normal", {}, "/missing"), ("fail", {}, "/api/address?q=Main+Street"),
                                ("redirect", {}, "/api/address?q=Main+Street"), ("status", {"status": 403}, "/api/address?q=Main+Street"),
                                ("garbage", {}, "/api/address?q=Main+Street"), ("slow", {"delay_ms": 1000}, "/api/address?q=Main+Street"),
                                ("hop", {}, "/api/address?q=Main+Street")]:
        standin.mode(mode, **options)
        r = gw.get(path)
        bodies.append(r.body + repr(r.headers).encode())
    gw.stop()
    everything = b"".join(bodies) + gw.output().encode()
    assert api_key.encode() not in everything
    assert standin.stats()["authorized"] >= 7


def test_check_reports_every_error_with_its_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
secrets:
  KEY: sk_live_abcdefghijklmnop123456
routes:
  - name: r
    match: { method: GET, path: /r }
    upstream: { url: "http://127.0.0.1:1/x", auth: { header: X-Api-Key, secret: KEY } }
    params:
      q: { type: string, min_length: 5, max_length: 2 }
""")
    p = subprocess.run([str(TOLLGATE), "check", "--config", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1
    assert "secrets.KEY: looks like a literal secret" in p.stderr
    assert "routes[0].params.q.max_length: must be ≥ min_length" in p.stderr
    assert "sk_live_abcdefghijklmnop123456" not in p.stderr + p.stdout


def test_check_accepts_the_example_config():
    p = subprocess.run([str(TOLLGATE), "check", "--config", str(ROOT / "examples/address-validation/tollgate.yaml")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "OK, 4 routes" in p.stdout


def test_help_reads_well():
    p = subprocess.run([str(TOLLGATE), "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for sub in ["serve", "check", "demo"]:
        assert sub in p.stdout
