"""HTTP/2 on the TLS listener (ALPN): each stream takes the HTTP/1.1 request's path — route, policies,
budget, upstream — and the floods HTTP/2 allows end the connection without reaching the upstream
more than the limits allow. The client is raw frames (h2_helpers), so attacks are sent as written."""
import json
import signal
import ssl
import subprocess
import time

import pytest
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame

from access_helpers import eventually
from h2_helpers import ENHANCE_YOUR_CALM, H2, PROTOCOL_ERROR, Answer, h2_tls_config
from test_tls import https_get, make_ca_and_cert

PATH = "/api/address?q=Main+Street"
POST_ROUTE = """
  - name: post
    match: {{ method: POST, path: /api/post }}
    upstream: {{ url: "http://127.0.0.1:{port}/v2/validate", auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
    params: {{ q: {{ in: body, type: string }} }}
    max_body: 1KiB
"""
BIG_ROUTE = """
  - name: upload
    match: {{ method: POST, path: /api/upload }}
    upstream: {{ url: "http://127.0.0.1:{port}/v2/validate", auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
    params: {{ q: {{ in: body, type: string }}, note: {{ in: body, type: string, max_length: 300000 }} }}
    max_body: 1MiB
"""


@pytest.fixture
def certs(tmp_path):
    return make_ca_and_cert(tmp_path)


def start(gateways, standin, certs, api_key, **kw):
    return gateways(h2_tls_config(standin.port, certs, **kw), env={"ADDRESS_API_KEY": api_key})


def still_serves(gw, certs, standin):
    """A new connection, HTTP/2 and HTTP/1.1, is served after whatever the test did."""
    c = H2(gw.port, certs["ca"])
    try:
        assert c.get(PATH).status == 200
    finally:
        c.close()
    r, *_ = https_get(gw.port, certs["ca"])
    assert r.status == 200


def test_streams_take_the_http1_path_headers_problems_and_log(gateways, standin, certs, api_key):
    gw = start(gateways, standin, certs, api_key)
    c = H2(gw.port, certs["ca"])
    ok = c.get(PATH, headers=[("x-request-id", "h2-request-0001")])
    assert ok.status == 200 and json.loads(ok.body)["formatted"] == "MAIN STREET, US"
    assert ok.header("x-request-id") == "h2-request-0001"
    assert ok.header("strict-transport-security") == "max-age=31536000; includeSubDomains"
    bad = c.get("/api/address?q=x")
    assert bad.status == 422 and bad.header("content-type") == "application/problem+json"
    assert json.loads(bad.body)["request_id"] == bad.header("x-request-id")
    assert c.get("/nowhere").status == 404
    # HPACK: the request id, new in every response, enters the dynamic table with the connection's
    # first response only (later ones name that entry and are not indexed, RFC 7541 §7.1.3), so
    # ids cannot crowd out the fields that repeat.
    table = [(bytes(name), bytes(value)) for name, value in c.decoder.header_table.dynamic_entries]
    assert [v for n, v in table if n == b"x-request-id"] == [b"h2-request-0001"], table
    assert {b"x-content-type-options", b"cache-control", b"content-length"} <= {n for n, _ in table}, table
    c.close()
    # The same fields as over HTTP/1.1, but no Connection header (RFC 9113 §8.2.2).
    r, *_ = https_get(gw.port, certs["ca"])
    h1 = {k.lower() for k, _ in r.getheaders()} - {"x-request-id"}
    h2 = {k for k, _ in ok.headers if not k.startswith(":")} - {"x-request-id"}
    assert h1 == h2 and "connection" not in h2
    assert standin.stats()["authorized"] == 2
    assert standin.last()["headers"][0] == ["Host", f"127.0.0.1:{standin.port}"]  # :authority is not forwarded
    statuses = lambda: sorted((l["status"], l.get("protocol", "-")) for l in gw.access_log() if l["path"] == "/api/address")
    assert eventually(lambda: statuses() == [(200, "-"), (200, "h2"), (422, "h2")], within=5), statuses()
    assert api_key not in gw.output()


def test_concurrent_streams_share_the_clients_rate_limit(gateways, standin, certs, api_key):
    config = h2_tls_config(standin.port, certs).replace(
        "    response:\n      fields: [formatted, postcode, valid]",
        "    response:\n      fields: [formatted, postcode, valid]\n    limits:\n      - { per: ip, rate: 5/min }")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    c = H2(gw.port, certs["ca"])
    answers = c.wait(*[c.request("GET", PATH) for _ in range(12)])
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * 5 + [429] * 7, statuses
    assert standin.stats()["calls"] == 5
    assert all(a.header("ratelimit-policy") for a in answers)
    c.close()


def test_http1_clients_and_http2_off(gateways, standin, certs, api_key):
    gw = start(gateways, standin, certs, api_key, http2="false")
    ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    import socket
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", gw.port)), server_hostname="localhost") as s:
        assert s.selected_alpn_protocol() == "http/1.1"
    r, *_ = https_get(gw.port, certs["ca"])  # no ALPN at all
    assert r.status == 200
    out = subprocess.run(["curl", "-s", "--http2", "--cacert", str(certs["ca"]), "-o", "/dev/null", "-w", "%{http_version}",
                          f"https://localhost:{gw.port}{PATH}"], capture_output=True, text=True)
    assert out.stdout == "1.1"


def test_curl_speaks_http2(gateways, standin, certs, api_key):
    gw = start(gateways, standin, certs, api_key)
    out = subprocess.run(["curl", "-s", "--http2", "--cacert", str(certs["ca"]), "-w", "\n%{http_version} %{http_code}",
                          f"https://localhost:{gw.port}{PATH}"], capture_output=True, text=True)
    assert out.stdout.endswith("\n2 200"), out.stdout


def test_streams_over_the_limit_end_the_connection(gateways, standin, certs, api_key):
    """SETTINGS_MAX_CONCURRENT_STREAMS is announced; a client that opens more at once breaks it:
    GOAWAY PROTOCOL_ERROR, and nothing more is called upstream. (RFC 9113 §5.1.2 makes it a stream
    error, PROTOCOL_ERROR or REFUSED_STREAM; NIO treats it as a connection error, which §5.4.1
    allows: "an endpoint MAY choose to treat a stream error as a connection error".)"""
    gw = start(gateways, standin, certs, api_key, http2="{ max_concurrent_streams: 4 }")
    c = H2(gw.port, certs["ca"])
    c.pump(lambda: 3 in c.server_settings, timeout=5)
    assert c.server_settings[3] == 4  # SETTINGS_MAX_CONCURRENT_STREAMS
    assert [a.status for a in c.wait(*[c.request("GET", PATH) for _ in range(4)])] == [200] * 4  # 4 at once
    standin.mode("slow", delay_ms=1000)
    for _ in range(6):
        c.request("GET", PATH)
    assert c.wait_closed(timeout=10) and c.goaway == PROTOCOL_ERROR
    time.sleep(1.2)
    assert standin.stats()["calls"] <= 8
    still_serves(gw, certs, standin)


def test_body_over_limit_resets_only_its_stream(gateways, standin, certs, api_key):
    gw = start(gateways, standin, certs, api_key, extra_route=POST_ROUTE.format(port=standin.port))
    c = H2(gw.port, certs["ca"])
    big = c.request("POST", "/api/post", headers=[("content-type", "application/json")], body=b"a" * 600, end=False)
    c.data(big, b"a" * 600, end=False)
    (a,) = c.wait(big)
    assert a.status == 413 and a.header("content-type") == "application/problem+json"
    declared = c.request("POST", "/api/post", headers=[("content-type", "application/json"), ("content-length", "5000")], end=False)
    assert c.wait(declared)[0].status == 413
    ok = c.request("POST", "/api/post", headers=[("content-type", "application/json")], body=b'{"q": "Main Street"}')
    assert c.wait(ok)[0].status == 200 and c.goaway is None  # the connection goes on
    assert standin.stats()["calls"] == 1
    c.close()


def test_a_body_larger_than_the_window_arrives_whole(gateways, standin, certs, api_key):
    """Inbound flow control is the gateway's: a client that keeps to the windows can send a body
    several times the 64 KiB initial window, because the gateway refills the connection's and the
    stream's windows as the DATA arrives; the upstream gets every byte, in order."""
    gw = start(gateways, standin, certs, api_key, extra_route=BIG_ROUTE.format(port=standin.port))
    c = H2(gw.port, certs["ca"])
    body = b'{"q": "Main Street", "note": "' + b"".join(b"%07d," % i for i in range(25_000)) + b'"}'
    assert len(body) > 3 * 65_535
    sid = c.request("POST", "/api/upload", headers=[("content-type", "application/json")], end=False)
    assert c.send_body(sid, body), c.send_windows  # stalls without the gateway's WINDOW_UPDATEs
    (a,) = c.wait(sid)
    assert a.status == 200, a.body
    assert json.loads(standin.last()["body"]) == json.loads(body)
    # The connection's window was refilled too: a second upload on the same connection.
    sid = c.request("POST", "/api/upload", headers=[("content-type", "application/json")], end=False)
    assert c.send_body(sid, body) and c.wait(sid)[0].status == 200 and c.goaway is None
    c.close()


def test_a_stream_reset_in_the_read_that_opened_it_costs_nothing(gateways, standin, certs, api_key):
    """A request is answered once the read that made it whole has been handled: a stream opened
    and reset in the same read never reaches the policies or the upstream (the rapid-reset
    pattern), while the streams around it are answered."""
    gw = start(gateways, standin, certs, api_key)
    c = H2(gw.port, certs["ca"])
    assert c.get(PATH).status == 200
    h = HeadersFrame(c.next_id, c.header_block("GET", PATH), flags=["END_HEADERS", "END_STREAM"])
    reset, c.next_id = c.next_id, c.next_id + 2
    c.send(h.serialize() + RstStreamFrame(reset, error_code=0x8).serialize())  # one TLS record, one read
    assert c.get(PATH).status == 200
    assert standin.stats()["calls"] == 2
    assert reset not in c.answers or c.answers[reset].status is None
    c.close()


def test_rapid_reset_ends_the_connection(gateways, standin, certs, api_key):
    """CVE-2023-44487: streams opened and reset at once. A stream reset in a later read than the one
    that opened it is a request begun, so the count is bounded (200 in 30 s), then GOAWAY
    ENHANCE_YOUR_CALM."""
    gw = start(gateways, standin, certs, api_key)
    standin.mode("slow", delay_ms=200)
    c = H2(gw.port, certs["ca"])
    try:
        for _ in range(400):
            sid = c.request("GET", PATH)
            c.frame(RstStreamFrame(sid, error_code=0x8))
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        pass
    assert c.wait_closed(timeout=10)
    assert c.goaway == ENHANCE_YOUR_CALM
    time.sleep(0.5)
    assert standin.stats()["calls"] <= 210
    still_serves(gw, certs, standin)


@pytest.mark.parametrize("flood", ["settings", "ping"])
def test_control_frame_floods_end_the_connection(gateways, standin, certs, api_key, flood):
    gw = start(gateways, standin, certs, api_key)
    c = H2(gw.port, certs["ca"])
    frame = SettingsFrame(0, settings={4: 65535}) if flood == "settings" else PingFrame(0, opaque_data=b"12345678")
    try:
        c.send(frame.serialize() * 1000)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        pass
    assert c.wait_closed(timeout=10)
    assert c.goaway == ENHANCE_YOUR_CALM
    assert eventually(lambda: "HTTP/2 connection ended by a protocol error" in gw.output(), within=5)
    still_serves(gw, certs, standin)


def test_continuation_flood_ends_the_connection(gateways, standin, certs, api_key):
    gw = start(gateways, standin, certs, api_key)
    c = H2(gw.port, certs["ca"])
    c.frame(HeadersFrame(1, c.header_block("GET", PATH)))  # no END_HEADERS
    try:
        for _ in range(100):
            c.frame(ContinuationFrame(1, c.encoder.encode([("x-pad", "a" * 100)])))
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        pass
    assert c.wait_closed(timeout=10)
    assert c.goaway is not None
    assert standin.stats()["calls"] == 0
    still_serves(gw, certs, standin)


def test_header_lists_over_the_limit_and_hpack_bombs_end_the_connection(gateways, standin, certs, api_key):
    gw = start(gateways, standin, certs, api_key, http2="{ max_header_list_size: 4KiB }")
    c = H2(gw.port, certs["ca"])
    assert c.get(PATH, headers=[("x-small", "a" * 100)]).status == 200
    c.pump(lambda: 6 in c.server_settings, timeout=5)
    assert c.server_settings[6] == 4096  # SETTINGS_MAX_HEADER_LIST_SIZE
    c.request("GET", PATH, headers=[("x-big", "a" * 8000)])
    assert c.wait_closed(timeout=10) and c.goaway is not None
    # An HPACK bomb: a 3 KB field in the dynamic table, then referenced 50 times in 50 bytes.
    c = H2(gw.port, certs["ca"])
    c.get(PATH, headers=[("x-bomb", "b" * 3000)])  # indexed now
    block = c.header_block("GET", PATH, [("x-bomb", "b" * 3000)] * 50)
    assert len(block) < 200
    c.frame(HeadersFrame(c.next_id, block, flags=["END_HEADERS", "END_STREAM"]))
    assert c.wait_closed(timeout=10) and c.goaway is not None
    assert standin.stats()["calls"] == 2
    still_serves(gw, certs, standin)


def test_idle_connections_close_and_shutdown_answers_open_streams(gateways, standin, certs, api_key):
    config = h2_tls_config(standin.port, certs).replace("shutdown_grace: 5s", "shutdown_grace: 5s\nidle_timeout: 500ms")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    idle = H2(gw.port, certs["ca"])
    assert idle.get(PATH).status == 200
    assert idle.wait_closed(timeout=5) and idle.goaway == 0  # GOAWAY NO_ERROR, then closed
    standin.mode("slow", delay_ms=1500)
    busy = H2(gw.port, certs["ca"])  # an open stream is not idleness, however long its answer takes
    assert busy.get(PATH).status == 200 and busy.goaway is None
    assert busy.wait_closed(timeout=5) and busy.goaway == 0
    c = H2(gw.port, certs["ca"])
    sid = c.request("GET", PATH)
    time.sleep(0.3)
    gw.proc.send_signal(signal.SIGTERM)
    (a,) = c.wait(sid, timeout=10)
    assert a.status == 200  # answered during the drain
    assert c.wait_closed(timeout=10) and c.goaway == 0
    assert gw.proc.wait(10) == 0


def test_a_slow_body_times_out_its_stream_only(gateways, standin, certs, api_key):
    config = h2_tls_config(standin.port, certs, extra_route=POST_ROUTE.format(port=standin.port)).replace(
        "shutdown_grace: 5s", "shutdown_grace: 5s\nrequest_head_timeout: 1s\nmin_body_rate: 1KiB")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    c = H2(gw.port, certs["ca"])
    slow = c.request("POST", "/api/post", headers=[("content-type", "application/json")], body=b'{"q": ', end=False)
    started = time.time()
    (a,) = c.wait(slow, timeout=10)
    assert a.status == 408 and 0.9 < time.time() - started < 5
    ok = c.request("POST", "/api/post", headers=[("content-type", "application/json")], body=b'{"q": "Main Street"}')
    assert c.wait(ok)[0].status == 200 and c.goaway is None
    assert standin.stats()["calls"] == 1


def test_a_stalled_tls_handshake_is_closed(gateways, standin, certs, api_key):
    """Before ALPN has chosen a protocol no request handler exists to time the client out: the
    handshake has `request_head_timeout` to finish."""
    import socket
    config = h2_tls_config(standin.port, certs).replace("shutdown_grace: 5s", "shutdown_grace: 5s\nrequest_head_timeout: 1s")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
    started = time.time()
    assert s.recv(100) == b"" and 0.9 < time.time() - started < 4
    s.close()
    still_serves(gw, certs, standin)


def test_a_run_of_refusals_or_a_denied_address_ends_the_connection(gateways, standin, certs, api_key):
    """What closes an HTTP/1.1 connection after its answer ends an HTTP/2 connection gracefully:
    the refusal run is the connection's (streams cannot restart it), then GOAWAY NO_ERROR."""
    config = h2_tls_config(standin.port, certs, root_extra="close_after_refusals: 3\ndelay_after_refusals: 0").replace(
        "    response:\n      fields: [formatted, postcode, valid]",
        "    response:\n      fields: [formatted, postcode, valid]\n    limits:\n      - { per: ip, rate: 1/min }")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    c = H2(gw.port, certs["ca"])
    assert c.get(PATH).status == 200
    assert [c.get(PATH).status for _ in range(3)] == [429, 429, 429]
    assert c.wait_closed(timeout=10) and c.goaway == 0
    assert standin.stats()["calls"] == 1
    denied = gateways(h2_tls_config(standin.port, certs, root_extra="addresses: { deny: [127.0.0.1/32] }"),
                      env={"ADDRESS_API_KEY": api_key})
    c = H2(denied.port, certs["ca"])
    a = c.get(PATH)
    assert a.status == 403 and json.loads(a.body)["type"].endswith(":address-denied")
    assert c.wait_closed(timeout=10) and c.goaway == 0
    assert standin.stats()["calls"] == 1


BASE = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", PATH)]
# Each header block RFC 9113 §8.2–8.3 calls malformed, as a request's first HEADERS.
MALFORMED = [
    BASE + [("connection", "keep-alive")], BASE + [("transfer-encoding", "chunked")], BASE + [("keep-alive", "5")],
    BASE + [("proxy-connection", "x")], BASE + [("upgrade", "h2c")], BASE + [("te", "gzip")],
    BASE + [("X-Upper", "1")], BASE + [("x a", "1")], BASE + [("x@a", "1")],
    BASE + [("x-a", "a\rb")], BASE + [("x-a", "a\nb")], BASE + [("x-a", "a\x00b")],
    BASE[:2] + [("x-a", "1")] + BASE[2:],                      # a pseudo-field after a regular one
    BASE + [(":path", PATH)], BASE + [(":foo", "1")], BASE + [(":status", "200")], BASE + [(":protocol", "websocket")],
    BASE[:1] + BASE[2:], BASE[1:], BASE[:3],                     # no :scheme, no :method, no :path
    BASE[:3] + [(":path", "")], BASE[:3] + [(":path", "/api/address?q=a b")], BASE[:2] + [(":authority", "local\x7fhost")] + BASE[3:],
]


def send_block(c, fields, sid=None, end_stream=True):
    """Sends `fields` as one HEADERS frame on `sid` (a new stream when None); returns the stream id."""
    if sid is None:
        sid = c.next_id
        c.next_id += 2
        c.answers[sid] = Answer()
    c.frame(HeadersFrame(sid, c.encoder.encode(fields), flags=["END_HEADERS"] + (["END_STREAM"] if end_stream else [])))
    return sid


def test_malformed_header_blocks_reset_their_stream_only(gateways, standin, certs, api_key):
    gw = start(gateways, standin, certs, api_key, extra_route=POST_ROUTE.format(port=standin.port))
    c = H2(gw.port, certs["ca"])
    for bad in MALFORMED:
        (a,) = c.wait(send_block(c, bad))
        assert a.reset == PROTOCOL_ERROR and a.status is None, (bad, c.closed, c.goaways, a.__dict__)
    # What the rules allow: TE: trailers, bytes above 0x7F and inner spaces in a value.
    ok = c.wait(send_block(c, BASE + [("te", "trailers"), ("x-a", "a b \u00e9")]))[0]
    assert ok.status == 200 and c.goaway is None, (ok.__dict__, c.closed, c.goaways)
    # Trailers: regular fields only.
    body = json.dumps({"q": "Main Street"})
    for trailers, status in (([("x-trailer", "1")], 200), ([(":path", "/x")], None), ([("connection", "x")], None)):
        sid = c.request("POST", "/api/post", headers=[("content-type", "application/json")], body=body, end=False)
        (a,) = c.wait(send_block(c, trailers, sid=sid))
        assert a.status == status and (a.reset == PROTOCOL_ERROR) == (status is None), (trailers, a.__dict__)
    assert c.goaway is None and standin.stats()["calls"] == 2


def test_a_run_of_malformed_header_blocks_ends_the_connection(gateways, standin, certs, api_key):
    gw = start(gateways, standin, certs, api_key)
    c = H2(gw.port, certs["ca"])
    for n in range(201):  # one more than the bound; sent in full, so the GOAWAY is not lost to a reset
        send_block(c, MALFORMED[n % len(MALFORMED)])
    assert c.wait_closed(timeout=10) and c.goaway == ENHANCE_YOUR_CALM, (c.closed, c.goaways)
    assert sum(1 for a in c.answers.values() if a.reset == PROTOCOL_ERROR) == 200, c.goaways
    assert standin.stats()["calls"] == 0
    still_serves(gw, certs, standin)


def test_a_reload_switches_http2_for_new_connections(gateways, standin, certs, api_key):
    import socket
    from test_reload import reloaded

    def negotiated(port):
        ctx = ssl.create_default_context(cafile=str(certs["ca"]))
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost") as s:
            return s.selected_alpn_protocol()

    gw = start(gateways, standin, certs, api_key)
    kept = H2(gw.port, certs["ca"])
    assert negotiated(gw.port) == "h2"
    gw.config.write_text(gw.config.read_text().replace("http2: true", "http2: false"))
    gw.proc.send_signal(signal.SIGHUP)
    assert reloaded(gw, 1)
    assert negotiated(gw.port) == "http/1.1"
    assert kept.get(PATH).status == 200  # a connection already open keeps HTTP/2
    gw.config.write_text(gw.config.read_text().replace("http2: false", "http2: { max_concurrent_streams: 7 }"))
    gw.proc.send_signal(signal.SIGHUP)
    assert reloaded(gw, 2)
    c = H2(gw.port, certs["ca"])
    c.pump(lambda: 3 in c.server_settings, timeout=5)
    assert c.server_settings[3] == 7
