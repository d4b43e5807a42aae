"""Bearer JWTs through the real binary: keys from a live JWKS server that rotates them, keys from the
config, and the attacks a verifier must refuse — each a 401 with `error="invalid_token"`."""
import base64
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from identity_helpers import identity_env, orders_config, upstream_header

HERE = Path(__file__).resolve().parent


class JWKSServer:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-jwks-"))
        self.doc = self.dir / "jwks.json"
        self.fetches = self.dir / "fetches.log"
        self.fetches.write_text("")
        self.publish([])
        self.proc = subprocess.Popen([sys.executable, str(HERE / "jwks_server.py"), str(self.doc), str(self.fetches)],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"

    def publish(self, keys):
        self.doc.write_text(json.dumps({"keys": keys}))

    def down(self):
        self.doc.write_text("DOWN")

    def fetch_count(self):
        return len(self.fetches.read_text().splitlines())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
def jwks():
    s = JWKSServer()
    yield s
    s.stop()


def public_jwk(private_key, kid, alg=None):
    if isinstance(private_key, rsa.RSAPrivateKey):
        d = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        d = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
    else:
        d = json.loads(OKPAlgorithm.to_jwk(private_key.public_key()))
    d["kid"] = kid
    d["use"] = "sig"
    if alg:
        d["alg"] = alg
    return d


def claims(**over):
    now = int(time.time())
    c = {"sub": "alice", "iss": "https://idp.example", "aud": "orders-api", "iat": now, "exp": now + 300,
         "scope": "orders:read", "roles": ["customer"]}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def jwt_identity(url, extra=""):
    return f"""  jwt:
    issuer: https://idp.example
    audience: orders-api
    leeway: 5s
    jwks_url: {url}
    jwks_min_interval: 1s
{extra}"""


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header, payload, signature=b"x"):
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode()) + "." + b64(signature)


def bearer(token):
    return {"Authorization": "Bearer " + token}


def test_jwks_keys_per_algorithm_verify_and_become_the_identity(gateways, standin, api_key, jwks):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    jwks.publish([public_jwk(rsa_key, "rsa-1"), public_jwk(ec_key, "ec-1"), public_jwk(ed_key, "ed-1", "EdDSA")])
    gw = gateways(orders_config(standin.port, identity_extra=jwt_identity(jwks.url), auth="any_of: [jwt], scopes: [orders:read]"),
                  env=identity_env(api_key))
    cases = [(rsa_key, "rsa-1", "RS256"), (rsa_key, "rsa-1", "RS512"), (rsa_key, "rsa-1", "PS256"),
             (ec_key, "ec-1", "ES256"), (ed_key, "ed-1", "EdDSA")]
    for key, kid, alg in cases:
        token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid})
        r = gw.get("/api/users/alice/orders", headers=bearer(token))
        assert r.status == 200, (alg, r.text)
        assert upstream_header(standin, "x-tollgate-auth") == "jwt"
        assert upstream_header(standin, "x-tollgate-subject") == "alice"
        assert upstream_header(standin, "x-tollgate-roles") == "customer"
        assert token not in json.dumps(standin.last())
    gw.stop()
    assert "eyJ" not in gw.output()  # no token in any log line


def test_attacks_are_refused_with_invalid_token(gateways, standin, api_key, jwks):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.publish([public_jwk(rsa_key, "rsa-1", "RS256")])
    gw = gateways(orders_config(standin.port, identity_extra=jwt_identity(jwks.url), auth="any_of: [jwt]"),
                  env=identity_env(api_key))
    good = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert gw.get("/api/users/alice/orders", headers=bearer(good)).status == 200
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    h, p, s = good.split(".")
    tampered_payload = b64(json.dumps(claims(sub="bob")).encode())
    now = int(time.time())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacks = {
        "alg none": hand_made({"alg": "none", "kid": "rsa-1"}, claims(), b""),
        "alg None": hand_made({"alg": "None", "kid": "rsa-1"}, claims(), b""),
        # HS256 "signed" with the RSA public key as the secret (algorithm confusion).
        "confusion": hand_made({"alg": "HS256", "kid": "rsa-1"}, claims(),
                               __import__("hmac").new(pem, (b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode()) + "." +
                                                            b64(json.dumps(claims()).encode())).encode(), "sha256").digest()),
        "expired": jwt.encode(claims(exp=now - 60, iat=now - 400), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}),
        "not yet valid": jwt.encode(claims(nbf=now + 120), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}),
        "no exp": jwt.encode(claims(exp=None), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}),
        "wrong iss": jwt.encode(claims(iss="https://evil.example"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}),
        "wrong aud": jwt.encode(claims(aud="other-api"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}),
        "unknown kid": jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "nope"}),
        "other key same kid": jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "rsa-1"}),
        "tampered payload": h + "." + tampered_payload + "." + s,
        "oversized": jwt.encode(claims(pad="x" * 9000), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}),
        "jku": jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "rsa-1", "jku": "http://evil.example/jwks"}),
        "embedded jwk": jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "rsa-1", "jwk": public_jwk(other, "x")}),
        "bad base64": h + ".%%%." + s,
        "not json": b64(b"not json") + "." + p + "." + s,
        "two parts": h + "." + p,
        "padded": h + "=." + p + "." + s,
    }
    for name, token in attacks.items():
        r = gw.get("/api/users/alice/orders", headers=bearer(token))
        assert r.status == 401, (name, r.status, r.text)
        assert r.header("content-type") == "application/problem+json", name
        assert r.header("www-authenticate") == 'Bearer realm="tollgate", error="invalid_token"', name
        assert r.json()["request_id"] == r.header("x-request-id")
    assert standin.stats()["authorized"] == 1
    gw.stop()
    notes = [l.get("note", "") for l in gw.access_log() if l["status"] == 401]
    assert any("alg none" in n for n in notes) and any("expired" in n for n in notes) and any("too large" in n for n in notes)
    assert good not in gw.output()


def test_jwks_rotation_and_outage(gateways, standin, api_key, jwks):
    k1 = ec.generate_private_key(ec.SECP256R1())
    k2 = ec.generate_private_key(ec.SECP256R1())
    jwks.publish([public_jwk(k1, "k1", "ES256")])
    gw = gateways(orders_config(standin.port, identity_extra=jwt_identity(jwks.url), auth="any_of: [jwt]"),
                  env=identity_env(api_key))
    t1 = jwt.encode(claims(), k1, algorithm="ES256", headers={"kid": "k1"})
    t2 = jwt.encode(claims(sub="bob"), k2, algorithm="ES256", headers={"kid": "k2"})
    assert gw.get("/api/users/alice/orders", headers=bearer(t1)).status == 200
    # The issuer rotates to k2; the first k2 token asks for an early refetch.
    jwks.publish([public_jwk(k2, "k2", "ES256")])
    fetches = jwks.fetch_count()
    time.sleep(1.1)  # past jwks_min_interval
    assert gw.get("/api/users/bob/orders", headers=bearer(t2)).status == 401
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and gw.get("/api/users/bob/orders", headers=bearer(t2)).status != 200:
        time.sleep(0.1)
    assert gw.get("/api/users/bob/orders", headers=bearer(t2)).status == 200
    assert jwks.fetch_count() == fetches + 1
    assert gw.get("/api/users/alice/orders", headers=bearer(t1)).status == 401  # k1 is gone, cache or not
    # A flood of unknown kids refetches at most once per min interval.
    stranger = ec.generate_private_key(ec.SECP256R1())
    for i in range(30):
        gw.get("/api/users/alice/orders", headers=bearer(jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": f"u{i}"})))
    assert jwks.fetch_count() <= fetches + 3
    # The JWKS server goes down: the last good keys stay.
    jwks.down()
    time.sleep(1.1)
    gw.get("/api/users/alice/orders", headers=bearer(jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": "again"})))
    time.sleep(0.5)
    assert gw.get("/api/users/bob/orders", headers=bearer(t2)).status == 200
    gw.stop()
    assert "keeping the last good keys" in gw.output()


def test_configured_hmac_and_pem_keys(gateways, standin, api_key):
    hs_secret = secrets.token_urlsafe(32)
    ed = ed25519.Ed25519PrivateKey.generate()
    pem = ed.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    identity = """  jwt:
    roles_claim: realm_access.roles
    keys:
      - { kid: hs, alg: HS256, secret: JWT_HS }
      - { kid: ed, alg: EdDSA, pem_file: ed.pem }
"""
    config = orders_config(standin.port, identity_extra=identity, auth="any_of: [jwt], roles: [admin]",
                           more_secrets="  JWT_HS: env:JWT_HS")
    gw = gateways(config, env=identity_env(api_key, JWT_HS=hs_secret), files={"ed.pem": pem})
    admin = {"realm_access": {"roles": ["admin"]}}
    r = gw.get("/api/users/x/orders", headers=bearer(jwt.encode(claims(iss=None, aud=None, **admin), hs_secret, algorithm="HS256",
                                                                  headers={"kid": "hs"})))
    assert r.status == 200, r.text
    r = gw.get("/api/users/x/orders", headers=bearer(jwt.encode(claims(**admin), ed, algorithm="EdDSA", headers={"kid": "ed"})))
    assert r.status == 200, r.text
    assert upstream_header(standin, "x-tollgate-roles") == "admin"
    # Authenticated but without the role: 403, not 401.
    r = gw.get("/api/users/x/orders", headers=bearer(jwt.encode(claims(), hs_secret, algorithm="HS256", headers={"kid": "hs"})))
    assert r.status == 403
    # An HS256 token under the EdDSA key's kid is not checked against it.
    r = gw.get("/api/users/x/orders", headers=bearer(jwt.encode(claims(**admin), hs_secret, algorithm="HS256", headers={"kid": "ed"})))
    assert r.status == 401
    gw.stop()
    assert hs_secret not in gw.output()


def test_ownership_with_tokens_admin_may_read_others(gateways, standin, api_key, jwks):
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.publish([public_jwk(key, "k", "ES256")])
    config = orders_config(standin.port, identity_extra=jwt_identity(jwks.url), auth="any_of: [jwt]",
                           route_extra="    owner: { param: user_id, equals: claim.sub, unless_role: admin }")
    gw = gateways(config, env=identity_env(api_key))
    alice = jwt.encode(claims(sub="alice"), key, algorithm="ES256", headers={"kid": "k"})
    admin = jwt.encode(claims(sub="root", roles=["admin"]), key, algorithm="ES256", headers={"kid": "k"})
    assert gw.get("/api/users/alice/orders", headers=bearer(alice)).status == 200
    r = gw.get("/api/users/bob/orders", headers=bearer(alice))  # BOLA: one user, another's object
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:forbidden"
    assert gw.get("/api/users/bob/orders", headers=bearer(admin)).status == 200
    assert standin.stats()["authorized"] == 2
    # A subject that is not a safe header value reaches the upstream percent-encoded, on one line.
    odd = jwt.encode(claims(sub="eve\r\nX-Evil: 1", roles=["admin"]), key, algorithm="ES256", headers={"kid": "k"})
    assert gw.get("/api/users/bob/orders", headers=bearer(odd)).status == 200
    assert upstream_header(standin, "x-tollgate-subject") == "eve%0D%0AX-Evil:%201"
    assert upstream_header(standin, "x-evil") is None


def test_a_jwk_from_a_secret(gateways, standin, api_key):
    key = ed25519.Ed25519PrivateKey.generate()
    identity = "  jwt:\n    keys:\n      - { alg: EdDSA, jwk_secret: IDP_JWK }\n"
    gw = gateways(orders_config(standin.port, identity_extra=identity, auth="any_of: [jwt]", more_secrets="  IDP_JWK: env:IDP_JWK"),
                  env=identity_env(api_key, IDP_JWK=json.dumps(public_jwk(key, "j1"))))
    assert gw.get("/api/users/x/orders", headers=bearer(jwt.encode(claims(), key, algorithm="EdDSA"))).status == 200
    assert gw.get("/api/users/x/orders", headers=bearer(jwt.encode(claims(), key, algorithm="EdDSA", headers={"kid": "j1"}))).status == 200
    assert gw.get("/api/users/x/orders", headers=bearer(jwt.encode(claims(), key, algorithm="EdDSA", headers={"kid": "j2"}))).status == 401
