"""HTTP/1.1 handling at the client side: keep-alive, pipelining, limits, routing errors, bad input."""
import re
import socket
import time

from conftest import address_config


def raw(port, data, read_until_close=True, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close:
                break
        return b"".join(chunks)


def statuses(data):
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def test_pipelined_requests_are_answered_in_order(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    requests = (b"GET /api/address?q=first+one HTTP/1.1\r\nHost: x\r\nX-Request-ID: p1\r\n\r\n"
                b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-ID: p2\r\n\r\n"
                b"GET /api/address?q=third+one HTTP/1.1\r\nHost: x\r\nX-Request-ID: p3\r\nConnection: close\r\n\r\n")
    data = raw(gw.port, requests)
    assert statuses(data) == [200, 404, 200]
    assert data.index(b"X-Request-ID: p1") < data.index(b"X-Request-ID: p2") < data.index(b"X-Request-ID: p3")
    assert data.index(b"FIRST ONE") < data.index(b"THIRD ONE")
    assert standin.stats()["calls"] == 2


def test_keep_alive_and_connection_close(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        for i in range(3):
            s.sendall(b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\n\r\n")
            head = s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert b"Connection: close" not in head
    data = raw(gw.port, b"GET /api/address?q=Main+Street HTTP/1.0\r\n\r\n")
    assert statuses(data) == [200] and b"Connection: close" in data
    # What browsers send keeps the connection; `close` in any case, or among other options, ends it;
    # HTTP/1.0 keeps it only when asked to.
    for version, connection in ((b"1.1", b"keep-alive"), (b"1.0", b"Keep-Alive")):
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            for i in range(2):
                s.sendall(b"GET /api/address?q=Main+Street HTTP/" + version + b"\r\nHost: x\r\nConnection: " + connection + b"\r\n\r\n")
                head = s.recv(65536)
                assert head.startswith(b"HTTP/1.1 200"), (version, head)
                assert b"Connection: close" not in head, (version, head)
    for connection in (b"Close", b"TE, close", b"keep-alive, close"):
        data = raw(gw.port, b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\nConnection: " + connection + b"\r\n\r\n")
        assert statuses(data) == [200] and b"Connection: close" in data, connection


def test_body_over_limit_is_413_and_connection_closed(gateways, standin, api_key):
    config = address_config(standin.port, extra_route=f"""
  - name: post
    match: {{ method: POST, path: /api/post }}
    upstream: {{ url: "http://127.0.0.1:{standin.port}/v2/validate", auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
    params: {{ q: {{ in: body, type: string }} }}
    max_body: 1KiB
""")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    # Declared length over the limit: refused before the body is read.
    data = raw(gw.port, b"POST /api/post HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n")
    assert statuses(data) == [413] and b"Connection: close" in data and b"application/problem+json" in data
    # Chunked body that grows over the limit.
    chunk = b"400\r\n" + b"a" * 0x400 + b"\r\n"
    data = raw(gw.port, b"POST /api/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2 + b"0\r\n\r\n")
    assert statuses(data) == [413]
    # Within the limit it works.
    r = gw.post("/api/post", '{"q": "Main Street"}', headers={"Content-Type": "application/json"})
    assert r.status == 200
    assert standin.stats()["calls"] == 1


def test_expect_continue(gateways, standin, api_key):
    config = address_config(standin.port, extra_route=f"""
  - name: post
    match: {{ method: POST, path: /api/post }}
    upstream: {{ url: "http://127.0.0.1:{standin.port}/v2/validate", auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
    params: {{ q: {{ in: body, type: string }} }}
""")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    body = b'{"q": "Main Street"}'
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"POST /api/post HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert s.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        assert s.recv(65536).startswith(b"HTTP/1.1 200")


def test_not_found_and_method_not_allowed(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/unknown")
    assert r.status == 404 and r.json()["type"].endswith("not-found")
    r = gw.post("/api/address", "{}")
    assert r.status == 405 and r.header("allow") == "GET"
    data = raw(gw.port, b"HEAD /api/address?q=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(data) == [405]
    assert standin.stats()["calls"] == 0


def test_malformed_requests_get_400_problem(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    for bad in [b"GARBAGE\r\n\r\n",
                b"GET /api/address?q=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                b"GET /api/address HTTP/1.1\r\nBad Header\r\n\r\n",
                b"GET ftp://evil.example/api/address?q=abc HTTP/1.1\r\nHost: x\r\n\r\n",  # absolute-form is http(s) only
                b"GET evil.example:443 HTTP/1.1\r\nHost: x\r\n\r\n"]:  # authority-form is for CONNECT
        data = raw(gw.port, bad)
        assert statuses(data) == [400], (bad, data)
        assert b"application/problem+json" in data and b"request_id" in data
    data = raw(gw.port, b"GET /api/address HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n")
    assert statuses(data) == [431], data[:200]
    assert standin.stats()["calls"] == 0


def test_ambiguous_framing_is_refused_and_nothing_behind_it_is_read(gateways, standin, api_key):
    """The request decoder's refusals (docs/http-conformance.md) through the binary: each is a 400
    problem, the connection closes, and a request smuggled behind it never reaches the upstream."""
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    smuggled = b"GET /api/address?q=smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\n"
    for bad in [b"GET /api/address?q=Main+Street HTTP/1.1\nHost: x\n\n",                    # bare LF
                post + b"Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",                      # HTAB in a framing field
                post + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",                # chunked not last
                post + b"Transfer-Encoding: chunked\r\n\r\n1 ;a=b\r\nx\r\n0\r\n\r\n",          # BWS in a chunk line
                post + b"Transfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 40\r\n\r\n",  # framing in trailers
                post + b"Content-Length: +4\r\n\r\nabcd",                                     # not digits
                b"GET /api/address?q=Main+Street HTTP/1.2\r\nHost: x\r\n\r\n"]:          # version
        data = raw(gw.port, bad + smuggled)
        assert statuses(data) == [400], (bad, data[:300])
        assert b"application/problem+json" in data and b"Connection: close" in data
    # Nothing is read after a request that closes its connection, either.
    data = raw(gw.port, b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + smuggled)
    assert statuses(data) == [200]
    assert standin.stats()["calls"] == 1 and "smuggled" not in standin.last()["target"]


def test_idle_keep_alive_connections_are_closed(gateways, standin, api_key):
    config = address_config(standin.port).replace("shutdown_grace: 5s", "shutdown_grace: 5s\nidle_timeout: 300ms")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert s.recv(1024) == b""  # closed by the gateway
        assert time.monotonic() - started < 2
    # A request in progress is not idleness, however long its answer takes.
    standin.mode("slow", delay_ms=1000)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        assert s.recv(1024) == b""
    standin.mode("normal")
    # A client that never finishes its head is closed too (slowloris).
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /api/address?q=abc HTTP/1.1\r\nHost: x\r\n")
        assert s.recv(1024) == b""


def test_rfc9112_request_framing_rules(gateways, standin, api_key):
    """docs/http-conformance.md lists each rule; every one is answered and the connection closed."""
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    path = b"/api/address?q=Main+Street"
    cases = [
        (b"GET " + path + b" HTTP/1.1\r\n\r\n", 400),                                   # no Host
        (b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),             # two Host lines
        (b"GET " + path + b" HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),                      # invalid Host
        (b"GET " + path + b" HTTP/1.1\r\nHost: exa mple\r\n\r\n", 400),
        (b"POST " + path + b" HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),  # 1.0 + TE
        (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 90000 + b"\r\n\r\n", 431),
    ]
    for request, status in cases:
        data = raw(gw.port, request)
        assert statuses(data) == [status], (request[:80], data[:200])
        assert b"application/problem+json" in data and b"Connection: close" in data
    # Valid forms still work: an IPv6 literal with a port, HTTP/1.0 without Host, and the
    # absolute form, whose authority is ignored (routes match the path only).
    assert statuses(raw(gw.port, b"GET " + path + b" HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", read_until_close=False)) == [200]
    assert statuses(raw(gw.port, b"GET " + path + b" HTTP/1.0\r\n\r\n")) == [200]
    data = raw(gw.port, b"GET http://elsewhere.example" + path + b" HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n",
               read_until_close=False)
    assert statuses(data) == [200]
    assert standin.last()["target"] == "/v2/validate?q=Main%20Street&country=US&format=json"
    assert standin.stats()["calls"] == 3
