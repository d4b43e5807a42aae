"""Rate limits through the real binary: 429 and headers, spoof resistance, throttling, exactness."""
import http.client
import threading
import time

from conftest import address_config, request


def limited_config(port, limits, root_extra=""):
    return address_config(port, root_extra=root_extra).replace(
        "    response:\n      fields: [formatted, postcode, valid]",
        "    response:\n      fields: [formatted, postcode, valid]\n    limits:\n" + "\n".join("      - " + l for l in limits))


def get_from(port, path, source="127.0.0.1", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body
    finally:
        conn.close()


def test_429_with_retry_after_and_ratelimit_headers(gateways, standin, api_key):
    gw = gateways(limited_config(standin.port, ["{ per: ip, rate: 3/min }"]), env={"ADDRESS_API_KEY": api_key})
    seen = []
    for _ in range(3):
        r = gw.get("/api/address?q=Main+Street")
        assert r.status == 200
        assert r.header("ratelimit-policy") == '"ip";q=3;w=60'
        seen.append(r.header("ratelimit"))
    assert [s.split(";")[1] for s in seen] == ["r=2", "r=1", "r=0"]
    r = gw.get("/api/address?q=Main+Street")
    assert r.status == 429
    assert r.header("content-type") == "application/problem+json"
    assert r.header("retry-after") == "20"
    assert r.header("ratelimit") == '"ip";r=0;t=60'
    assert r.json()["type"].endswith("rate-limited") and r.json()["request_id"] == r.header("x-request-id")
    assert standin.stats()["calls"] == 3
    # Invalid requests are counted too (limits run before validation).
    assert gw.get("/api/address?q=x").status == 429


def test_spoofed_forwarded_headers_from_untrusted_peer_do_not_reset(gateways, standin, api_key):
    gw = gateways(limited_config(standin.port, ["{ per: ip, rate: 2/min }"]), env={"ADDRESS_API_KEY": api_key})
    statuses = [gw.get("/api/address?q=Main+Street", headers={"X-Forwarded-For": f"198.51.100.{i}",
                                                              "Forwarded": f"for=203.0.113.{i}"}).status for i in range(6)]
    assert statuses == [200, 200, 429, 429, 429, 429]
    assert standin.stats()["calls"] == 2


def test_trusted_proxy_chain_gives_each_client_its_own_bucket(gateways, standin, api_key):
    config = limited_config(standin.port, ["{ per: ip, rate: 2/min }"], root_extra="trusted_proxies: [127.0.0.1/32, 127.0.0.3/32]")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    path = "/api/address?q=Main+Street"
    # Through the trusted proxy (127.0.0.1), clients are told apart by X-Forwarded-For...
    assert [get_from(gw.port, path, headers={"X-Forwarded-For": "198.51.100.1"})[0] for _ in range(3)] == [200, 200, 429]
    assert get_from(gw.port, path, headers={"X-Forwarded-For": "198.51.100.2"})[0] == 200
    # ...a client-supplied prefix does not change who they are (rightmost untrusted wins)...
    assert get_from(gw.port, path, headers={"X-Forwarded-For": "7.7.7.7, 198.51.100.1"})[0] == 429
    # ...a second trusted hop is skipped...
    assert get_from(gw.port, path, headers={"X-Forwarded-For": "198.51.100.1, 127.0.0.3"})[0] == 429
    # ...and a direct client (127.0.0.2, not trusted) is itself, whatever it claims.
    assert [get_from(gw.port, path, source="127.0.0.2", headers={"X-Forwarded-For": f"198.51.100.{9 + i}"})[0]
            for i in range(3)] == [200, 200, 429]
    gw.stop()
    clients = [l["client"] for l in gw.access_log()]
    assert "198.51.100.1" in clients and "198.51.100.2" in clients and "127.0.0.2" in clients
    assert "7.7.7.7" not in clients


def test_ipv6_clients_grouped_by_prefix_through_proxy(gateways, standin, api_key):
    config = limited_config(standin.port, ["{ per: ip, rate: 2/min }"], root_extra="trusted_proxies: [127.0.0.1/32]")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    path = "/api/address?q=Main+Street"
    results = [get_from(gw.port, path, headers={"X-Forwarded-For": f"2001:db8:1:2::{i}"})[0] for i in range(1, 4)]
    assert results == [200, 200, 429]
    assert get_from(gw.port, path, headers={"X-Forwarded-For": "2001:db8:1:3::1"})[0] == 200


def test_global_limit_is_shared_by_clients_and_routes(gateways, standin, api_key):
    config = limited_config(standin.port, ["{ per: global, rate: 3/min }"]) + f"""
  - name: second
    match: {{ method: GET, path: /api/second }}
    upstream: {{ url: "http://127.0.0.1:{standin.port}/v2/validate", auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
    params: {{ q: {{ type: string }} }}
    limits: [{{ per: global, rate: 3/min }}]
"""
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    a = get_from(gw.port, "/api/address?q=Main+Street", source="127.0.0.2")[0]
    b = get_from(gw.port, "/api/second?q=Main+Street", source="127.0.0.3")[0]
    c = get_from(gw.port, "/api/address?q=Main+Street", source="127.0.0.4")[0]
    d = get_from(gw.port, "/api/second?q=Main+Street", source="127.0.0.5")[0]
    assert [a, b, c, d] == [200, 200, 200, 429]


def test_header_keyed_limit(gateways, standin, api_key):
    gw = gateways(limited_config(standin.port, ["{ per: 'header:X-Client', rate: 1/min }"]), env={"ADDRESS_API_KEY": api_key})
    assert gw.get("/api/address?q=Main+Street", headers={"X-Client": "a"}).status == 200
    assert gw.get("/api/address?q=Main+Street", headers={"X-Client": "a"}).status == 429
    assert gw.get("/api/address?q=Main+Street", headers={"X-Client": "b"}).status == 200
    assert gw.get("/api/address?q=Main+Street").status == 200   # no header: one shared bucket
    assert gw.get("/api/address?q=Main+Street").status == 429


def test_skip_successful_counts_only_failures(gateways, standin, api_key):
    gw = gateways(limited_config(standin.port, ["{ per: ip, rate: 2/min, skip_successful: true }"]), env={"ADDRESS_API_KEY": api_key})
    for _ in range(5):
        assert gw.get("/api/address?q=Main+Street").status == 200
    assert gw.get("/api/address?q=x").status == 422
    assert gw.get("/api/address?q=x").status == 422
    assert gw.get("/api/address?q=Main+Street").status == 429
    assert standin.stats()["calls"] == 5


def test_throttle_mode_delays_instead_of_refusing(gateways, standin, api_key):
    gw = gateways(limited_config(standin.port, ["{ per: ip, rate: 5/s, burst: 1, mode: throttle, max_delay: 1s, queue: 3 }"]),
                  env={"ADDRESS_API_KEY": api_key})
    results = [None] * 6
    done = [None] * 6

    def call(i):
        results[i] = gw.get("/api/address?q=Main+Street").status
        done[i] = time.monotonic()

    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join(10)
    ok = sorted(d - started for d, s in zip(done, results) if s == 200)
    # 1 immediately + 3 waiting (the queue) at 200 ms spacing; the rest refused.
    assert sorted(results) == [200, 200, 200, 200, 429, 429]
    assert ok[-1] >= 0.55, ok
    assert standin.stats()["calls"] == 4


def test_64_connections_get_exactly_the_allowance(gateways, standin, api_key):
    rate, burst = 20, 30
    # Refusal pacing off: this measures the limiter's exactness, and paced connections would come
    # back in waves, leaving up to rate × refusal_delay of the allowance unused at the window's end.
    gw = gateways(limited_config(standin.port, [f"{{ per: ip, rate: {rate}/s, burst: {burst} }}"], root_extra="delay_after_refusals: 0"),
                  env={"ADDRESS_API_KEY": api_key})
    standin.reset()
    counts = {"ok": 0, "limited": 0, "other": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + 2.0

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        while time.monotonic() < stop_at:
            conn.request("GET", "/api/address?q=Main+Street")
            r = conn.getresponse()
            r.read()
            key = "ok" if r.status == 200 else "limited" if r.status == 429 else "other"
            with lock:
                counts[key] += 1
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - started
    calls = standin.stats()["calls"]
    allowance = burst + rate * elapsed
    assert counts["other"] == 0
    assert counts["limited"] > counts["ok"]            # the clients really pushed past the limit
    assert calls == counts["ok"]                       # every 200 was one upstream call, and only those
    assert burst + rate * 1.9 <= calls <= allowance + 1, (calls, allowance)


def test_metrics_count_responses_and_a_full_rate_limit_table(gateways, standin, api_key):
    from conftest import free_port
    admin = free_port()
    config = limited_config(standin.port, ["{ per: ip, rate: 10/min }"],
                            root_extra=f"trusted_proxies: [127.0.0.1/32]\nrate_limit: {{ max_keys: 64 }}\nadmin: 127.0.0.1:{admin}")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    for i in range(200):  # far more distinct live clients than the table holds
        get_from(gw.port, "/api/address?q=x", headers={"X-Forwarded-For": f"198.51.{i // 250}.{i % 250}"})
    assert gw.get("/nope").status == 404
    text = request(admin, "GET", "/metrics").text
    lines = dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))
    assert int(lines['tollgate_responses_total{class="4xx"}']) >= 200
    assert int(lines['tollgate_ratelimit_overflow_total{limit="ip"}']) > 0
    assert float(lines['tollgate_ratelimit_tracked_keys{limit="ip"}']) <= 64  # gauges are floats in Prometheus text
    # Nothing was dropped on the way to the log or the store (both run off the event loop, bounded).
    assert lines["tollgate_access_log_dropped_total"] == "0" and lines["tollgate_alerts_dropped_total"] == "0"
    assert request(admin, "GET", "/other").status == 404
    # The operator endpoint is not on the public listener.
    assert gw.get("/metrics").status == 404


def test_ratelimit_headers_on_every_response_of_a_limited_route(gateways, standin, api_key):
    """Responses refused by a policy that runs before the limits (origin here) or before any policy
    (a body over the limit) still carry the limits' state, and consume nothing."""
    route_extra = '    origin: { allow: ["https://shop.example"] }\n'
    config = limited_config(standin.port, ["{ per: ip, rate: 5/min }"]).replace(
        "    limits:\n", route_extra + "    limits:\n", 1)
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    for _ in range(3):
        r = gw.get("/api/address?q=Main+Street", headers={"Origin": "https://evil.example"})
        assert r.status == 403
        assert r.header("ratelimit-policy") == '"ip";q=5;w=60'
        assert r.header("ratelimit") == '"ip";r=5;t=0'  # refused before the limit: nothing taken
    ok = gw.get("/api/address?q=Main+Street", headers={"Origin": "https://shop.example"})
    assert ok.status == 200 and ok.header("ratelimit").startswith('"ip";r=4;')
    r = gw.get("/api/address?q=Main+Street", headers={"Origin": "https://evil.example"})
    assert r.status == 403 and r.header("ratelimit").startswith('"ip";r=4;t=')
    big = request(gw.port, "GET", "/api/address?q=Main+Street", headers={"Origin": "https://shop.example"}, body="x" * 20000)
    assert big.status == 413 and big.header("ratelimit").startswith('"ip";r=4;')
    assert standin.stats()["calls"] == 1
