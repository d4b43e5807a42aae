"""The upstream pool's bounds through the real binary: with every connection to the paid API busy
and the wait queue full, a call is refused at once with a 503 (Retry-After, nothing sent, its
reservation released); waiting calls are served in turn; a timed-out call gives its connection back;
kept connections are closed after `idle_timeout` unused (sooner when the upstream's `Keep-Alive`
says so), and a reload changes that timeout."""
import threading

from conftest import address_config, request


def pooled(standin_port, connections=2, waiting=2, timeout="3s"):
    root = f"workers: 1\nupstream_pool: {{ max_connections: {connections}, max_waiting: {waiting} }}\n"
    config = address_config(standin_port, root_extra=root, timeout=timeout)
    return config.replace("    fixed: { format: json }", "    cost: 0.01 USD\n    fixed: { format: json }")


def test_a_full_pool_refuses_with_503_and_waiters_are_served(gateways, standin, api_key):
    gw = gateways(pooled(standin.port), env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=700)
    results = []
    lock = threading.Lock()

    def call(i):
        r = request(gw.port, "GET", f"/api/address?q=street+{i}")
        with lock:
            results.append(r)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status for r in results)
    # Two run, two wait for them, two are refused at once.
    assert statuses == [200, 200, 200, 200, 503, 503], statuses
    busy = [r for r in results if r.status == 503]
    assert all(r.json()["type"] == "urn:tollgate:problem:upstream-busy" and r.header("retry-after") == "1" for r in busy)
    assert standin.stats()["calls"] == 4
    gw.stop()
    out = gw.output()
    assert "upstream pool full" in out


def test_timed_out_calls_give_their_connection_back(gateways, standin, api_key):
    gw = gateways(pooled(standin.port, connections=1, waiting=0, timeout="300ms"), env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=2000)
    for _ in range(3):  # each times out; the one slot must come back every time
        assert request(gw.port, "GET", "/api/address?q=10+Downing+St").status == 504
    standin.mode("normal")
    assert request(gw.port, "GET", "/api/address?q=10+Downing+St").status == 200


def test_every_connection_the_pool_may_hold_is_kept_for_reuse(gateways, standin, api_key):
    """Answers that come back together are all kept for the next calls: 140 calls at once, three
    times over, open 140 connections to the upstream and no more. (A cap of 128 idle connections,
    below the pool's 256, closed the excess after each burst and opened it again for the next.)"""
    gw = gateways(address_config(standin.port, root_extra="workers: 1\n"), env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=300)
    opened_before = standin.stats()["connections"]
    for round_ in range(3):
        results = []
        lock = threading.Lock()

        def call(i):
            r = request(gw.port, "GET", f"/api/address?q=street+{round_}+{i}")
            with lock:
                results.append(r.status)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(140)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 140, sorted(set(results))
    # The stand-in counts every connection it accepted; each stats() call is one more.
    opened = standin.stats()["connections"] - opened_before - 1
    assert 1 <= opened <= 140, opened


def test_a_pooled_connection_dropped_by_the_upstream_is_retried_once_and_only_for_get(gateways, standin, api_key):
    """The upstream closes a kept-alive connection just as the next request arrives on it: a GET
    (safe to send again) is retried once on a fresh connection and the client never notices; a
    POST is not sent twice — the client gets a 502 and the upstream saw it once."""
    config = address_config(standin.port, root_extra="workers: 1\n", extra_route=f"""
  - name: post
    match: {{ method: POST, path: /api/post }}
    upstream: {{ url: "http://127.0.0.1:{standin.port}/v2/validate", auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
    params: {{ q: {{ in: body, type: string }} }}
""")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200  # opens a connection, kept
    standin.mode("close_reused")
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200
    assert standin.stats()["calls"] == 3  # the first call, the one dropped, its retry on a fresh connection
    r = gw.post("/api/post", '{"q": "Main Street"}', headers={"Content-Type": "application/json"})
    assert r.status == 502 and r.json()["type"] == "urn:tollgate:problem:upstream-error"
    assert standin.stats()["calls"] == 4  # sent once, on the reused connection, and not again
    gw.stop()
    assert "connection closed before a response" in gw.output()


def test_kept_connections_unused_for_the_idle_timeout_are_closed(gateways, standin, api_key):
    """`upstream_pool.idle_timeout` closes a kept connection the gateway has not used for that long
    (after three quarters of it at the earliest), before an upstream with a shorter keep-alive would
    close it under a request; the next call opens a new one. A kept connection younger than the
    timeout is reused."""
    import time
    asked = [0]

    def stats():  # each call is a connection of its own, open while it is answered
        asked[0] += 1
        return standin.stats()

    root = "workers: 1\nupstream_pool: { idle_timeout: 1s }\n"
    gw = gateways(address_config(standin.port, root_extra=root), env={"ADDRESS_API_KEY": api_key})
    opened = stats()["connections"]
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200
    assert stats()["open"] == 2  # the kept connection, and the one asking
    time.sleep(0.5)
    assert stats()["open"] == 2, "closed before three quarters of the idle timeout"
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200  # reused: young enough
    deadline = time.time() + 3
    while stats()["open"] != 1 and time.time() < deadline:
        time.sleep(0.1)
    assert stats()["open"] == 1, "the idle connection was not closed"
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200
    gateway_opened = stats()["connections"] - opened - (asked[0] - 1)
    assert gateway_opened == 2, gateway_opened  # the first, reused once, closed idle; then a new one
    gw.stop()


def test_a_reload_applies_a_new_idle_timeout_to_kept_connections(gateways, standin, api_key):
    import signal
    from access_helpers import eventually
    config = address_config(standin.port, root_extra="workers: 1\nupstream_pool: { idle_timeout: 1h }\n")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200
    assert standin.stats()["open"] == 2  # kept (for up to an hour), and the one asking
    gw.config.write_text(config.replace("idle_timeout: 1h", "idle_timeout: 400ms").replace("{{PORT}}", str(gw.port)))
    gw.proc.send_signal(signal.SIGHUP)
    assert eventually(lambda: '"config reloaded"' in gw.output(), within=10)
    assert eventually(lambda: standin.stats()["open"] == 1, within=3), "the kept connection outlived the new timeout"
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200


def test_an_upstream_keep_alive_timeout_closes_its_connections_sooner(gateways, standin, api_key):
    """An upstream that says `Keep-Alive: timeout=1` has its idle connections closed after ¾ of a
    second at most, whatever `idle_timeout` allows; one that says nothing keeps the pool's timeout."""
    import time
    from access_helpers import eventually
    config = address_config(standin.port, root_extra="workers: 1\nupstream_pool: { idle_timeout: 1h }\n")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200
    time.sleep(1.2)
    assert standin.stats()["open"] == 2, "closed without a hint, well before idle_timeout"
    standin.mode("short_keep_alive")
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200  # on the kept connection
    assert standin.stats()["open"] == 2  # kept: the hint allows ¾ s
    assert eventually(lambda: standin.stats()["open"] == 1, within=2), "kept past the upstream's keep-alive"
    assert request(gw.port, "GET", "/api/address?q=Main+Street").status == 200
