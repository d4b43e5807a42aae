"""schemathesis against the running binary's /openapi.json, every check on: no 5xx; every status,
content type, header and body as documented; schema-valid requests accepted and invalid ones
refused; auth not ignored; 405 with Allow for undeclared methods."""
import subprocess

from test_admin_api import admin_gateway, token


def test_the_admin_api_matches_its_openapi_document(gateways, standin, api_key):
    gw = admin_gateway(gateways, standin, api_key)
    ops = token(gw, "read,write,keys")
    p = subprocess.run(["schemathesis", "run", f"http://127.0.0.1:{gw.admin}/openapi.json", "-H", f"Authorization: Bearer {ops}",
                        "--checks", "all", "--max-examples", "30", "--no-color"], capture_output=True, text=True, timeout=600,
                       cwd=gw.dir)  # its cache stays out of the repository
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert "No issues found" in out
    gw.stop()
    assert ops not in gw.output()
