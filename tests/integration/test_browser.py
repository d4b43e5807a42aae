"""A real browser (headless Chromium) uses the demo page through the gateway: the snippet gets a page
token, solves a proof-of-work challenge and the lookup succeeds; the same call replayed with curl-like
requests (no cookie, reused token, foreign origin) is refused."""
import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT, Gateway, request

EXAMPLE = ROOT / "examples" / "address-validation"


def demo_config(standin_port, gateway_port):
    """The demo's config, pointed at this test's stand-in, with a challenge on every call and few
    uses per token so that replays can be shown to fail."""
    text = (EXAMPLE / "tollgate.yaml").read_text()
    text = text.replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:{{PORT}}").replace("admin: 127.0.0.1:9090", "")
    text = text.replace("http://127.0.0.1:9101/v2/validate", f"http://127.0.0.1:{standin_port}/v2/validate")
    text = text.replace('origin: { allow: ["http://127.0.0.1:8080", "http://localhost:8080"] }',
                        f'origin: {{ allow: ["http://127.0.0.1:{gateway_port}"] }}')
    text = text.replace("challenge: { when: over_rate, soft_rate: 10/min }", "challenge: { when: always }")
    text = text.replace("max_uses: 100", "max_uses: 2")
    text = text.replace("store: ", "# store: ")
    return text + "\nstore: memory\n"


def start_chromium(home=None):
    """Headless Chromium; with `home`, its NSS database (the certificates it trusts) is that home's."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "chromium and chromium-driver must be installed (scripts/test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,900"]:
        options.add_argument(arg)
    env = dict(os.environ, HOME=str(home)) if home else None
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path, env=env))


@pytest.fixture
def browser():
    driver = start_chromium()
    yield driver
    driver.quit()


def test_page_works_in_a_real_browser_and_replays_are_refused(standin, api_key, browser, tmp_path):
    gw = Gateway("", env={"ADDRESS_API_KEY": api_key, "PAGE_TOKEN_KEY": "t" * 32, "CHALLENGE_KEY": "c" * 32})
    config = demo_config(standin.port, gw.port).replace("{{PORT}}", str(gw.port))
    gw.config.write_text(config)
    for name in ["signup.html", "signup.js", "signup.css"]:
        (gw.dir / name).write_text((EXAMPLE / name).read_text())
    gw.start()
    try:
        base = f"http://127.0.0.1:{gw.port}"
        browser.get(base + "/")
        browser.find_element(By.ID, "address").send_keys("10 Downing Street")
        browser.find_element(By.ID, "check").click()
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "result").get_attribute("class") in ("ok", "warn", "error"))
        result = browser.find_element(By.ID, "result")
        browser.save_screenshot(str(tmp_path / "signup.png"))
        assert result.get_attribute("class") == "ok", result.text
        assert "10 DOWNING STREET, GB" in result.text
        assert standin.stats()["authorized"] == 1

        log = [l for l in gw.access_log() if l["path"] == "/api/address"]
        # Challenged, then solved (each event loop writes its own lines: not necessarily in that order).
        assert sorted(l["status"] for l in log) == [200, 403]
        assert "challenge" in next(l for l in log if l["status"] == 403)["policy"]

        # What the browser had: its session cookie (HttpOnly, so only the browser has it) and token.
        cookie = {c["name"]: c for c in browser.get_cookies()}["__Host-tollgate_session"]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        token = browser.execute_async_script("tollgate.token().then(arguments[arguments.length - 1])")
        path = "/api/address?q=10+Downing+Street"
        same_origin = {"Sec-Fetch-Site": "same-origin", "X-Tollgate-Token": token}

        # No cookie: the token belongs to another session.
        r = request(gw.port, "GET", path, headers=same_origin)
        assert r.status == 403 and r.json()["reason"] == "token-invalid"
        # The browser's token, with its cookie, is used up (2 uses: the challenged call and the solved one).
        r = request(gw.port, "GET", path, headers={**same_origin, "Cookie": f"__Host-tollgate_session={cookie['value']}"})
        assert r.status == 403 and r.json()["reason"] == "token-used-up"
        # A fresh token for that session, but called from another site's page.
        fresh = request(gw.port, "GET", "/_tollgate/token", headers={"Cookie": f"__Host-tollgate_session={cookie['value']}"}).json()
        time.sleep(fresh["min_age_ms"] / 1000 + 0.1)
        r = request(gw.port, "GET", path, headers={"Origin": "http://evil.example", "X-Tollgate-Token": fresh["token"],
                                                   "Cookie": f"__Host-tollgate_session={cookie['value']}"})
        assert r.status == 403 and r.json()["type"].endswith(":origin")
        # Same session, same origin, fresh token: still has to do the work.
        r = request(gw.port, "GET", path, headers={**same_origin, "X-Tollgate-Token": fresh["token"],
                                                   "Cookie": f"__Host-tollgate_session={cookie['value']}"})
        assert r.status == 403 and r.json()["reason"] == "challenge-required"
        assert standin.stats()["authorized"] == 1
    finally:
        gw.stop()


def test_page_works_over_https_and_http2_in_a_real_browser(standin, api_key, tmp_path):
    """The demo over TLS: Chromium trusts a CA this test makes (in a throwaway NSS database), ALPN
    picks h2, and the page's calls — token, challenge, lookup — go over HTTP/2 streams."""
    from test_tls import make_ca_and_cert
    certs = make_ca_and_cert(tmp_path)
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-n", "tollgate-test-ca", "-t", "C,,", "-i", str(certs["ca"])],
                   check=True)
    gw = Gateway("", env={"ADDRESS_API_KEY": api_key, "PAGE_TOKEN_KEY": "t" * 32, "CHALLENGE_KEY": "c" * 32})
    config = demo_config(standin.port, gw.port).replace("{{PORT}}", str(gw.port))
    config = config.replace(f'origin: {{ allow: ["http://127.0.0.1:{gw.port}"] }}', f'origin: {{ allow: ["https://localhost:{gw.port}"] }}')
    config += f"\ntls: {{ cert: {certs['cert']}, key: {certs['key']} }}\n"
    gw.config.write_text(config)
    for name in ["signup.html", "signup.js", "signup.css"]:
        (gw.dir / name).write_text((EXAMPLE / name).read_text())
    gw.start()
    driver = start_chromium(home)
    try:
        driver.get(f"https://localhost:{gw.port}/")
        assert driver.execute_script("return performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
        driver.find_element(By.ID, "address").send_keys("10 Downing Street")
        driver.find_element(By.ID, "check").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "result").get_attribute("class") in ("ok", "warn", "error"))
        result = driver.find_element(By.ID, "result")
        assert result.get_attribute("class") == "ok", result.text
        assert "10 DOWNING STREET, GB" in result.text
        protocols = driver.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/address')).map(e => e.nextHopProtocol)")
        assert protocols and set(protocols) == {"h2"}, protocols
        assert standin.stats()["authorized"] == 1
        log = [l for l in gw.access_log() if l["path"] == "/api/address"]
        assert sorted(l["status"] for l in log) == [200, 403]  # challenged, then solved
    finally:
        driver.quit()
        gw.stop()
