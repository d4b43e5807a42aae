"""Spend control through the real binary: caps under concurrency, cache, kill -9, alerts, the CLI."""
import hashlib
import hmac
import http.client
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import TOLLGATE, Gateway, address_config, request

HERE = Path(__file__).parent


def spend_config(port, route_extra="", root_extra=""):
    config = address_config(port, root_extra=root_extra).replace(
        "    response:\n      fields: [formatted, postcode, valid]",
        "    response:\n      fields: [formatted, postcode, valid]\n" + route_extra)
    return config


def hammer(port, path, connections, stop_after):
    """`connections` keep-alive clients send `path` until `stop_after` seconds; returns status counts."""
    counts = {}
    lock = threading.Lock()
    deadline = time.monotonic() + stop_after

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                status = "error"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                time.sleep(0.05)
            with lock:
                counts[status] = counts.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(stop_after + 30)
    return counts


def cli(gw, *args):
    return subprocess.run([str(TOLLGATE), *args, "--config", str(gw.config)], capture_output=True, text=True, env=gw.env)


def test_cap_holds_under_64_connections(gateways, standin, api_key):
    config = spend_config(standin.port, "    cost: 0.01 USD\n",
                          "budgets:\n  - { name: daily, limit: 0.50 USD, period: day }")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=20)
    counts = hammer(gw.port, "/api/address?q=Main+Street", 64, 2.5)
    assert counts.get(200) == 50, counts
    assert counts.get(402, 0) > 0
    assert standin.stats()["calls"] == 50
    r = gw.get("/api/address?q=Main+Street")
    assert r.status == 402 and r.json()["budget"] == "daily" and r.json()["reset_at"].endswith("T00:00:00Z")
    assert int(r.header("retry-after")) > 0
    out = json.loads(cli(gw, "usage", "--json").stdout)
    assert out["lines"][0]["calls"] == 50 and out["lines"][0]["spent"] == "0.50 USD"


def test_cache_hits_cost_nothing_and_identical_misses_coalesce(gateways, standin, api_key):
    config = spend_config(standin.port, "    cost: 0.01 USD\n    cache: { ttl: 1m }\n",
                          "budgets:\n  - { name: daily, limit: 10 USD, period: day }")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=400)
    results = []

    def call():
        results.append(gw.get("/api/address?q=Main+Street&country=US"))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join(10)
    assert [r.status for r in results] == [200] * 10
    assert len({r.body for r in results}) == 1
    assert standin.stats()["calls"] == 1
    statuses = sorted(r.header("cache-status") for r in results)
    assert statuses.count("tollgate; fwd=miss; stored") == 1
    assert statuses.count("tollgate; fwd=miss; collapsed") == 9
    # Normalized: parameter order and defaults do not make a new entry.
    r = gw.get("/api/address?country=US&q=Main+Street")
    assert r.header("cache-status").startswith("tollgate; hit; ttl=")
    r = gw.get("/api/address?q=Main+Street")
    assert r.header("cache-status").startswith("tollgate; hit")
    assert standin.stats()["calls"] == 1
    time.sleep(1.3)  # counters are written once a second
    out = json.loads(cli(gw, "usage", "--json").stdout)["lines"][0]
    assert out["calls"] == 1 and out["spent"] == "0.01 USD"
    assert out["cache_hits"] == 11 and out["saved_by_cache"] == "0.11 USD"


def test_units_header_settles_the_real_cost_and_unreachable_releases(gateways, standin, api_key):
    cost = "    cost: { per_call: 0.001 USD, units_header: X-Billing-Units, unit_price: 0.01 USD, max: 0.05 USD }\n"
    gw = gateways(spend_config(standin.port, cost, "budgets:\n  - { name: d, limit: 1 USD, period: day }"),
                  env={"ADDRESS_API_KEY": api_key})
    assert gw.get("/api/address?q=one+two+three").status == 200   # the stand-in reports 3 units
    standin.stop()
    assert gw.get("/api/address?q=one+two+three").status == 502   # unreachable: released
    gw.stop()
    db = sqlite3.connect(gw.dir / "tollgate.db")
    rows = db.execute("SELECT state, reserved_micros, cost_micros FROM ledger ORDER BY id").fetchall()
    assert rows == [("settled", 50000, 31000), ("released", 50000, 0)]


def test_kill_9_during_load_never_loses_reserved_spend(standin, api_key, tmp_path):
    budget_calls = 60
    config = spend_config(standin.port, "    cost: 0.01 USD\n",
                          f"budgets:\n  - {{ name: daily, limit: {budget_calls / 100:.2f} USD, period: day }}")
    gw = Gateway(config, env={"ADDRESS_API_KEY": api_key}).start()
    standin.mode("slow", delay_ms=30)
    load = threading.Thread(target=lambda: hammer(gw.port, "/api/address?q=Main+Street", 32, 3))
    load.start()
    deadline = time.monotonic() + 10
    while standin.stats()["calls"] < budget_calls // 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait(5)
    load.join(30)
    calls_before = standin.stats()["calls"]
    db = gw.dir / "tollgate.db"
    recorded = sqlite3.connect(db).execute("SELECT COUNT(*) FROM ledger WHERE state != 'released'").fetchone()[0]
    # Every call that reached the paid API had its reservation committed first.
    assert recorded >= calls_before > 0

    restarted = Gateway.__new__(Gateway)
    restarted.__dict__.update(gw.__dict__)
    restarted.start()
    try:
        counts = hammer(restarted.port, "/api/address?q=Main+Street", 32, 2)
        assert counts.get(402, 0) > 0
        total_calls = standin.stats()["calls"]
        assert total_calls <= budget_calls, (total_calls, recorded)
        rows = sqlite3.connect(db).execute(
            "SELECT COUNT(*), SUM(COALESCE(cost_micros, reserved_micros)) FROM ledger WHERE state != 'released'").fetchone()
        assert rows[0] <= budget_calls and rows[1] <= budget_calls * 10_000
        assert rows[0] >= total_calls
    finally:
        restarted.stop()


def test_alert_webhook_fires_once_per_threshold_per_period(standin, api_key, tmp_path):
    log = tmp_path / "hooks.jsonl"
    receiver = subprocess.Popen([sys.executable, str(HERE / "webhook_receiver.py"), str(log), "1"], stdout=subprocess.PIPE, text=True)
    port = int(receiver.stdout.readline())
    secret = "whsec_" + "x" * 24
    config = spend_config(standin.port, "    cost: 0.01 USD\n", f"""
secrets:
  ADDRESS_API_KEY: env:ADDRESS_API_KEY
  HOOK_SECRET: env:HOOK_SECRET
budgets:
  - {{ name: daily, limit: 0.10 USD, period: day, alert_at: [50%, 100%] }}
alerts:
  webhook: {{ url: "http://127.0.0.1:{port}/hooks/budget", secret: HOOK_SECRET }}
""").replace("secrets:\n  ADDRESS_API_KEY: env:ADDRESS_API_KEY\n\n", "", 1)
    gw = Gateway(config, env={"ADDRESS_API_KEY": api_key, "HOOK_SECRET": secret}).start()
    try:
        for _ in range(15):
            gw.get("/api/address?q=Main+Street")
        time.sleep(2.5)  # the first delivery fails once and is retried after 1 s
        hooks = [json.loads(l) for l in log.read_text().splitlines()]
        bodies = [json.loads(h["body"]) for h in hooks]
        delivered = sorted({b["threshold_percent"] for b in bodies})
        assert delivered == [50, 100]
        assert len(hooks) == 3  # one retry of the first
        for h in hooks:
            t, v1 = dict(p.split("=", 1) for p in h["headers"]["X-Tollgate-Signature"].split(",")).values()
            expected = hmac.new(secret.encode(), f"{t}.{h['body']}".encode(), hashlib.sha256).hexdigest()
            assert hmac.compare_digest(v1, expected)
        assert bodies[-1]["budget"] == "daily" and bodies[-1]["limit"] == "0.10 USD"
        # A restart does not fire the same thresholds again.
        gw.stop()
        gw.start()
        gw.get("/api/address?q=Main+Street")
        time.sleep(1.0)
        assert len(log.read_text().splitlines()) == 3
        assert secret not in gw.output() and api_key not in gw.output()
    finally:
        gw.stop()
        receiver.terminate()


def test_kill_switch_pauses_upstream_calls_without_restart(gateways, standin, api_key):
    config = spend_config(standin.port, "    cost: 0.01 USD\n    cache: { ttl: 1m }\n")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    assert gw.get("/api/address?q=cached+one").status == 200
    p = cli(gw, "budgets", "pause", "address-lookup")
    assert p.returncode == 0, p.stderr
    time.sleep(0.8)
    r = gw.get("/api/address?q=fresh+one")
    assert r.status == 503 and r.json()["type"].endswith("paused")
    assert gw.get("/api/address?q=cached+one").status == 200   # cache hits cost nothing: still served
    assert "address-lookup" in json.loads(cli(gw, "budgets", "--json").stdout)["paused"]
    assert cli(gw, "budgets", "resume", "address-lookup").returncode == 0
    time.sleep(0.8)
    assert gw.get("/api/address?q=fresh+one").status == 200
    assert cli(gw, "budgets", "pause", "no-such-route").returncode != 0
    assert standin.stats()["calls"] == 2


def test_per_client_budget_and_cli_reports(gateways, standin, api_key):
    config = spend_config(standin.port, "    cost: 0.02 USD\n",
                          "budgets:\n  - { name: per-client, scope: client, limit: 0.04 USD, period: day, status: 429 }")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})

    def get_from(source):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5, source_address=(source, 0))
        conn.request("GET", "/api/address?q=Main+Street")
        r = conn.getresponse()
        r.read()
        conn.close()
        return r.status

    assert [get_from("127.0.0.2") for _ in range(3)] == [200, 200, 429]
    assert [get_from("127.0.0.3") for _ in range(3)] == [200, 200, 429]
    time.sleep(1.2)
    table = cli(gw, "usage", "--by", "client")
    assert table.returncode == 0
    assert "127.0.0.2" in table.stdout and "0.04 USD" in table.stdout and "total" in table.stdout
    budgets = json.loads(cli(gw, "budgets", "--json").stdout)["budgets"]
    assert {(b["scope"], b["used"], b["remaining"]) for b in budgets} == {("127.0.0.2", "0.04 USD", "0.00 USD"),
                                                                           ("127.0.0.3", "0.04 USD", "0.00 USD")}
    by_day = json.loads(cli(gw, "usage", "--by", "day", "--json").stdout)["lines"]
    assert by_day[0]["calls"] == 4 and by_day[0]["refusals"] == 2


def test_a_leader_that_disconnects_still_fills_the_cache_for_those_waiting(gateways, standin, api_key):
    import socket
    config = spend_config(standin.port, "    cost: 0.01 USD\n    cache: { ttl: 1m }\n",
                          "budgets:\n  - { name: daily, limit: 1 USD, period: day }")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=500)
    leader = socket.create_connection(("127.0.0.1", gw.port))
    leader.sendall(b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    leader.close()  # gone while its upstream call is in flight
    r = gw.get("/api/address?q=Main+Street")
    assert r.status == 200 and r.header("cache-status") in ("tollgate; fwd=miss; collapsed", "tollgate; hit; ttl=59")
    assert standin.stats()["calls"] == 1
    time.sleep(0.3)
    gw.stop()
    rows = sqlite3.connect(gw.dir / "tollgate.db").execute("SELECT state, cost_micros FROM ledger").fetchall()
    assert rows == [("settled", 10000)]  # the call was made, so it was paid for, once


def test_per_session_budget(gateways, standin, api_key):
    config = spend_config(standin.port, "    cost: 0.01 USD\n", """
page_tokens: { keys: [PAGE_TOKEN_KEY], min_age: 0s, max_age: 1m, max_uses: 50 }
budgets:
  - { name: per-session, scope: session, limit: 0.02 USD, period: day }
""").replace("secrets:\n  ADDRESS_API_KEY: env:ADDRESS_API_KEY\n", "secrets:\n  ADDRESS_API_KEY: env:ADDRESS_API_KEY\n  PAGE_TOKEN_KEY: env:PAGE_TOKEN_KEY\n", 1)
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key, "PAGE_TOKEN_KEY": "k" * 32})

    def session():
        r = gw.get("/_tollgate/token")
        return r.header("set-cookie").split(";")[0]

    first, second = session(), session()
    assert [gw.get("/api/address?q=Main+Street", headers={"Cookie": first}).status for _ in range(3)] == [200, 200, 402]
    assert [gw.get("/api/address?q=Main+Street", headers={"Cookie": second}).status for _ in range(3)] == [200, 200, 402]
    budgets = json.loads(cli(gw, "budgets", "--json").stdout)["budgets"]
    assert len(budgets) == 2 and all(b["used"] == "0.02 USD" and b["scope"].startswith("s-") for b in budgets)
    # Cookies the gateway did not issue get no budget of their own: they all share one total.
    invented = [gw.get("/api/address?q=Main+Street", headers={"Cookie": f"__Host-tollgate_session=invented-{i:032d}"}).status
                for i in range(3)]
    assert invented == [200, 200, 402]
    assert gw.get("/api/address?q=Main+Street").status == 402  # no cookie at all: the same shared total
    budgets = json.loads(cli(gw, "budgets", "--json").stdout)["budgets"]
    assert {b["scope"] for b in budgets if not b["scope"].startswith("s-")} == {"unverified"}
    assert standin.stats()["calls"] == 6
    gw.stop()
    stored = b"".join(p.read_bytes() for p in gw.dir.glob("tollgate.db*"))
    assert sqlite3.connect(gw.dir / "tollgate.db").execute("SELECT COUNT(*) FROM ledger WHERE session LIKE 's-%'").fetchone()[0] == 4
    assert first.split("=", 1)[1].encode() not in stored  # only a hash of the session cookie is kept


def test_refusals_are_counted_by_policy_and_client_on_every_route(gateways, standin, api_key):
    """A route with neither cost nor cache still records who was refused and by which policy."""
    route = ('    origin: { allow: ["https://shop.example"] }\n'
             '    limits:\n      - { per: ip, rate: 1/min }\n')
    gw = gateways(spend_config(standin.port, route), env={"ADDRESS_API_KEY": api_key})
    page = {"Origin": "https://shop.example"}

    def get_from(source, path, headers):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5, source_address=(source, 0))
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        conn.close()
        return r.status

    assert get_from("127.0.0.2", "/api/address?q=Main+Street", {"Origin": "https://evil.example"}) == 403
    assert get_from("127.0.0.2", "/api/address?q=ab", page) == 422
    assert get_from("127.0.0.3", "/api/address?q=Main+Street", page) == 200
    assert get_from("127.0.0.3", "/api/address?q=Main+Street", page) == 429
    time.sleep(1.3)  # counters are written once a second
    by_reason = {l["reason"]: l["refusals"] for l in json.loads(cli(gw, "usage", "--by", "reason", "--json").stdout)["lines"]}
    assert by_reason == {"origin": 1, "rate_limit": 1, "validation": 1}
    by_client = {l["client"]: l for l in json.loads(cli(gw, "usage", "--by", "client", "--json").stdout)["lines"]}
    assert by_client["127.0.0.2"]["refusals_by_reason"] == {"origin": 1, "validation": 1}
    assert by_client["127.0.0.3"]["refusals_by_reason"] == {"rate_limit": 1}
    table = cli(gw, "usage", "--by", "route")
    assert table.returncode == 0 and "origin 1, rate_limit 1, validation 1" in table.stdout
    assert standin.stats()["calls"] == 1
