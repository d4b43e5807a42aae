"""The key never reaches the client, even when the paid API echoes it in a successful answer."""
import secrets

import pytest

from conftest import StandIn, address_config


def echo_config(port, auth="{ header: X-Api-Key, secret: ADDRESS_API_KEY }", response="", extra_route=""):
    config = address_config(port, extra_route=extra_route)
    config = config.replace("{ header: X-Api-Key, secret: ADDRESS_API_KEY }", auth)
    return config.replace("    response:\n      fields: [formatted, postcode, valid]\n", response)


def assert_refused_without_key(gw, r, key, where):
    assert r.status == 502, r.text
    assert r.header("content-type") == "application/problem+json"
    assert r.json()["request_id"] == r.header("x-request-id")
    assert key not in r.text and key not in str(r.headers)
    gw.stop()
    out = gw.output()
    assert key not in out
    line = [l for l in gw.access_log() if l["request_id"] == r.header("x-request-id")][0]
    assert line["route"] == "address-lookup" and line["status"] == 502
    assert "carried the route's secret in " + where in line["note"]


def test_plain_2xx_body_that_echoes_the_key_is_refused(gateways, standin, api_key):
    gw = gateways(echo_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    assert gw.get("/api/address?q=Main+Street").status == 200  # no false alarm on an ordinary answer
    standin.mode("echo", where="body")
    r = gw.get("/api/address?q=Main+Street")
    assert standin.stats()["authorized"] == 2
    assert_refused_without_key(gw, r, api_key, "the body")


def test_projected_field_that_echoes_the_key_is_refused(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    standin.mode("echo", where="field")
    r = gw.get("/api/address?q=Main+Street")
    assert standin.stats()["authorized"] == 1
    assert_refused_without_key(gw, r, api_key, "the body")


def test_passed_header_that_echoes_the_key_is_refused(gateways, standin, api_key):
    response = "    response:\n      fields: [formatted]\n      headers: [x-echo]\n"
    gw = gateways(echo_config(standin.port, response=response), env={"ADDRESS_API_KEY": api_key})
    standin.mode("echo", where="header")
    r = gw.get("/api/address?q=Main+Street")
    assert standin.stats()["authorized"] == 1
    assert_refused_without_key(gw, r, api_key, "header x-echo")


@pytest.mark.parametrize("auth", [
    "{ query: key, secret: ADDRESS_API_KEY }",           # comes back percent-encoded in the echoed target
    "{ scheme: basic, user: tollgate, secret: ADDRESS_API_KEY }",  # comes back as base64 in Authorization
    "{ scheme: bearer, secret: ADDRESS_API_KEY }",
])
def test_encoded_forms_of_the_key_are_found(gateways, auth):
    key = "sk/live+" + secrets.token_hex(12)  # '/' and '+' change under percent-encoding
    standin = StandIn(key)
    try:
        gw = gateways(echo_config(standin.port, auth=auth), env={"ADDRESS_API_KEY": key})
        standin.mode("echo", where="body")
        r = gw.get("/api/address?q=Main+Street")
        assert standin.stats()["authorized"] == 1
        assert r.status == 502, r.text
        body = r.text
        assert key not in body and "sk%2Flive" not in body and "sk%2flive" not in body
        gw.stop()
        assert key not in gw.output()
    finally:
        standin.stop()


def test_an_echoing_answer_is_never_cached(gateways, standin, api_key):
    route = "    cache: { ttl: 1h }\n"
    gw = gateways(echo_config(standin.port, extra_route=route), env={"ADDRESS_API_KEY": api_key})
    standin.mode("echo", where="body")
    first = gw.get("/api/address?q=Main+Street")
    second = gw.get("/api/address?q=Main+Street")
    assert first.status == 502 and second.status == 502
    assert standin.stats()["authorized"] == 2  # nothing was stored: the second call went upstream too
    assert api_key not in first.text + second.text
