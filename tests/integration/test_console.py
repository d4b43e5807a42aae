"""The operator's console in headless Chromium against the real binary: log in with an admin
token (only a session cookie stays in the browser), see the scripted load's numbers in the cards
and the chart, see a client-chosen script payload shown as text, see an alert fire, press Ban and
have the next request from that address refused. A screenshot is saved in tests/artifacts/."""
import json
import subprocess
import sys
import time
from pathlib import Path

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from access_helpers import eventually, request_from
from conftest import ROOT, address_config, free_port, request
from test_admin_api import token
from test_browser import browser  # noqa: F401  (the headless Chromium fixture)


def settled(browser, seconds):
    """A wait that looks again when the console re-rendered the element between finding and reading it."""
    return WebDriverWait(browser, seconds, ignored_exceptions=(StaleElementReferenceException,))


ARTIFACTS = ROOT / "tests" / "artifacts"
PAYLOAD = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'


def console_gateway(gateways, standin, api_key, hook_port=None):
    admin_port = free_port()
    hook = f'  webhook: {{ url: "http://127.0.0.1:{hook_port}/hooks", secret: HOOK_SECRET }}\n' if hook_port else ""
    root = f"""admin: 127.0.0.1:{admin_port}
budgets:
  - {{ name: daily, limit: 1.00 USD, period: day, alert_at: [80%] }}
alerts:
  interval: 1s
{hook}  rules:
    - {{ name: invalid-input-spike, statuses: [422], above: 3, within: 1m }}
    - {{ name: calls-per-signup, calls_per_signup: 2, min_calls: 3, within: 5m }}
"""
    config = address_config(standin.port, root_extra=root).replace("    fixed: { format: json }", "    cost: 0.01 USD\n    fixed: { format: json }")
    config = config.replace("secrets:\n", "secrets:\n  HOOK_SECRET: env:HOOK_SECRET\n")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key, "HOOK_SECRET": "h" * 32})
    gw.admin = admin_port
    def up():
        try:
            return request(admin_port, "GET", "/livez").status == 200
        except OSError:
            return False
    assert eventually(up, within=10)
    return gw


def test_console_in_a_real_browser(gateways, standin, api_key, browser):  # noqa: F811
    gw = console_gateway(gateways, standin, api_key)
    ops = token(gw, "read,write")
    for _ in range(6):
        assert request_from("127.0.0.2", gw.port, "GET", "/api/address?q=10+Downing+St").status == 200
    for _ in range(5):
        r = request_from("127.0.0.3", gw.port, "GET", "/api/address?q=x&" + "n=%22%3E%3Csvg%20onload%3Dalert(1)%3E",
                         headers={"User-Agent": PAYLOAD})
        assert r.status == 422
    base = f"http://127.0.0.1:{gw.admin}"
    browser.get(base + "/console")
    browser.find_element(By.ID, "token").send_keys("tg_adm_wrong")
    browser.find_element(By.ID, "login").click()
    settled(browser, 10).until(lambda d: d.find_element(By.ID, "failed").is_displayed())
    browser.find_element(By.ID, "token").send_keys(ops)
    browser.find_element(By.ID, "login").click()
    settled(browser, 10).until(lambda d: d.find_element(By.ID, "total-passed").text == "6")
    assert ops not in browser.current_url and "token" not in browser.current_url
    cookie = browser.get_cookie("tg_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and ops not in json.dumps(browser.get_cookies())
    assert browser.find_element(By.ID, "total-refused").text == "5"
    assert browser.find_element(By.ID, "legend").text == "passed 6 · refused 5 · cached 0"
    lines = {l.get_attribute("data-series"): l.get_attribute("data-total") for l in browser.find_elements(By.CSS_SELECTOR, "#chart polyline")}
    assert lines == {"passed": "6", "refused": "5", "cached": "0"}
    assert "validation 5" in browser.find_element(By.ID, "reasons").text
    assert browser.find_element(By.CSS_SELECTOR, "#budgets tbody tr").text.startswith("daily global 0.06 USD 1.00 USD")
    # The client's script payload is shown as text and never runs.
    settled(browser, 10).until(lambda d: PAYLOAD in d.find_element(By.ID, "recent").text)
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.find_elements(By.CSS_SELECTOR, "#recent img, #recent script, #recent svg") == []
    # The 422 spike fired an alert (rules run every second here).
    settled(browser, 15).until(lambda d: "invalid-input-spike" in d.find_element(By.ID, "alerts").text)
    # Ban the refused client from its row; its next request is refused, its neighbour's is not.
    settled(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#top-clients tr[data-client="127.0.0.3"] button.ban'))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 1400)
    time.sleep(0.5)
    browser.save_screenshot(str(ARTIFACTS / "console.png"))
    browser.find_element(By.CSS_SELECTOR, '#top-clients tr[data-client="127.0.0.3"] button.ban').click()
    settled(browser, 10).until(lambda d: "127.0.0.3" in d.find_element(By.ID, "bans").text)
    r = request_from("127.0.0.3", gw.port, "GET", "/api/address?q=10+Downing+St")
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:banned"
    assert request_from("127.0.0.2", gw.port, "GET", "/api/address?q=10+Downing+St").status == 200
    # The kill switch.
    browser.find_element(By.ID, "kill-switch").click()
    settled(browser, 10).until(lambda d: d.find_element(By.ID, "kill-switch").get_attribute("data-paused") == "yes")
    assert eventually(lambda: request_from("127.0.0.2", gw.port, "GET", "/api/address?q=10+Downing+St").status == 503)
    audit = request(gw.admin, "GET", "/v1/audit", headers={"Authorization": "Bearer " + ops}).json()["entries"]
    assert [e["action"] for e in audit[:2]] == ["routes.pause", "bans.add"] and audit[1]["target"] == "address 127.0.0.3"
    gw.stop()
    assert ops not in gw.output()


def login(gw, tok):
    r = request(gw.admin, "POST", "/console/login", body="token=" + tok,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://127.0.0.1:{gw.admin}"})
    assert r.status == 303 and r.header("location") == "/console"
    set_cookie = r.header("set-cookie")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and tok not in set_cookie
    return set_cookie.split(";")[0]


def test_console_writes_need_the_session_its_origin_and_json(gateways, standin, api_key):
    gw = console_gateway(gateways, standin, api_key)
    reader, writer = token(gw, "read"), token(gw, "write,read")
    page = request(gw.admin, "GET", "/console")
    csp = page.header("content-security-policy")
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.header("x-frame-options") == "DENY" and 'id="token"' in page.text  # not logged in: the login form
    own = f"http://127.0.0.1:{gw.admin}"
    ban = json.dumps({"kind": "address", "value": "127.0.0.9"})
    assert request(gw.admin, "GET", "/console/api/overview").status == 401
    cookie = login(gw, writer)
    headers = {"Cookie": cookie, "Content-Type": "application/json"}
    assert request(gw.admin, "POST", "/console/api/bans", headers=headers, body=ban).status == 403  # no Origin
    r = request(gw.admin, "POST", "/console/api/bans", headers=dict(headers, Origin="http://evil.example"), body=ban)
    assert r.status == 403 and r.json()["type"] == "urn:tollgate:problem:cross-origin"
    r = request(gw.admin, "POST", "/console/api/bans", headers=dict(headers, Origin=own, **{"Content-Type": "text/plain"}), body=ban)
    assert r.status == 415
    assert request(gw.admin, "POST", "/console/api/bans", headers={"Origin": own, "Content-Type": "application/json"}, body=ban).status == 401
    assert request(gw.admin, "POST", "/console/api/bans", headers=dict(headers, Origin=own), body=ban).status == 201
    # A read-only session may look but not ban.
    read_cookie = login(gw, reader)
    overview = request(gw.admin, "GET", "/console/api/overview", headers={"Cookie": read_cookie})
    assert overview.status == 200 and overview.json()["bans"][0]["value"] == "127.0.0.9"
    r = request(gw.admin, "POST", "/console/api/bans", headers={"Cookie": read_cookie, "Origin": own, "Content-Type": "application/json"}, body=ban)
    assert r.status == 403
    # Revoking the token ends its sessions; logging in with a non-admin value fails.
    from identity_helpers import cli
    ids = [l.split()[0] for l in cli(gw, "admin-tokens", "list").stdout.splitlines() if "ops-read " in l + " "]
    cli(gw, "admin-tokens", "revoke", ids[0])
    assert request(gw.admin, "GET", "/console/api/overview", headers={"Cookie": read_cookie}).status == 401
    r = request(gw.admin, "POST", "/console/login", body="token=" + api_key,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": own})
    assert r.status == 303 and r.header("location") == "/console?failed" and r.header("set-cookie") is None
    gw.stop()
    out = gw.output()
    assert writer not in out and reader not in out and cookie.split("=")[1] not in out


def test_rate_alerts_fire_once_and_recover_through_the_signed_webhook(gateways, standin, api_key, tmp_path):
    import hashlib
    import hmac
    log = tmp_path / "hooks.jsonl"
    receiver = subprocess.Popen([sys.executable, str(Path(__file__).parent / "webhook_receiver.py"), str(log)],
                                stdout=subprocess.PIPE, text=True)
    try:
        hook_port = int(receiver.stdout.readline())
        gw = console_gateway(gateways, standin, api_key, hook_port=hook_port)
        writer = token(gw, "write")

        def hooks():
            return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []

        for _ in range(4):
            assert request(gw.port, "GET", "/api/address?q=10+Downing+St").status == 200
        # Four paid calls and no sign-up: above 2 per sign-up.
        assert eventually(lambda: any(json.loads(h["body"])["type"] == "rate.firing" for h in hooks()), within=10)
        firing = [json.loads(h["body"]) for h in hooks()]
        assert [(b["type"], b["rule"], b["value"]) for b in firing] == [("rate.firing", "calls-per-signup", 4)]
        h = hooks()[0]
        t, v1 = [p.split("=", 1)[1] for p in h["headers"]["X-Tollgate-Signature"].split(",")]
        assert hmac.new(b"h" * 32, f"{t}.{h['body']}".encode(), hashlib.sha256).hexdigest() == v1
        time.sleep(2.5)
        assert len(hooks()) == 1  # once per episode
        r = request(gw.admin, "POST", "/v1/signups", headers={"Authorization": "Bearer " + writer, "Content-Type": "application/json"},
                    body=json.dumps({"count": 2}))
        assert r.status == 200 and r.json() == {"counted": 2}
        assert eventually(lambda: len(hooks()) == 2, within=10)
        recovered = json.loads(hooks()[1]["body"])
        assert recovered["type"] == "rate.recovered" and recovered["value"] == 2 and recovered["rule"] == "calls-per-signup"
        out = gw.output()
        assert '"rate alert"' in out and "firing" in out and "recovered" in out
        # The same counts through swift-metrics/swift-prometheus on /metrics.
        metrics = request(gw.admin, "GET", "/metrics").text
        for line in ['tollgate_decisions_total{decision="passed"} 4', "tollgate_upstream_calls_total 4", "tollgate_signups_total 2",
                     'tollgate_upstream_duration_seconds_count{route="address-lookup"} 4', 'tollgate_responses_total{class="2xx"} 4']:
            assert line in metrics.splitlines(), line
    finally:
        receiver.terminate()
