"""The admin API on the admin listener, through the real binary: scoped admin tokens, writes that
reach the running gateway, the audit log, problem+json errors, and no token in any output."""
import json
import time

from conftest import free_port, request
from identity_helpers import cli, identity_env, orders_config


def admin_gateway(gateways, standin, api_key):
    port = free_port()
    config = orders_config(standin.port) + f"admin: 127.0.0.1:{port}\n"
    gw = gateways(config, env=identity_env(api_key))
    gw.admin = port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/livez").status == 200:
                break
        except OSError:
            time.sleep(0.05)
    return gw


def token(gw, scopes):
    return json.loads(cli(gw, "admin-tokens", "create", "--name", f"ops-{scopes}", "--scopes", scopes, "--json").stdout)["token"]


def admin(gw, method, path, tok=None, body=None):
    headers = {"Authorization": "Bearer " + tok} if tok else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return request(gw.admin, method, path, headers=headers, body=json.dumps(body) if body is not None else None)


def test_tokens_scopes_and_problems(gateways, standin, api_key):
    gw = admin_gateway(gateways, standin, api_key)
    assert admin(gw, "GET", "/livez").json() == {"status": "ok"}
    assert admin(gw, "GET", "/readyz").json() == {"status": "ready"}
    assert "tollgate_responses_total" in admin(gw, "GET", "/metrics").text
    r = admin(gw, "GET", "/v1/routes")
    assert r.status == 401 and r.header("content-type") == "application/problem+json"
    assert r.json()["request_id"] == r.header("x-request-id") and 'Bearer realm="tollgate-admin"' in r.header("www-authenticate")
    assert admin(gw, "GET", "/v1/routes", "tg_adm_notatoken").status == 401
    read = token(gw, "read")
    r = admin(gw, "GET", "/v1/routes", read)
    assert r.status == 200 and r.json()["routes"][0]["name"] == "orders" and r.json()["routes"][0]["auth"] == ["api_key"]
    r = admin(gw, "POST", "/v1/routes/orders/pause", read)
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:insufficient-scope"
    assert admin(gw, "POST", "/v1/keys", read, {"name": "x"}).status == 403
    assert admin(gw, "GET", "/v1/nothing", read).status == 404
    # A revoked admin token stops at once.
    tid = [l.split()[0] for l in cli(gw, "admin-tokens", "list").stdout.splitlines() if "ops-read" in l][0]
    cli(gw, "admin-tokens", "revoke", tid)
    assert admin(gw, "GET", "/v1/routes", read).status == 401
    gw.stop()
    assert read not in gw.output()


def test_pause_through_the_api_reaches_the_gateway_and_is_audited(gateways, standin, api_key):
    gw = admin_gateway(gateways, standin, api_key)
    ops = token(gw, "read,write,keys")
    created = admin(gw, "POST", "/v1/keys", ops, {"name": "partner", "owner": "alice", "scopes": ["orders:read"], "expires": "30d"})
    assert created.status == 201, created.text
    key = created.json()["key"]
    assert key.startswith("tg_live_") and created.json()["state"] == "active"
    time.sleep(0.6)
    call = lambda: gw.get("/api/users/alice/orders", headers={"X-API-Key": key}).status  # noqa: E731
    assert call() == 200
    assert admin(gw, "POST", "/v1/routes/orders/pause", ops).json() == {"route": "orders", "paused": True}
    time.sleep(0.8)
    assert call() == 503
    assert admin(gw, "GET", "/v1/routes", ops).json()["routes"][0]["paused"] is True
    admin(gw, "POST", "/v1/routes/orders/resume", ops)
    time.sleep(0.8)
    assert call() == 200
    r = admin(gw, "POST", f"/v1/keys/{created.json()['id']}/revoke", ops)
    assert r.status == 200 and r.json()["state"] == "revoked"
    time.sleep(0.6)
    assert call() == 401
    assert admin(gw, "POST", "/v1/keys/nope/revoke", ops).status == 404
    shown = admin(gw, "GET", f"/v1/keys/{created.json()['id']}", ops).json()
    assert "key" not in shown and shown["uses"] >= 0
    entries = admin(gw, "GET", "/v1/audit", ops).json()["entries"]
    assert [e["action"] for e in entries][:4] == ["keys.revoke", "routes.resume", "routes.pause", "keys.create"]
    assert all(e["address"] == "127.0.0.1" and "ops-read,write,keys" in e["actor"] for e in entries)
    usage = admin(gw, "GET", "/v1/usage?by=key", ops).json()
    assert any(l["key"] == created.json()["id"] for l in usage["lines"])
    gw.stop()
    out = gw.output()
    assert ops not in out and key not in out and api_key not in out


def test_bodies_are_validated_with_fields(gateways, standin, api_key):
    gw = admin_gateway(gateways, standin, api_key)
    ops = token(gw, "keys")
    r = admin(gw, "POST", "/v1/keys", ops, {"name": "", "scopes": "orders", "max_uses": 0, "routes": ["nope"], "colour": "red"})
    assert r.status == 422 and r.json()["errors"] == [{"field": "colour", "detail": "is not a known field"}]
    r = admin(gw, "POST", "/v1/keys", ops, {"name": "", "scopes": "orders", "max_uses": 0, "routes": ["nope"], "expires": "soon"})
    assert r.status == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"name", "scopes", "max_uses", "routes", "expires"}
    r = request(gw.admin, "POST", "/v1/keys", headers={"Authorization": "Bearer " + ops}, body="not json")
    assert r.status == 422 and r.header("content-type") == "application/problem+json"
    c = admin(gw, "POST", "/v1/clients", ops, {"name": "partner", "scopes": ["orders:read"]})
    assert c.status == 201 and c.json()["client_secret"].startswith("tg_cs_")
    assert admin(gw, "POST", f"/v1/clients/{c.json()['client_id']}/revoke", ops).json()["revoked"] is True
    gw.stop()
    assert c.json()["client_secret"] not in gw.output()


def test_a_key_rotated_through_the_api_overlaps_then_expires(gateways, standin, api_key):
    from access_helpers import eventually
    gw = admin_gateway(gateways, standin, api_key)
    ops = token(gw, "keys,read")
    old = admin(gw, "POST", "/v1/keys", ops, {"name": "partner", "owner": "alice"}).json()
    orders = lambda key: request(gw.port, "GET", "/api/users/alice/orders", headers={"X-API-Key": key}).status  # noqa: E731
    assert eventually(lambda: orders(old["key"]) == 200)
    r = admin(gw, "POST", f"/v1/keys/{old['id']}/rotate", ops, {"overlap": "2s"})
    assert r.status == 201 and r.json()["owner"] == "alice" and r.json()["id"] != old["id"]
    new = r.json()
    assert eventually(lambda: orders(new["key"]) == 200) and orders(old["key"]) == 200  # both during the overlap
    assert eventually(lambda: orders(old["key"]) == 401, within=5) and orders(new["key"]) == 200
    assert admin(gw, "POST", "/v1/keys/nope/rotate", ops).status == 404
    assert admin(gw, "POST", f"/v1/keys/{new['id']}/rotate", ops, {"overlap": 5}).status == 422
    assert [e["action"] for e in admin(gw, "GET", "/v1/audit", ops).json()["entries"]][:1] == ["keys.rotate"]
    gw.stop()
    out = gw.output()
    assert old["key"] not in out and new["key"] not in out and ops not in out
