"""HTTPS upstreams are verified against a CA made for the test; a TLS listener sends HSTS."""
import datetime
import http.client
import socket
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


def https_get(port, ca, path="/api/address?q=Main+Street", **ctx_options):
    ctx = ssl.create_default_context(cafile=str(ca))
    for name, value in ctx_options.items():
        setattr(ctx, name, value)
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r, conn.sock.getpeercert(binary_form=True), conn.sock.version(), conn.sock.cipher()[0]
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.0/1.1 are offered on purpose
def test_redirect_listener_hsts_settings_and_tls_versions(gateways, standin, tmp_path, api_key):
    from conftest import free_port, request, wait_for_port
    paths = make_ca_and_cert(tmp_path)
    http_port = free_port()
    config = address_config(standin.port, root_extra=f"""tls:
  cert: {paths['cert']}
  key: {paths['key']}
  hsts: {{ max_age: 1d, include_subdomains: false }}
  redirect_http: 127.0.0.1:{http_port}
""")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    wait_for_port(http_port, proc=gw.proc)  # the redirect listener opens after the main one
    r = request(http_port, "GET", "/api/address?q=Main+Street", headers={"Host": f"localhost:{http_port}"})
    assert r.status == 308 and r.header("location") == f"https://localhost:{gw.port}/api/address?q=Main+Street"
    assert r.body == b"" and standin.stats()["calls"] == 0
    r = request(http_port, "POST", "/anything", headers={"Host": "shop.example"}, body="x=1")
    assert r.status == 308 and r.header("location") == f"https://shop.example:{gw.port}/anything"
    r = request(http_port, "GET", "/", headers={"Host": "bad host!"})
    assert r.status == 400
    r, _, version, cipher = https_get(gw.port, paths["ca"])
    assert r.status == 200 and r.getheader("strict-transport-security") == "max-age=86400"
    # TLS 1.2 with a forward-secret AEAD suite works; TLS 1.1 is refused.
    r, _, version, cipher = https_get(gw.port, paths["ca"], maximum_version=ssl.TLSVersion.TLSv1_2)
    assert r.status == 200 and version == "TLSv1.2" and ("GCM" in cipher or "CHACHA20" in cipher) and cipher.startswith("ECDHE")
    old = ssl.create_default_context(cafile=str(paths["ca"]))
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        conn = http.client.HTTPSConnection("localhost", gw.port, context=old, timeout=5)
        conn.request("GET", "/")
    # CBC suites without forward secrecy are not offered over TLS 1.2.
    weak = ssl.create_default_context(cafile=str(paths["ca"]))
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("AES128-SHA:AES256-SHA")
    with pytest.raises(ssl.SSLError):
        conn = http.client.HTTPSConnection("localhost", gw.port, context=weak, timeout=5)
        conn.request("GET", "/")


def test_sessions_are_resumed_with_tickets_over_tls_1_2_and_1_3(gateways, standin, tmp_path, api_key):
    """A client that offers the session of its previous connection resumes it (no full handshake):
    session tickets, whose keys the TLS library makes and rotates itself."""
    paths = make_ca_and_cert(tmp_path)
    config = address_config(standin.port, root_extra=f"tls: {{ cert: {paths['cert']}, key: {paths['key']} }}")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        ctx = ssl.create_default_context(cafile=str(paths["ca"]))
        ctx.minimum_version = ctx.maximum_version = version
        session, reused = None, []
        for _ in range(3):
            raw = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
                tls.sendall(b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200") and tls.version() == name, answer[:80]
                reused.append(tls.session_reused)
                session = tls.session  # a TLS 1.3 ticket arrives after the handshake: taken once the answer is read
        assert reused == [False, True, True], (name, reused)


def test_a_renewed_certificate_is_picked_up_while_running(gateways, standin, tmp_path, api_key):
    paths = make_ca_and_cert(tmp_path)
    config = address_config(standin.port, root_extra=f"tls: {{ cert: {paths['cert']}, key: {paths['key']}, hsts: false }}")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    r, first, _, _ = https_get(gw.port, paths["ca"])
    assert r.status == 200 and r.getheader("strict-transport-security") is None
    renewed_dir = tmp_path / "renewed"
    renewed_dir.mkdir()
    renewed = make_ca_and_cert(renewed_dir)
    (tmp_path / "cert.pem").write_bytes(renewed["cert"].read_bytes())
    (tmp_path / "key.pem").write_bytes(renewed["key"].read_bytes())
    from access_helpers import eventually
    assert eventually(lambda: "TLS certificate reloaded" in gw.output(), within=10)
    r, second, _, _ = https_get(gw.port, renewed["ca"])
    assert r.status == 200 and second != first
    # A broken file keeps the certificate in use.
    (tmp_path / "cert.pem").write_text("not a certificate")
    assert eventually(lambda: "TLS certificate changed but cannot be loaded" in gw.output(), within=10)
    r, third, _, _ = https_get(gw.port, renewed["ca"])
    assert r.status == 200 and third == second


def test_check_warns_about_plain_http_on_a_public_address(tmp_path):
    import subprocess
    from conftest import TOLLGATE
    config = tmp_path / "t.yaml"
    (tmp_path / "page.html").write_text("<p>hi</p>")
    config.write_text("listen: 0.0.0.0:8080\nroutes:\n  - { name: page, match: { path: / }, file: page.html }\n")
    p = subprocess.run([str(TOLLGATE), "check", "--config", str(config)], capture_output=True, text=True)
    assert "serves plain HTTP on a non-loopback address" in p.stdout + p.stderr
    config.write_text("listen: 127.0.0.1:8080\nroutes:\n  - { name: page, match: { path: / }, file: page.html }\n")
    p = subprocess.run([str(TOLLGATE), "check", "--config", str(config)], capture_output=True, text=True)
    assert "plain HTTP" not in p.stdout + p.stderr
