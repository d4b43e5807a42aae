"""Per-install client keys through the real binary: handed out by an `issue_client_key` route, limited
to named routes, lapsing by use count, revoked by the "signed up" event, reactivated by the operator."""
import json
import time

from identity_helpers import cli, identity_env, upstream_header


def config(standin_port):
    return f"""
listen: 127.0.0.1:{{{{PORT}}}}
secrets:
  ADDRESS_API_KEY: env:ADDRESS_API_KEY
  KEY_HASH_SECRET: env:KEY_HASH_SECRET
identity:
  key_hash_secret: KEY_HASH_SECRET
  reactivation_help: "Reinstall the app or write to help@example.com."
routes:
  - name: install
    match: {{ method: POST, path: /api/install }}
    issue_client_key: {{ routes: [lookup, signed-up], expires: 1h, max_uses: 3 }}
    limits:
      - {{ per: ip, rate: 3/min }}
  - name: lookup
    match: {{ method: GET, path: /api/lookup }}
    upstream:
      url: http://127.0.0.1:{standin_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
    auth: {{ any_of: [client_key] }}
    limits:
      - {{ per: key, rate: 100/min }}
  - name: signed-up
    match: {{ method: POST, path: /api/signed-up }}
    upstream:
      url: http://127.0.0.1:{standin_port}/v2/validate
      method: POST
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
    auth: {{ any_of: [client_key], revoke_client_key_on_success: true }}
  - name: partner-only
    match: {{ method: GET, path: /api/partner }}
    upstream:
      url: http://127.0.0.1:{standin_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
    auth: {{ any_of: [api_key, client_key] }}
"""


def test_issue_use_lapse_and_reactivate(gateways, standin, api_key):
    gw = gateways(config(standin.port), env=identity_env(api_key))
    r = gw.post("/api/install", "")
    assert r.status == 201, r.text
    issued = r.json()
    assert issued["key"].startswith("tg_inst_") and issued["max_uses"] == 3 and issued["expires_at"]
    key = {"X-API-Key": issued["key"]}
    assert gw.get("/api/lookup", headers=key).status == 200  # works at once (write-through)
    assert upstream_header(standin, "x-tollgate-auth") == "client_key"
    assert upstream_header(standin, "x-tollgate-key-id") == issued["id"]
    r = gw.get("/api/partner", headers=key)
    assert r.status == 403  # not one of the routes it was handed out for
    assert [gw.get("/api/lookup", headers=key).status for _ in range(3)] == [200, 401, 401]
    r = gw.get("/api/lookup", headers=key)
    assert r.json()["type"] == "urn:tollgate:problem:key-expired" and "help@example.com" in r.json()["detail"]
    time.sleep(1.3)
    shown = json.loads(cli(gw, "keys", "show", issued["id"]).stdout)
    assert shown["kind"] == "install" and shown["uses"] == 3 and shown["state"] == "exhausted"
    cli(gw, "keys", "reactivate", issued["id"], "--add-uses", "5")
    time.sleep(0.6)
    assert gw.get("/api/lookup", headers=key).status == 200
    gw.stop()
    assert issued["key"] not in gw.output()


def test_signed_up_event_revokes_the_key(gateways, standin, api_key):
    gw = gateways(config(standin.port), env=identity_env(api_key))
    key = {"X-API-Key": gw.post("/api/install", "").json()["key"]}
    assert gw.get("/api/lookup", headers=key).status == 200
    assert gw.post("/api/signed-up", "", headers=key).status == 200
    time.sleep(0.3)
    r = gw.get("/api/lookup", headers=key)
    assert r.status == 401 and r.json()["type"] == "urn:tollgate:problem:invalid-credentials"


def test_issuing_is_rate_limited_and_each_key_is_distinct(gateways, standin, api_key):
    gw = gateways(config(standin.port), env=identity_env(api_key))
    answers = [gw.post("/api/install", "") for _ in range(4)]
    assert [a.status for a in answers] == [201, 201, 201, 429]
    assert len({a.json()["key"] for a in answers[:3]}) == 3
    listing = json.loads(cli(gw, "keys", "list", "--json").stdout)
    assert len([k for k in listing if k["kind"] == "install"]) == 3
