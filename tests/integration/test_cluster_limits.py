"""Rate limits across gateways on one PostgreSQL store: a client spreading its requests over 3
real gateways gets its allowance within 2 % (plus the bursts), and when the database goes away
each gateway keeps enforcing its own limits."""
import itertools
import os
import re
import threading
import time

from cluster_helpers import fresh_database
from conftest import free_port, request
from identity_helpers import create_key, identity_env, orders_config

ORDERS = "/api/users/alice/orders"
RATE, BURST = 50, 5


def limit_config(standin_port, url, extra=""):
    return orders_config(standin_port, route_extra=f"    limits: [{{ per: key, rate: {RATE}/s, burst: {BURST} }}]\n") \
        + f"store: {{ url: '{url}', sync_interval: 100ms }}\n{extra}"


def spread(gws, key, seconds, threads=6):
    """Round-robin requests over `gws` for `seconds`; returns (answers by status, elapsed)."""
    turn, counts, lock = itertools.count(), {}, threading.Lock()
    deadline = time.monotonic() + seconds

    def run():
        while time.monotonic() < deadline:
            gw = gws[next(turn) % len(gws)]
            try:
                status = request(gw.port, "GET", ORDERS, headers={"X-API-Key": key}, timeout=3).status
            except OSError:
                continue
            with lock:
                counts[status] = counts.get(status, 0) + 1

    began = time.monotonic()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return counts, time.monotonic() - began


def test_a_key_spread_over_three_gateways_gets_its_allowance_within_two_percent(gateways, standin, api_key):
    url = fresh_database()
    env = identity_env(api_key)
    admin_port = free_port()
    gws = [gateways(limit_config(standin.port, url, f"admin: 127.0.0.1:{admin_port}\n" if i == 0 else ""), env=env)
           for i in range(3)]
    k = create_key(gws[0], "--name", "spread", "--owner", "alice")
    seconds = float(os.environ.get("CLUSTER_LIMIT_SECONDS", "12"))
    counts, elapsed = spread(gws, k["key"], seconds)
    allowed = counts.get(200, 0)
    allowance = RATE * elapsed + BURST
    print(f"allowed {allowed} of {sum(counts.values())} in {elapsed:.2f}s; allowance {allowance:.0f}")
    assert counts.get(429, 0) > allowed, f"the load did not exceed the limit: {counts}"
    # Each gateway alone would let 3× through. Within 2 % plus the other gateways' first bursts.
    assert allowed <= allowance * 1.02 + 2 * BURST, (allowed, allowance)
    assert allowed >= allowance * 0.98 - BURST, (allowed, allowance)
    assert standin.stats()["calls"] == allowed
    metrics = request(admin_port, "GET", "/metrics").text
    received = int(re.search(r"^tollgate_ratelimit_sync_units_received_total (\d+)", metrics, re.M).group(1))
    assert received > 0, metrics


def test_on_store_error_open_and_closed_while_the_database_is_down(gateways, standin, api_key, tmp_path):
    import pg_cluster
    own = pg_cluster.Cluster(tmp_path / "pg").start()  # its own server: this test stops it
    try:
        config = orders_config(standin.port, route_extra="    cost: 0.01 USD\n") + f"""
  - name: strict
    match: {{ method: GET, path: /api/strict }}
    upstream:
      url: http://127.0.0.1:{standin.port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
    limits: [{{ per: ip, rate: 1000/s, on_store_error: closed }}]
  - name: lenient
    match: {{ method: GET, path: /api/lenient }}
    upstream:
      url: http://127.0.0.1:{standin.port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
    limits: [{{ per: ip, rate: 2/min, burst: 2 }}]
budgets:
  - {{ name: soft, limit: 100 USD, period: day, scope: global, on_store_error: open }}
store: {{ url: '{own.url()}', query_timeout: 1s }}
"""
        gw = gateways(config, env=identity_env(api_key))
        k = create_key(gw, "--name", "partner", "--owner", "alice")
        paid = lambda: gw.get(ORDERS, headers={"X-API-Key": k["key"]}, timeout=5)
        assert paid().status == 200 and gw.get("/api/strict").status == 200
        own.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and gw.get("/api/strict").status != 503:
            time.sleep(0.1)
        r = gw.get("/api/strict")
        assert r.status == 503 and r.json()["type"].endswith("rate-limit-unavailable") and r.header("retry-after"), r.text
        # Open (the default for limits): this gateway's own limit still holds.
        assert [gw.get("/api/lenient").status for _ in range(3)] == [200, 200, 429]
        # Open budget: the call goes ahead on this gateway's own book, without a ledger row.
        calls = standin.stats()["calls"]
        assert paid().status == 200 and standin.stats()["calls"] == calls + 1
        assert "rate limit sync failed" in gw.output()
        own.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and gw.get("/api/strict").status != 200:
            time.sleep(0.2)
        assert gw.get("/api/strict").status == 200, "the closed limit did not recover"
        assert "rate limits shared again" in gw.output()
    finally:
        own.stop()
