"""The seed scenario through the real binary: key injection, validation, projection, headers."""
from conftest import address_config

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_security_headers(r):
    for name, value in SECURITY_HEADERS.items():
        assert r.header(name) == value, name
    assert "default-src 'none'" in r.header("content-security-policy")
    assert r.header("cache-control") == "no-store"
    assert r.header("x-request-id")


def test_key_injected_upstream_and_fields_projected(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=10+Downing+Street&country=GB")
    assert r.status == 200, r.text
    assert r.json() == {"formatted": "10 DOWNING STREET, GB", "postcode": "10", "valid": True}
    assert r.header("content-type") == "application/json"
    assert_security_headers(r)

    last = standin.last()
    headers = {n.lower(): v for n, v in last["headers"]}
    assert headers["x-api-key"] == api_key
    assert last["target"] == "/v2/validate?q=10%20Downing%20Street&country=GB&format=json"
    assert standin.stats()["authorized"] == 1


def test_unknown_and_invalid_params_are_422_and_never_reach_upstream(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=ab&country=XX&debug=1")
    assert r.status == 422
    assert r.header("content-type") == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 422 and problem["request_id"] == r.header("x-request-id")
    rules = {(e["field"], e["rule"]) for e in problem["errors"]}
    assert rules == {("q", "min_length"), ("country", "enum"), ("debug", "unknown")}
    assert_security_headers(r)
    assert standin.stats()["calls"] == 0


def test_fixed_params_cannot_be_overridden(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=Main+Street&format=xml")
    assert r.status == 422
    assert [e["field"] for e in r.json()["errors"]] == ["format"]
    r = gw.get("/api/address?q=Main+Street&q=Other")
    assert r.status == 422 and r.json()["errors"][0]["rule"] == "repeated"
    assert standin.stats()["calls"] == 0
    assert gw.get("/api/address?q=Main+Street").status == 200
    assert standin.last()["target"].endswith("&format=json")


def test_client_credentials_and_hop_by_hop_headers_not_forwarded(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=Main+Street", headers={
        "Cookie": "session=abc", "Authorization": "Bearer client-token", "X-Forwarded-For": "6.6.6.6",
        "X-Api-Key": "client-supplied", "Connection": "keep-alive, X-Custom", "X-Custom": "hop",
        "Keep-Alive": "timeout=5", "TE": "trailers", "Accept-Language": "fr-CA", "Proxy-Authorization": "Basic eA==",
    })
    assert r.status == 200
    sent = [(n.lower(), v) for n, v in standin.last()["headers"]]
    names = {n for n, _ in sent}
    for banned in ["cookie", "authorization", "x-forwarded-for", "x-custom", "keep-alive", "te", "proxy-authorization", "connection"]:
        assert banned not in names, banned
    assert [v for n, v in sent if n == "x-api-key"] == [api_key]
    assert ("accept-language", "fr-CA") in sent


def test_upstream_hop_by_hop_and_cookies_not_returned(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    standin.mode("hop")
    r = gw.get("/api/address?q=Main+Street")
    assert r.status == 200
    names = r.header_names()
    for banned in ["set-cookie", "x-hop-secret", "keep-alive", "proxy-authenticate", "x-internal-debug", "x-billing-units"]:
        assert banned not in names, banned
    assert "provider_account" not in r.text


def test_request_id_accepted_when_safe_and_passed_upstream(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=Main+Street", headers={"X-Request-ID": "trace-42.a_b:c"})
    assert r.header("x-request-id") == "trace-42.a_b:c"
    assert ["X-Request-ID", "trace-42.a_b:c"] in standin.last()["headers"]
    for unsafe in ["has space", "x" * 65, "<script>", "a\tb"]:
        r = gw.get("/api/address?q=Main+Street", headers={"X-Request-ID": unsafe})
        assert r.header("x-request-id") != unsafe
        assert r.header("x-request-id") and len(r.header("x-request-id")) <= 64


def test_access_log_is_one_json_line_per_request(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    ok = gw.get("/api/address?q=Main+Street")
    bad = gw.get("/api/address?q=x")
    missing = gw.get("/nope")
    gw.stop()
    log = gw.access_log()
    by_id = {l["request_id"]: l for l in log}  # each event loop writes its own lines: match by id, not order
    assert len(log) == 3 and len(by_id) == 3
    first, second, third = (by_id[r.header("x-request-id")] for r in (ok, bad, missing))
    assert first["route"] == "address-lookup" and first["status"] == 200 and first["decision"] == "pass"
    assert first["upstream_status"] == 200 and first["upstream_latency_ms"] >= 0 and first["client"] == "127.0.0.1"
    assert second["status"] == 422 and second["decision"] == "reject" and second["policy"] == "validation"
    assert third["status"] == 404 and third["policy"] == "routing" and third["route"] is None
    for l in log:
        assert {"time", "request_id", "method", "status", "latency_ms", "client", "decision"} <= set(l)


def test_upstream_connections_are_reused(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    standin.reset()
    for _ in range(20):
        assert gw.get("/api/address?q=Main+Street").status == 200
    stats = standin.stats()
    assert stats["calls"] == 20
    # Two event loops may each open one connection; control requests open one each.
    assert stats["connections"] <= 2 + 1


def test_json_body_route(gateways, standin, api_key):
    config = address_config(standin.port, extra_route="""
  - name: address-post
    match: { method: POST, path: /api/address }
    upstream:
      url: http://127.0.0.1:%d/v2/validate
      auth: { scheme: bearer, secret: ADDRESS_API_KEY }
    params:
      q: { in: body, type: string, min_length: 3, required: true }
      country: { in: body, type: enum, values: [US, CA] }
    fixed_body: { format: json }
    response: { fields: [formatted, valid] }
    max_body: 1KiB
""" % standin.port)
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    r = gw.post("/api/address", '{"q": "Main Street", "country": "CA"}', headers={"Content-Type": "application/json"})
    assert r.status == 200, r.text
    assert r.json() == {"formatted": "MAIN STREET, CA", "valid": True}
    last = standin.last()
    assert last["body"] == '{"q":"Main Street","country":"CA","format":"json"}'
    assert ["Authorization", "Bearer " + api_key] in last["headers"]
    r = gw.post("/api/address", '{"q": "Main Street", "admin": true}', headers={"Content-Type": "application/json"})
    assert r.status == 422 and r.json()["errors"][0]["field"] == "admin"
    # A body in another media type (text/plain is what a cross-site form or fetch sends without a
    # preflight) is refused before it is read as JSON.
    for media_type in ["text/plain", "application/x-www-form-urlencoded"]:
        r = gw.post("/api/address", '{"q": "Main Street"}', headers={"Content-Type": media_type})
        assert r.status == 415 and r.header("content-type") == "application/problem+json", media_type
        assert r.json()["type"] == "urn:tollgate:problem:unsupported-media-type" and r.json()["request_id"]
    assert gw.post("/api/address", '{"q": "Main Street"}', headers={"Content-Type": "application/json; charset=utf-8"}).status == 200
    assert standin.stats()["calls"] == 2


def test_file_route_serves_page_with_page_csp(gateways, standin, api_key):
    config = address_config(standin.port, extra_route="""
  - name: page
    match: { method: GET, path: / }
    file: page.html
""")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key}, files={"page.html": "<h1>hi</h1>"})
    r = gw.get("/")
    assert r.status == 200 and r.text == "<h1>hi</h1>"
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert "script-src 'self'" in r.header("content-security-policy")
    assert r.header("x-frame-options") == "DENY"
