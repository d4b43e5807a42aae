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
