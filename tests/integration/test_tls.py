"""HTTPS upstreams are verified against a CA made for the test; a TLS listener sends HSTS."""
import datetime
import http.client
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import StandIn, address_config
import ipaddress


def make_ca_and_cert(directory, names=("localhost",), ips=("127.0.0.1",)):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tollgate Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": directory / "ca.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_standin(tmp_path, api_key):
    paths = make_ca_and_cert(tmp_path)
    s = StandIn(api_key, tls_cert=paths["cert"], tls_key=paths["key"])
    yield s, paths
    s.stop()


def https_config(port, ca=None, host="localhost"):
    config = address_config(port, scheme="https", upstream_host=host, connect_timeout="1s")
    if ca:
        config = config.replace("connect_timeout: 1s", f"connect_timeout: 1s\n      ca_file: {ca}")
    return config


def test_https_upstream_verified_with_private_ca(gateways, tls_standin, api_key):
    standin, paths = tls_standin
    gw = gateways(https_config(standin.port, paths["ca"]), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=Main+Street")
    assert r.status == 200, r.text
    assert standin.stats()["authorized"] == 1


def test_https_upstream_by_ip_checks_the_ip_san(gateways, tls_standin, api_key):
    standin, paths = tls_standin
    gw = gateways(https_config(standin.port, paths["ca"], host="127.0.0.1"), env={"ADDRESS_API_KEY": api_key})
    assert gw.get("/api/address?q=Main+Street").status == 200


def test_untrusted_certificate_is_refused(gateways, tls_standin, api_key):
    standin, _ = tls_standin
    gw = gateways(https_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=Main+Street")
    assert r.status == 502
    assert standin.stats()["calls"] == 0  # the key was never sent


def test_wrong_hostname_is_refused(gateways, tmp_path, api_key):
    paths = make_ca_and_cert(tmp_path, names=("other.example",), ips=())
    s = StandIn(api_key, tls_cert=paths["cert"], tls_key=paths["key"])
    try:
        gw = gateways(https_config(s.port, paths["ca"]), env={"ADDRESS_API_KEY": api_key})
        assert gw.get("/api/address?q=Main+Street").status == 502
        assert s.stats()["calls"] == 0
    finally:
        s.stop()


def test_tls_listener_sends_hsts(gateways, standin, tmp_path, api_key):
    paths = make_ca_and_cert(tmp_path)
    config = address_config(standin.port, root_extra=f"tls: {{ cert: {paths['cert']}, key: {paths['key']} }}")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    ctx = ssl.create_default_context(cafile=str(paths["ca"]))
    conn = http.client.HTTPSConnection("localhost", gw.port, context=ctx, timeout=5)
    conn.request("GET", "/api/address?q=Main+Street")
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("strict-transport-security") == "max-age=31536000; includeSubDomains"
    conn.close()


def test_plain_listener_sends_no_hsts_unless_trusted_proxy_says_https(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=Main+Street", headers={"X-Forwarded-Proto": "https"})
    assert r.header("strict-transport-security") is None
    config = address_config(standin.port, root_extra="trusted_proxies: [127.0.0.1/32]")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=Main+Street", headers={"X-Forwarded-Proto": "https"})
    assert r.header("strict-transport-security") is not None
