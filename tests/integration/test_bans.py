"""Bans, address rules and automatic bans through the real binary: the CLI and the admin API write
bans to the store and every gateway applies them within a second; a banned client is refused
before routing (403 banned, connection closed) and never reaches the paid API."""
import json
import time

from access_helpers import eventually, request_from
from conftest import address_config
from identity_helpers import cli, create_key, identity_env, orders_config
from test_admin_api import admin, admin_gateway, token

LOOKUP = "/api/address?q=10+Downing+St"


def lookup(gw, source):
    return request_from(source, gw.port, "GET", LOOKUP)


def test_cli_bans_apply_within_a_second_and_survive_a_restart(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    assert lookup(gw, "127.0.0.2").status == 200
    out = cli(gw, "bans", "add", "address", "127.0.0.2", "--for", "1h", "--reason", "scraping").stdout
    assert out.startswith("banned: address 127.0.0.2 until ")
    began = time.monotonic()
    r = eventually(lambda: (lambda r: r if r.status == 403 else None)(lookup(gw, "127.0.0.2")), within=2)
    assert r and time.monotonic() - began < 1.5, "the ban was not in force within a second"
    assert r.json()["type"] == "urn:tollgate:problem:banned" and r.header("connection") == "close"
    assert r.header("content-type") == "application/problem+json" and r.json()["request_id"]
    calls = standin.stats()["calls"]
    started = time.monotonic()
    assert lookup(gw, "127.0.0.2").status == 403 and standin.stats()["calls"] == calls
    assert time.monotonic() - started >= 0.2  # a banned client's answers wait refusal_delay (250ms)
    started = time.monotonic()
    assert lookup(gw, "127.0.0.3").status == 200 and time.monotonic() - started < 0.2
    listed = json.loads(cli(gw, "bans", "list", "--json").stdout)
    assert [(b["kind"], b["value"], b["created_by"], b["reason"]) for b in listed] == [("address", "127.0.0.2", "cli", "scraping")]
    # A network ban, then a restart: bans are durable.
    cli(gw, "bans", "add", "prefix", "127.0.9.0/24")
    gw.stop()
    gw.start()
    assert lookup(gw, "127.0.0.2").status == 403 and lookup(gw, "127.0.9.77").status == 403
    assert lookup(gw, "127.0.0.3").status == 200
    ban_id = str(listed[0]["id"])
    assert cli(gw, "bans", "remove", ban_id).stdout.strip() == f"removed: ban {ban_id}"
    assert eventually(lambda: lookup(gw, "127.0.0.2").status == 200)
    assert cli(gw, "bans", "remove", ban_id, check=False).returncode != 0
    assert eventually(lambda: any(l["status"] == 403 and l["policy"] == "ban" and l["client"] == "127.0.0.2"
                                  for l in gw.access_log()))  # lines are written in batches


def test_bad_ban_entries_are_refused_with_reasons(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    for args, expect in [(["address", "127.0.0.1/8"], "value"), (["address", "not-an-ip"], "value"),
                         (["prefix", "10.0.0.0/33"], "value"), (["prefix", "10.0.0.1"], "value"),
                         (["host", "10.0.0.1"], "kind"), (["key", "no_underscores"], "value")]:
        p = cli(gw, "bans", "add", *args, check=False)
        assert p.returncode != 0 and expect in p.stderr, (args, p.stderr)
    assert json.loads(cli(gw, "bans", "list", "--json").stdout) == []
    # A network written with host bits is stored as its network.
    assert "prefix 10.1.2.0/24" in cli(gw, "bans", "add", "prefix", "10.1.2.3/24").stdout


def test_admin_api_bans_are_validated_audited_and_immediate(gateways, standin, api_key):
    gw = admin_gateway(gateways, standin, api_key)
    key = create_key(gw, "--name", "shop", "--owner", "u1")
    auth = {"X-API-Key": key["key"]}
    assert eventually(lambda: request_from("127.0.0.4", gw.port, "GET", "/api/users/u1/orders", auth).status == 200)
    read, write = token(gw, "read"), token(gw, "write")
    assert admin(gw, "POST", "/v1/bans", read, {"kind": "address", "value": "127.0.0.4"}).status == 403
    r = admin(gw, "POST", "/v1/bans", write, {"kind": "address", "value": "999.1.1.1", "duration_seconds": 0, "color": 1})
    assert r.status == 422 and {e["field"] for e in r.json()["errors"]} == {"color"}
    r = admin(gw, "POST", "/v1/bans", write, {"kind": "prefix", "value": "127.0.0.4", "duration_seconds": 0})
    assert r.status == 422 and {e["field"] for e in r.json()["errors"]} == {"value", "duration_seconds"}
    r = admin(gw, "POST", "/v1/bans", write, {"kind": "prefix", "value": "127.0.0.0/30", "duration_seconds": 600, "reason": "test"})
    assert r.status == 201 and r.json()["value"] == "127.0.0.0/30" and r.json()["created_by"] == "admin:ops-write"
    # The gateway serving the API applies it at once.
    r = request_from("127.0.0.3", gw.port, "GET", "/api/users/u1/orders", auth)
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:banned"
    assert request_from("127.0.0.4", gw.port, "GET", "/api/users/u1/orders", auth).status == 200
    # A banned key is refused from any address, although it verifies.
    r = admin(gw, "POST", "/v1/bans", write, {"kind": "key", "value": key["id"]})
    assert r.status == 201 and r.json()["expires_at"] is None
    r = request_from("127.0.0.4", gw.port, "GET", "/api/users/u1/orders", auth)
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:banned"
    bans = admin(gw, "GET", "/v1/bans", read).json()["bans"]
    assert [b["kind"] for b in bans] == ["prefix", "key"]
    assert admin(gw, "DELETE", f"/v1/bans/{bans[1]['id']}", write).json() == {"id": bans[1]["id"], "removed": True}
    assert admin(gw, "DELETE", f"/v1/bans/{bans[1]['id']}", write).status == 404
    assert request_from("127.0.0.4", gw.port, "GET", "/api/users/u1/orders", auth).status == 200
    actions = [e["action"] for e in admin(gw, "GET", "/v1/audit", read).json()["entries"]]
    assert actions[:3] == ["bans.remove", "bans.add", "bans.add"]
    gw.stop()
    out = gw.output()
    assert key["key"] not in out and write not in out and read not in out


def test_address_rules_gateway_and_route(gateways, standin, api_key):
    config = address_config(standin.port, root_extra="addresses: { deny: [127.0.0.66/32] }\n", extra_route="""
  - name: internal
    match: { method: GET, path: /api/internal }
    upstream: { url: http://127.0.0.1:%d/v2/validate, auth: { header: X-Api-Key, secret: ADDRESS_API_KEY } }
    addresses: { allow: [127.0.0.0/30, "::1/128"] }
""" % standin.port)
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    r = lookup(gw, "127.0.0.66")
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:address-denied"
    assert lookup(gw, "127.0.0.67").status == 200
    assert request_from("127.0.0.2", gw.port, "GET", "/api/internal").status == 200
    r = request_from("127.0.0.9", gw.port, "GET", "/api/internal")
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:address-denied"
    assert r.header("connection") != "close"  # a route rule refuses the request, not the client
    assert lookup(gw, "127.0.0.9").status == 200


def test_invalid_address_rules_are_config_errors(gateways, tmp_path):
    from conftest import TOLLGATE
    import subprocess
    config = tmp_path / "t.yaml"
    config.write_text("""
listen: 127.0.0.1:0
addresses: { deny: [10.0.0.1/8, nonsense] }
auto_bans: [{ refusals: 0, within: 1m }]
routes:
  - name: page
    match: { path: / }
    file: t.yaml
    countries: { allow: [Germany] }
""")
    p = subprocess.run([str(TOLLGATE), "check", "--config", str(config)], capture_output=True, text=True)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "addresses.deny" in out and "host bits" in out and "must be an IP address or CIDR" in out
    assert "auto_bans" in out and "ban_for" in out
    assert "countries.allow" in out and "two-letter" in out and "no top-level geo" in out
    assert ":3" in out or "line 3" in out


def test_automatic_ban_after_too_many_refusals(gateways, standin, api_key):
    config = address_config(standin.port, root_extra="""
auto_bans:
  - { name: scrapers, refusals: 5, within: 1m, ipv4_prefix: 32, ban_for: 15m }
""")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    for _ in range(5):
        assert request_from("127.0.0.7", gw.port, "GET", "/api/address?q=x").status == 422
    assert lookup(gw, "127.0.0.7").status == 200  # five refusals: still served
    assert request_from("127.0.0.7", gw.port, "GET", "/api/address?q=x").status == 422  # the sixth trips the rule
    r = lookup(gw, "127.0.0.7")
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:banned"
    assert lookup(gw, "127.0.0.8").status == 200
    # Bans answered to the banned client do not count again; the ban is in the store.
    bans = eventually(lambda: json.loads(cli(gw, "bans", "list", "--json").stdout))
    assert [(b["kind"], b["value"], b["created_by"]) for b in bans] == [("address", "127.0.0.7", "auto:scrapers")]
    assert "automatic ban" in gw.output()
