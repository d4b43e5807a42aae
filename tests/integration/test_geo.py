"""Country rules from a real MaxMind-format database (written by the test with mmdb_writer from
PyPI, read by the gateway with libmaxminddb): allow and deny per route, the country in the access
log, a changed file picked up while running, a corrupt one ignored, a missing one refused at start."""
import subprocess

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from access_helpers import eventually, request_from
from conftest import TOLLGATE, address_config


def write_db(path, networks):
    w = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    for cidr, code in networks.items():
        w.insert_network(IPSet([cidr]), {"country": {"iso_code": code, "names": {"en": code}}})
    w.to_db_file(str(path))


def geo_config(standin_port):
    return address_config(standin_port, root_extra="geo: { database: geo.mmdb }\n", extra_route="""
    countries: { allow: [DE] }
  - name: lookup-not-fr
    match: { method: GET, path: /api/anywhere-but-fr }
    upstream: { url: http://127.0.0.1:%d/v2/validate, auth: { header: X-Api-Key, secret: ADDRESS_API_KEY } }
    countries: { deny: [fr] }
""" % standin_port)


def test_country_rules_log_and_database_reload(gateways, standin, api_key, tmp_path):
    gw = gateways(geo_config(standin.port), env={"ADDRESS_API_KEY": api_key}, start=False)
    write_db(gw.dir / "geo.mmdb", {"127.0.0.0/25": "DE", "127.0.0.128/25": "FR"})
    gw.start()
    q = "/api/address?q=10+Downing+St"
    assert request_from("127.0.0.5", gw.port, "GET", q).status == 200
    r = request_from("127.0.0.200", gw.port, "GET", q)
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:country-denied"
    r = request_from("127.0.1.1", gw.port, "GET", q)  # not in the database: an allow list refuses it
    assert r.status == 403
    assert request_from("127.0.1.1", gw.port, "GET", "/api/anywhere-but-fr").status == 200  # a deny list does not
    assert request_from("127.0.0.200", gw.port, "GET", "/api/anywhere-but-fr").status == 403
    log = eventually(lambda: (lambda lines: lines if len(lines) >= 5 else None)(gw.access_log()), within=3)  # lines are batched
    assert {(l["client"], l.get("country")) for l in log} >= {("127.0.0.5", "DE"), ("127.0.0.200", "FR"), ("127.0.1.1", None)}
    # A corrupt file is refused and the database in use kept ...
    (gw.dir / "geo.mmdb").write_bytes(b"not a database")
    assert eventually(lambda: "geo database changed but cannot be opened" in gw.output(), within=8)
    assert request_from("127.0.0.5", gw.port, "GET", q).status == 200
    # ... a good new one replaces it while the gateway runs.
    write_db(gw.dir / "geo.mmdb", {"127.0.0.0/24": "FR"})
    assert eventually(lambda: request_from("127.0.0.5", gw.port, "GET", q).status == 403, within=8)


def test_a_missing_or_corrupt_database_stops_the_start(gateways, standin, api_key):
    gw = gateways(geo_config(standin.port), env={"ADDRESS_API_KEY": api_key}, start=False)
    p = subprocess.run([str(TOLLGATE), "check", "--config", str(gw.config)], capture_output=True, text=True)
    assert p.returncode != 0 and "geo.database" in p.stdout + p.stderr and "does not exist" in p.stdout + p.stderr
    (gw.dir / "geo.mmdb").write_bytes(b"\x00" * 64)
    gw.start(expect_failure=True)
    assert gw.proc.returncode != 0
    assert "cannot open the geo database" in gw.output()
