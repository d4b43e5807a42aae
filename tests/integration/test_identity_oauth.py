"""OAuth 2.0 client credentials through the real binary: register a client, get a token, call with it,
verify it with the published JWKS, and every RFC 6749 §5.2 error."""
import base64
import json
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from identity_helpers import cli, identity_env, orders_config, upstream_header


def oauth_gateway(gateways, standin, api_key, lifetime="10s", auth="any_of: [jwt], scopes: [orders:read]", per_client="20/min"):
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    identity = f"""  oauth:
    issuer: https://gateway.example
    audience: orders-api
    signing_key: SIGNING_KEY
    token_lifetime: {lifetime}
    rate_per_client: {per_client}
    rate_per_address: 20/min
"""
    config = orders_config(standin.port, identity_extra=identity, auth=auth, more_secrets="  SIGNING_KEY: file:signing.pem")
    return gateways(config, env=identity_env(api_key), files={"signing.pem": pem}), pem


def form(gw, body, headers=None):
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    return gw.post("/oauth/token", body, headers=h)


def basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_client_credentials_end_to_end(gateways, standin, api_key):
    gw, pem = oauth_gateway(gateways, standin, api_key, lifetime="10s")
    c = json.loads(cli(gw, "clients", "create", "--name", "partner", "--scopes", "orders:read,orders:write", "--json").stdout)
    assert c["client_id"].startswith("tgc_") and c["client_secret"].startswith("tg_cs_")
    time.sleep(0.6)
    r = form(gw, "grant_type=client_credentials&scope=orders%3Aread", basic(c["client_id"], c["client_secret"]))
    assert r.status == 200, r.text
    assert r.header("cache-control") == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 10 and body["scope"] == "orders:read"
    token = body["access_token"]
    # Upstreams can verify it with the published JWKS.
    keys = gw.get("/.well-known/jwks.json").json()["keys"]
    assert keys[0]["kid"] == jwt.get_unverified_header(token)["kid"] and "d" not in keys[0]
    public = OKPAlgorithm.from_jwk(json.dumps(keys[0]))
    decoded = jwt.decode(token, public, algorithms=["EdDSA"], audience="orders-api", issuer="https://gateway.example")
    assert decoded["sub"] == c["client_id"] and decoded["scope"] == "orders:read"
    # The call.
    r = gw.get("/api/users/x/orders", headers={"Authorization": "Bearer " + token})
    assert r.status == 200, r.text
    assert upstream_header(standin, "x-tollgate-client-id") == c["client_id"]
    # Body authentication works too; a subset only.
    r = form(gw, f"grant_type=client_credentials&client_id={c['client_id']}&client_secret={c['client_secret']}")
    assert r.status == 200 and r.json()["scope"] == "orders:read orders:write"
    gw.stop()
    out = gw.output()
    assert c["client_secret"] not in out and token not in out and "PRIVATE KEY" not in out


def test_expired_and_revoked_tokens_are_refused(gateways, standin, api_key):
    gw, _ = oauth_gateway(gateways, standin, api_key, lifetime="10s")
    c = json.loads(cli(gw, "clients", "create", "--name", "p", "--scopes", "orders:read", "--json").stdout)
    time.sleep(0.6)
    token = form(gw, "grant_type=client_credentials", basic(c["client_id"], c["client_secret"])).json()["access_token"]
    assert gw.get("/api/users/x/orders", headers={"Authorization": "Bearer " + token}).status == 200
    cli(gw, "clients", "revoke", c["client_id"])
    time.sleep(0.6)
    r = gw.get("/api/users/x/orders", headers={"Authorization": "Bearer " + token})
    assert r.status == 401 and 'error="invalid_token"' in r.header("www-authenticate")
    r = form(gw, "grant_type=client_credentials", basic(c["client_id"], c["client_secret"]))
    assert r.status == 401 and r.json()["error"] == "invalid_client"


def test_token_expiry(gateways, standin, api_key):
    gw, _ = oauth_gateway(gateways, standin, api_key, lifetime="10s")
    c = json.loads(cli(gw, "clients", "create", "--name", "p", "--scopes", "orders:read", "--json").stdout)
    time.sleep(0.6)
    token = form(gw, "grant_type=client_credentials", basic(c["client_id"], c["client_secret"])).json()["access_token"]
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert gw.get("/api/users/x/orders", headers={"Authorization": "Bearer " + token}).status == 200
    time.sleep(max(0, exp + 5 + 1 - time.time()))  # the default 5 s leeway for its own tokens
    assert gw.get("/api/users/x/orders", headers={"Authorization": "Bearer " + token}).status == 401


def test_rfc6749_errors_and_least_privilege(gateways, standin, api_key):
    gw, _ = oauth_gateway(gateways, standin, api_key, auth="any_of: [jwt], scopes: [orders:write]")
    c = json.loads(cli(gw, "clients", "create", "--name", "p", "--scopes", "orders:read", "--json").stdout)
    time.sleep(0.6)
    good = basic(c["client_id"], c["client_secret"])
    r = form(gw, "grant_type=client_credentials", basic(c["client_id"], "tg_cs_wrong"))
    assert r.status == 401 and r.json()["error"] == "invalid_client" and r.header("www-authenticate") == 'Basic realm="tollgate"'
    r = form(gw, f"grant_type=client_credentials&client_id=tgc_unknown&client_secret=x")
    assert r.status == 401 and r.json()["error"] == "invalid_client"
    r = form(gw, "grant_type=password&username=a&password=b", good)
    assert r.status == 400 and r.json()["error"] == "unsupported_grant_type"
    r = form(gw, "grant_type=client_credentials&scope=orders%3Awrite", good)  # not the client's
    assert r.status == 400 and r.json()["error"] == "invalid_scope"
    r = form(gw, "scope=orders%3Aread", good)
    assert r.status == 400 and r.json()["error"] == "invalid_request"
    r = gw.post("/oauth/token", json.dumps({"grant_type": "client_credentials"}), headers={"Content-Type": "application/json", **good})
    assert r.status == 400 and r.json()["error"] == "invalid_request"
    # Least privilege: its token does not open a route that needs a scope it was not given.
    token = form(gw, "grant_type=client_credentials", good).json()["access_token"]
    r = gw.get("/api/users/x/orders", headers={"Authorization": "Bearer " + token})
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:insufficient-scope"
    assert standin.stats()["authorized"] == 0


def test_token_endpoint_limits_brute_force(gateways, standin, api_key):
    gw, _ = oauth_gateway(gateways, standin, api_key, per_client="5/min")
    c = json.loads(cli(gw, "clients", "create", "--name", "p", "--scopes", "orders:read", "--json").stdout)
    time.sleep(0.6)
    statuses = [form(gw, "grant_type=client_credentials", basic(c["client_id"], f"tg_cs_guess{i}")).status for i in range(8)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3
    # The right secret is limited too now: the limit is per client id, before the secret is checked.
    r = form(gw, "grant_type=client_credentials", basic(c["client_id"], c["client_secret"]))
    assert r.status == 429 and r.header("retry-after")
    # Per address: other ids from the same address run into the address limit.
    statuses = [form(gw, f"grant_type=client_credentials&client_id=tgc_x{i}&client_secret=s").status for i in range(20)]
    assert 429 in statuses and statuses.count(401) <= 20 - 9
