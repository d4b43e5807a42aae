"""Hot reload through the real binary: SIGHUP, `tollgate reload` and the admin API apply a new
config without dropping or failing a request; an invalid one changes nothing; limits keep their
counters where unchanged; the paid API's key rotates without a restart."""
import json
import os
import signal
import subprocess
import threading
import time

from access_helpers import eventually
from conftest import TOLLGATE, address_config, request
from identity_helpers import cli
from test_admin_api import token

LOOKUP = "/api/address?q=10+Downing+St"


def reloaded(gw, count):
    return eventually(lambda: gw.output().count('"config reloaded"') >= count, within=10)


def refused(gw, count):
    return eventually(lambda: gw.output().count("config reload refused") >= count, within=10)


def rewrite(gw, text):
    gw.config.write_text(text.replace("{{PORT}}", str(gw.port)))


def test_twenty_reloads_under_load_fail_no_request(gateways, standin, api_key):
    base = address_config(standin.port)
    gw = gateways(base, env={"ADDRESS_API_KEY": api_key})
    stop = threading.Event()
    results = {"ok": 0, "errors": []}
    lock = threading.Lock()

    def keep_alive_client():
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        while not stop.is_set():
            try:
                conn.request("GET", LOOKUP)
                r = conn.getresponse()
                r.read()
                with lock:
                    if r.status == 200:
                        results["ok"] += 1
                    else:
                        results["errors"].append(r.status)
            except Exception as e:  # a dropped keep-alive connection is a failure too
                with lock:
                    results["errors"].append(repr(e))
                conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)

    def new_connection_client():
        while not stop.is_set():
            try:
                r = request(gw.port, "GET", LOOKUP)
                with lock:
                    if r.status == 200:
                        results["ok"] += 1
                    else:
                        results["errors"].append(r.status)
            except Exception as e:
                with lock:
                    results["errors"].append(repr(e))

    threads = [threading.Thread(target=keep_alive_client) for _ in range(3)] + [threading.Thread(target=new_connection_client)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            extra = "" if i % 2 else f"""
  - name: extra-{i}
    match: {{ method: GET, path: /api/extra }}
    upstream: {{ url: http://127.0.0.1:{standin.port}/v2/validate, auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
"""
            rewrite(gw, address_config(standin.port, extra_route=extra))
            gw.proc.send_signal(signal.SIGHUP)
            assert reloaded(gw, i + 1), gw.output()[-3000:]
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert results["errors"] == [] and results["ok"] > 100, results
    # The last config (i = 19, odd) has no extra route; the one before had it.
    assert request(gw.port, "GET", "/api/extra").status == 404
    assert gw.output().count('"config reloaded"') == 20 and "config reload refused" not in gw.output()


def test_invalid_configs_change_nothing_and_say_why(gateways, standin, api_key):
    gw = gateways(address_config(standin.port), env={"ADDRESS_API_KEY": api_key})
    good = gw.config.read_text()
    rewrite(gw, good.replace("min_length: 3", "min_length: -3").replace("routes:", "routes:\n  - nonsense: 1"))
    gw.proc.send_signal(signal.SIGHUP)
    assert refused(gw, 1)
    assert request(gw.port, "GET", LOOKUP).status == 200
    assert request(gw.port, "GET", "/api/address?q=ab").status == 422  # the old min_length: 3 still holds
    # The CLI checks before it signals: nothing is sent, the errors are printed.
    p = subprocess.run([str(TOLLGATE), "reload", "--config", str(gw.config), "--pid", str(gw.proc.pid)],
                       capture_output=True, text=True, env=gw.env)
    assert p.returncode == 1 and "not reloaded" in p.stderr and "routes[" in p.stderr
    assert gw.output().count("SIGHUP") == 1
    # A change that needs a restart is refused whole.
    rewrite(gw, good.replace("shutdown_grace: 5s", "shutdown_grace: 5s\nworkers: 7").replace("max_length: 100", "max_length: 5"))
    gw.proc.send_signal(signal.SIGHUP)
    assert refused(gw, 2)
    assert "a restart is needed" in gw.output()
    assert request(gw.port, "GET", LOOKUP).status == 200  # max_length: 5 was not applied


def test_limits_keep_their_counts_unless_they_change(gateways, standin, api_key):
    limited = """    limits:
      - { name: per-ip, per: ip, rate: 3/min }
"""
    config = address_config(standin.port).replace("    fixed: { format: json }\n", limited + "    fixed: { format: json }\n")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    for _ in range(3):
        assert request(gw.port, "GET", LOOKUP).status == 200
    assert request(gw.port, "GET", LOOKUP).status == 429
    rewrite(gw, config.replace("forward_headers: [Accept-Language]", "forward_headers: [Accept-Language, X-Trace]"))
    gw.proc.send_signal(signal.SIGHUP)
    assert reloaded(gw, 1)
    assert request(gw.port, "GET", LOOKUP).status == 429  # unchanged limit: no fresh allowance
    rewrite(gw, config.replace("rate: 3/min", "rate: 5/min"))
    gw.proc.send_signal(signal.SIGHUP)
    assert reloaded(gw, 2)
    assert request(gw.port, "GET", LOOKUP).status == 200  # a changed limit starts anew


def test_the_upstream_key_rotates_without_a_restart(gateways, standin, api_key):
    config = address_config(standin.port).replace("ADDRESS_API_KEY: env:ADDRESS_API_KEY", "ADDRESS_API_KEY: file:upstream.key")
    gw = gateways(config, files={"upstream.key": api_key}, start=False)
    os.chmod(gw.dir / "upstream.key", 0o600)
    gw.start()
    assert request(gw.port, "GET", LOOKUP).status == 200
    rotated = "sk_test_rotated_" + os.urandom(8).hex()
    (gw.dir / "upstream.key").write_text(rotated)
    gw.proc.send_signal(signal.SIGHUP)
    assert reloaded(gw, 1)
    r = request(gw.port, "GET", LOOKUP)
    sent = dict((n.lower(), v) for n, v in standin.last()["headers"])["x-api-key"]
    assert sent == rotated and r.status == 502  # the stand-in knows only the old key; the gateway sent the new one
    (gw.dir / "upstream.key").write_text(api_key)
    gw.proc.send_signal(signal.SIGHUP)
    assert reloaded(gw, 2)
    assert request(gw.port, "GET", LOOKUP).status == 200
    gw.stop()
    out = gw.output()
    assert api_key not in out and rotated not in out


def test_reload_through_the_cli_and_the_admin_api(gateways, standin, api_key):
    from conftest import free_port
    admin_port = free_port()
    base = address_config(standin.port, root_extra=f"admin: 127.0.0.1:{admin_port}\n")
    gw = gateways(base, env={"ADDRESS_API_KEY": api_key, "KEY_HASH_SECRET": "x" * 32}, start=False)
    pid_file = gw.dir / "tollgate.pid"
    gw.proc = subprocess.Popen([str(TOLLGATE), "serve", "--config", str(gw.config), "--pid-file", str(pid_file)],
                               stdout=open(gw.out_path, "w"), stderr=open(gw.err_path, "w"), env=gw.env)
    gw.out, gw.err = open(gw.out_path, "a"), open(gw.err_path, "a")
    from conftest import wait_for_port
    wait_for_port(gw.port, proc=gw.proc)
    extra = f"""
  - name: extra
    match: {{ method: GET, path: /api/extra }}
    upstream: {{ url: http://127.0.0.1:{standin.port}/v2/validate, auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
"""
    rewrite(gw, address_config(standin.port, root_extra=f"admin: 127.0.0.1:{admin_port}\n", extra_route=extra))
    p = subprocess.run([str(TOLLGATE), "reload", "--config", str(gw.config), "--pid-file", str(pid_file)],
                       capture_output=True, text=True, env=gw.env)
    assert p.returncode == 0 and "sent SIGHUP" in p.stdout
    assert reloaded(gw, 1)
    assert request(gw.port, "GET", "/api/extra").status == 200
    # The admin API: a candidate is validated without being applied; reload applies the file.
    gw.admin = admin_port
    write, read = token(gw, "write"), token(gw, "read")
    headers = {"Authorization": "Bearer " + write, "Content-Type": "text/plain"}
    r = request(admin_port, "POST", "/v1/config/validate", headers=headers, body="listen: nope\nroutes: []\n")
    assert r.status == 200 and r.json()["valid"] is False and {e["path"] for e in r.json()["errors"]} >= {"listen"}
    r = request(admin_port, "POST", "/v1/config/validate", headers=headers, body=gw.config.read_text())
    assert r.status == 200 and r.json() == {"valid": True, "errors": [], "warnings": []}
    rewrite(gw, base)
    env = dict(gw.env, TOLLGATE_ADMIN_TOKEN=write)
    p = subprocess.run([str(TOLLGATE), "reload", "--config", str(gw.config)], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.strip() == "reloaded", p.stderr
    assert request(gw.port, "GET", "/api/extra").status == 404
    rewrite(gw, base.replace("min_length: 3", "min_length: x"))
    r = request(admin_port, "POST", "/v1/config/reload", headers=headers)
    assert r.status == 422 and r.json()["type"] == "urn:tollgate:problem:reload-refused"
    assert any("min_length" in e["field"] for e in r.json()["errors"])
    metrics = request(admin_port, "GET", "/metrics").text
    assert 'tollgate_reloads_total{result="ok"} 2' in metrics and 'tollgate_reloads_total{result="failed"} 1' in metrics
    audit = request(admin_port, "GET", "/v1/audit", headers={"Authorization": "Bearer " + read}).json()["entries"]
    assert [(e["action"], e["target"]) for e in audit[:2]] == [("config.reload", "refused"), ("config.reload", "applied")]
    gw.stop()
    assert write not in gw.output()
