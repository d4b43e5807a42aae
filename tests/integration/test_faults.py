"""Upstream faults: every one becomes a generic problem; nothing of the upstream's text or the key leaks."""
import time

from conftest import address_config, free_port


def assert_generic_problem(r, status, api_key):
    assert r.status == status, r.text
    assert r.header("content-type") == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status and problem["request_id"] == r.header("x-request-id")
    assert api_key not in r.text
    assert "standin" not in r.text and "/work" not in r.text and "Error" not in problem.get("detail", "")
    assert r.header("location") is None


def test_upstream_down_is_502(gateways, api_key):
    port = free_port()  # nothing listens here
    gw = gateways(address_config(port), env={"ADDRESS_API_KEY": api_key})
    started = time.monotonic()
    r = gw.get("/api/address?q=Main+Street")
    assert time.monotonic() - started < 2
    assert_generic_problem(r, 502, api_key)
    assert r.json()["type"].endswith("upstream-unavailable")


def test_standin_stopped_mid_run_is_502(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    assert gw.get("/api/address?q=Main+Street").status == 200
    standin.stop()
    assert_generic_problem(gw.get("/api/address?q=Main+Street"), 502, api_key)


def test_slow_upstream_is_504_within_timeout(gateways, standin, api_key):
    gw = gateways(address_config(standin.port, timeout="500ms"), env={"ADDRESS_API_KEY": api_key})
    standin.mode("slow", delay_ms=3000)
    started = time.monotonic()
    r = gw.get("/api/address?q=Main+Street")
    elapsed = time.monotonic() - started
    assert_generic_problem(r, 504, api_key)
    assert 0.45 <= elapsed < 1.5, elapsed
    # The gateway still works afterwards.
    standin.mode("normal")
    assert gw.get("/api/address?q=Main+Street").status == 200


def test_upstream_error_text_and_key_never_reach_client(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    standin.mode("fail")
    assert_generic_problem(gw.get("/api/address?q=Main+Street"), 502, api_key)
    standin.mode("status", status=401)
    assert_generic_problem(gw.get("/api/address?q=Main+Street"), 502, api_key)


def test_redirect_is_not_followed_nor_passed_on(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    standin.mode("redirect")
    r = gw.get("/api/address?q=Main+Street")
    assert_generic_problem(r, 502, api_key)
    assert standin.stats()["calls"] == 1


def test_garbage_and_non_json_and_oversized_responses_are_502(gateways, standin, api_key):
    config = address_config(standin.port).replace("connect_timeout: 200ms", "connect_timeout: 200ms\n      max_response_bytes: 64KiB")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    for mode, options in [("garbage", {}), ("not_json", {}), ("huge", {"size": 200_000}), ("close", {})]:
        standin.mode(mode, **options)
        assert_generic_problem(gw.get("/api/address?q=Main+Street"), 502, api_key)
    standin.mode("normal")
    assert gw.get("/api/address?q=Main+Street").status == 200


def test_chunked_upstream_with_interim_response(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    standin.mode("chunked")
    r = gw.get("/api/address?q=Main+Street")
    assert r.status == 200 and r.json() == {"formatted": "MAIN STREET, US", "postcode": "00000", "valid": True}


def test_passed_error_status_is_a_generic_problem(gateways, standin, api_key):
    config = f"""
listen: 127.0.0.1:{{{{PORT}}}}
secrets: {{ K: env:ADDRESS_API_KEY }}
routes:
  - name: place
    match: {{ method: GET, path: "/api/places/{{id}}" }}
    upstream: {{ url: "http://127.0.0.1:{standin.port}/v2/places/{{id}}", auth: {{ query: key, secret: K }} }}
    params: {{ id: {{ in: path, pattern: "[a-z0-9]+" }} }}
    response: {{ fields: [id, name], pass_statuses: [404] }}
"""
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/places/abc")
    assert r.status == 200 and r.json() == {"id": "abc", "name": "Place abc"}
    assert standin.last()["target"] == f"/v2/places/abc?key={api_key}"
    r = gw.get("/api/places/missing")
    assert_generic_problem(r, 404, api_key)
    assert gw.get("/api/places/BAD!").status == 422
