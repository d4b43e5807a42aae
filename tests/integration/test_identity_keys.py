"""API keys through the real binary: created by the CLI, checked in memory, revoked and rotated live."""
import json
import sqlite3
import threading
import time

import subprocess

from conftest import TOLLGATE, request
from identity_helpers import cli, create_key, identity_env, orders_config, upstream_header


def test_key_reaches_the_upstream_as_identity_never_as_the_key(gateways, standin, api_key):
    env = identity_env(api_key)
    gw = gateways(orders_config(standin.port), env=env)
    k = create_key(gw, "--name", "partner", "--owner", "alice", "--scopes", "orders:read")
    assert k["key"].startswith("tg_live_") and k["id"] in k["key"]
    time.sleep(0.6)  # the change feed
    r = gw.get("/api/users/alice/orders", headers={"X-API-Key": k["key"]})
    assert r.status == 200, r.text
    assert upstream_header(standin, "x-tollgate-subject") == "alice"
    assert upstream_header(standin, "x-tollgate-auth") == "api_key"
    assert upstream_header(standin, "x-tollgate-key-id") == k["id"]
    assert upstream_header(standin, "x-tollgate-scopes") == "orders:read"
    assert upstream_header(standin, "x-api-key") == api_key  # the paid API's key, not the caller's
    assert k["key"] not in json.dumps(standin.last())
    # Bearer works too.
    assert gw.get("/api/users/alice/orders", headers={"Authorization": "Bearer " + k["key"]}).status == 200
    gw.stop()
    out = gw.output()
    assert k["key"] not in out and api_key not in out and env["KEY_HASH_SECRET"] not in out
    db = sqlite3.connect(gw.dir / "tollgate.db")
    stored = db.execute("SELECT hash, uses FROM api_keys WHERE id = ?", (k["id"],)).fetchone()
    assert k["key"].encode() not in bytes(stored[0]) and len(stored[0]) == 32
    assert stored[1] == 2  # uses flushed at shutdown


def test_missing_malformed_and_wrong_keys_get_401_problems(gateways, standin, api_key):
    gw = gateways(orders_config(standin.port), env=identity_env(api_key))
    k = create_key(gw, "--name", "n", "--owner", "alice")
    time.sleep(0.6)
    r = gw.get("/api/users/alice/orders")
    assert r.status == 401 and r.header("content-type") == "application/problem+json"
    assert r.json()["type"] == "urn:tollgate:problem:unauthenticated" and r.json()["request_id"] == r.header("x-request-id")
    assert r.header("www-authenticate") == 'Bearer realm="tollgate"'
    typo = k["key"][:-1] + ("A" if k["key"][-1] != "A" else "B")  # the checksum catches it
    wrong_secret = k["key"][:21] + ("x" if k["key"][21] != "x" else "y") + k["key"][22:]
    for bad in [typo, wrong_secret, "tg_live_nothing", "sk_live_abc", k["key"] + "x"]:
        r = gw.get("/api/users/alice/orders", headers={"X-API-Key": bad})
        assert r.status == 401, bad
        assert r.json()["type"] == "urn:tollgate:problem:invalid-credentials"
        assert 'error="invalid_token"' in r.header("www-authenticate")
        assert bad not in r.text
    assert standin.stats()["authorized"] == 0
    gw.stop()
    assert typo not in gw.output()
    assert {l.get("policy") for l in gw.access_log()} == {"auth"}


def test_scopes_routes_and_ownership(gateways, standin, api_key):
    config = orders_config(standin.port, auth="any_of: [api_key], scopes: [orders:read]",
                           route_extra="    owner: { param: user_id, equals: subject, unless_role: admin }")
    gw = gateways(config, env=identity_env(api_key))
    alice = create_key(gw, "--name", "a", "--owner", "alice", "--scopes", "orders:read")
    noscope = create_key(gw, "--name", "b", "--owner", "bob", "--scopes", "profile:read")
    other_route = create_key(gw, "--name", "c", "--owner", "carol", "--scopes", "orders:read", "--routes", "billing")
    time.sleep(0.6)
    assert gw.get("/api/users/alice/orders", headers={"X-API-Key": alice["key"]}).status == 200
    # BOLA: alice asks for bob's orders.
    r = gw.get("/api/users/bob/orders", headers={"X-API-Key": alice["key"]})
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:forbidden"
    r = gw.get("/api/users/bob/orders", headers={"X-API-Key": noscope["key"]})
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:insufficient-scope"
    assert 'error="insufficient_scope"' in r.header("www-authenticate")
    r = gw.get("/api/users/carol/orders", headers={"X-API-Key": other_route["key"]})
    assert r.status == 403
    assert standin.stats()["authorized"] == 1


def test_revocation_takes_effect_within_a_second_under_load(gateways, standin, api_key):
    gw = gateways(orders_config(standin.port), env=identity_env(api_key))
    k = create_key(gw, "--name", "load", "--owner", "alice")
    time.sleep(0.6)
    statuses = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            r = request(gw.port, "GET", "/api/users/alice/orders", headers={"X-API-Key": k["key"]})
            statuses.append((time.monotonic(), r.status))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    revoking = time.monotonic()  # answers completed before the revocation began must all be 200
    cli(gw, "keys", "revoke", k["id"])
    revoked_at = time.monotonic()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    before = [s for t, s in statuses if t < revoking]
    late = [s for t, s in statuses if t > revoked_at + 1.0]
    assert before and all(s == 200 for s in before)
    assert late and all(s == 401 for s in late), late[:5]
    # Reactivation brings it back, also without a restart.
    cli(gw, "keys", "reactivate", k["id"])
    time.sleep(0.6)
    assert gw.get("/api/users/alice/orders", headers={"X-API-Key": k["key"]}).status == 200


def test_rotation_keeps_the_old_key_for_the_overlap(gateways, standin, api_key):
    gw = gateways(orders_config(standin.port), env=identity_env(api_key))
    old = create_key(gw, "--name", "rot", "--owner", "alice", "--scopes", "orders:read")
    new = json.loads(cli(gw, "keys", "rotate", old["id"], "--overlap", "2s", "--json").stdout)
    assert new["id"] != old["id"] and new["key"] != old["key"]
    time.sleep(0.6)
    for key in (old["key"], new["key"]):
        assert gw.get("/api/users/alice/orders", headers={"X-API-Key": key}).status == 200
    time.sleep(2.0)
    r = gw.get("/api/users/alice/orders", headers={"X-API-Key": old["key"]})
    assert r.status == 401 and r.json()["type"] == "urn:tollgate:problem:key-expired"
    assert gw.get("/api/users/alice/orders", headers={"X-API-Key": new["key"]}).status == 200
    shown = json.loads(cli(gw, "keys", "show", old["id"]).stdout)
    assert shown["replaced_by"] == new["id"] and shown["state"] == "expired"
    assert upstream_header(standin, "x-tollgate-subject") == "alice"


def test_use_limit_and_reactivation_help(gateways, standin, api_key):
    gw = gateways(orders_config(standin.port), env=identity_env(api_key))
    k = create_key(gw, "--name", "trial", "--owner", "alice", "--max-uses", "3")
    time.sleep(0.6)
    statuses = [gw.get("/api/users/alice/orders", headers={"X-API-Key": k["key"]}).status for _ in range(5)]
    assert statuses == [200, 200, 200, 401, 401]
    r = gw.get("/api/users/alice/orders", headers={"X-API-Key": k["key"]})
    assert r.json()["type"] == "urn:tollgate:problem:key-expired"
    assert "keys@example.com" in r.json()["detail"]
    assert standin.stats()["authorized"] == 3
    time.sleep(1.3)  # uses reach the store
    shown = json.loads(cli(gw, "keys", "show", k["id"]).stdout)
    assert shown["uses"] == 3 and shown["state"] == "exhausted"
    cli(gw, "keys", "reactivate", k["id"], "--add-uses", "2")
    time.sleep(0.6)
    assert [gw.get("/api/users/alice/orders", headers={"X-API-Key": k["key"]}).status for _ in range(3)] == [200, 200, 401]


def test_per_key_rate_limit(gateways, standin, api_key):
    config = orders_config(standin.port, route_extra="    limits:\n      - { per: key, rate: 3/min }")
    gw = gateways(config, env=identity_env(api_key))
    a = create_key(gw, "--name", "a", "--owner", "alice")
    b = create_key(gw, "--name", "b", "--owner", "alice")
    time.sleep(0.6)
    assert [gw.get("/api/users/alice/orders", headers={"X-API-Key": a["key"]}).status for _ in range(4)] == [200, 200, 200, 429]
    assert gw.get("/api/users/alice/orders", headers={"X-API-Key": b["key"]}).status == 200  # its own bucket


def test_list_and_help_never_show_keys(gateways, standin, api_key):
    gw = gateways(orders_config(standin.port), env=identity_env(api_key))
    k = create_key(gw, "--name", "listed", "--owner", "alice", "--expires", "90d")
    listing = cli(gw, "keys", "list").stdout
    assert k["id"] in listing and k["key"] not in listing and "active" in listing
    assert k["key"] not in cli(gw, "keys", "list", "--json").stdout
    help_text = subprocess.run([str(TOLLGATE), "keys", "--help"], capture_output=True, text=True).stdout
    for word in ["create", "rotate", "revoke", "reactivate", "printed once", "within a second"]:
        assert word in help_text


def test_per_key_and_per_subject_budgets_and_usage_by_key(gateways, standin, api_key):
    route_extra = "    cost: 0.01 USD"
    budgets = """budgets:
  - { name: per-key, scope: key, limit: 0.03 USD, period: day }
  - { name: per-subject, scope: subject, limit: 0.05 USD, period: day }
"""
    config = orders_config(standin.port, route_extra=route_extra) + budgets
    gw = gateways(config, env=identity_env(api_key))
    a1 = create_key(gw, "--name", "a1", "--owner", "alice")
    a2 = create_key(gw, "--name", "a2", "--owner", "alice")
    b = create_key(gw, "--name", "b", "--owner", "bob")
    time.sleep(0.6)
    call = lambda k: gw.get("/api/users/x/orders", headers={"X-API-Key": k["key"]}).status  # noqa: E731
    assert [call(a1) for _ in range(4)] == [200, 200, 200, 402]  # the key's budget
    assert [call(a2) for _ in range(3)] == [200, 200, 402]  # alice's budget: 5 calls in all
    assert [call(b) for _ in range(3)] == [200, 200, 200]  # bob is untouched
    assert standin.stats()["authorized"] == 8
    # Restarted, the totals come back from the ledger.
    gw.stop()
    gw.start()
    assert call(a1) == 402 and call(b) == 402  # both keys' totals survived
    b2 = create_key(gw, "--name", "b2", "--owner", "bob")
    time.sleep(0.6)
    assert [call(b2) for _ in range(3)] == [200, 200, 402]  # bob's subject total survived too: 3 + 2 of 5
    time.sleep(1.3)
    lines = {l["key"]: l for l in json.loads(cli(gw, "usage", "--by", "key", "--json").stdout)["lines"]}
    assert lines[a1["id"]]["calls"] == 3 and lines[a1["id"]]["spent"] == "0.03 USD"
    assert lines[b["id"]]["calls"] == 3 and lines[b2["id"]]["calls"] == 2
    assert lines[a1["id"]]["uses"] >= 4
    table = cli(gw, "usage", "--by", "key").stdout
    assert a1["id"] in table and a1["key"] not in table
