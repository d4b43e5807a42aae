"""The two-step sign-up example in a real browser (headless Chromium): the visitor enters an email,
the mail arrives at a real SMTP server (the demo's catcher), opening its link in the same browser
confirms the session, and then the address lookup succeeds. Without the link it is refused, and a
link opened in another browser does nothing."""
import shutil

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from access_helpers import eventually
from conftest import ROOT, Gateway, free_port, request
from test_admin_api import token
from test_browser import browser  # noqa: F401  (the fixture)
from two_step_helpers import MailCatcher, Visitor, env, link_for, two_step_config

EXAMPLE = ROOT / "examples" / "two-step-signup"


def heading(driver):
    """The page's h1 text; None while the page is being replaced (Chrome then reports the node it
    found as no longer in the document, not as a stale element)."""
    try:
        return driver.find_element(By.TAG_NAME, "h1").text
    except WebDriverException as e:
        if "does not belong to the document" in str(e):
            return None
        raise


def example_config(gateway_port, standin_port, smtp_port):
    text = (EXAMPLE / "tollgate.yaml").read_text()
    text = text.replace("listen: 127.0.0.1:8081", "listen: 127.0.0.1:{{PORT}}").replace("admin: 127.0.0.1:9091", "")
    text = text.replace("127.0.0.1:8081", f"127.0.0.1:{gateway_port}").replace("localhost:8081", f"localhost:{gateway_port}")
    text = text.replace("http://127.0.0.1:9101/v2/validate", f"http://127.0.0.1:{standin_port}/v2/validate")
    text = text.replace("port: 2525", f"port: {smtp_port}")
    return text + "\nstore: memory\n"


def result_of(browser, before=""):
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.ID, "result").get_attribute("class") in ("ok", "warn", "error")
        and d.find_element(By.ID, "result").text != before, message=f"the result stayed {before!r}")
    return browser.find_element(By.ID, "result")


def test_two_step_signup_in_a_real_browser(standin, api_key, browser, tmp_path):  # noqa: F811
    catcher = MailCatcher()
    gw = Gateway("", env={"ADDRESS_API_KEY": api_key, "PAGE_TOKEN_KEY": "t" * 32, "CHALLENGE_KEY": "c" * 32,
                          "VERIFY_KEY": "v" * 32, "ADDRESS_HASH_KEY": "h" * 32})
    gw.config.write_text(example_config(gw.port, standin.port, catcher.smtp_port).replace("{{PORT}}", str(gw.port)))
    for name in ["signup.html", "signup.js", "signup.css", "verify-email.txt", "verify-email.html", "disposable-domains.txt"]:
        shutil.copy(EXAMPLE / name, gw.dir / name)
    gw.start()
    try:
        base = f"http://127.0.0.1:{gw.port}"
        browser.get(base + "/")
        # Without a confirmed address, the paid lookup is refused and the page says what to do.
        browser.find_element(By.ID, "address").send_keys("10 Downing Street")
        browser.find_element(By.ID, "check").click()
        result = result_of(browser)
        assert result.get_attribute("class") == "error" and "Confirm your email first" in result.text
        assert standin.stats()["authorized"] == 0

        # Step one: the email. The page gets its answer at once; the message arrives at the SMTP server.
        browser.find_element(By.ID, "email").send_keys("visitor@tollgate.test")
        before = result.text
        browser.find_element(By.ID, "send").click()
        result = result_of(browser, before=before)
        assert result.get_attribute("class") == "ok" and "Check your inbox" in result.text, result.text
        link = link_for(catcher.wait_for(1), "visitor@tollgate.test")

        # The link in the same browser: a confirmation page, a click, back on the page, verified.
        assert link.startswith(base + "/_tollgate/verify/link?t="), link
        browser.get(link)
        browser.find_element(By.ID, "confirm").click()
        WebDriverWait(browser, 10).until(lambda d: "verified=1" in d.current_url, message=f"at {browser.current_url}")
        result = result_of(browser)
        assert "Email confirmed" in result.text
        browser.find_element(By.ID, "address").send_keys("10 Downing Street")
        before = result.text
        browser.find_element(By.ID, "check").click()
        result = result_of(browser, before=before)
        browser.save_screenshot(str(tmp_path / "two-step.png"))
        assert result.get_attribute("class") == "ok", result.text
        assert "10 DOWNING STREET, GB" in result.text
        assert standin.stats()["authorized"] == 1

        # The same link again (e.g. forwarded to someone else's browser): used, and nothing changes.
        browser.delete_all_cookies()
        browser.get(link)
        browser.find_element(By.ID, "confirm").click()
        refusals = ("Open this link in the browser that asked for it", "This link was already used")
        WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
            lambda d: heading(d) in refusals, message="the reused link was not refused")
        browser.get(base + "/")
        browser.find_element(By.ID, "address").send_keys("10 Downing Street")
        browser.find_element(By.ID, "check").click()
        result = result_of(browser)
        assert "Confirm your email first" in result.text
        assert standin.stats()["authorized"] == 1
    finally:
        gw.stop()
        catcher.stop()


def test_the_console_shows_email_domains_and_blocks_one(standin, api_key, gateways, browser):  # noqa: F811
    """The console's Email domains table: links asked per domain (never an address), and its Block
    button bans the domain for the next link request."""
    catcher = MailCatcher()
    try:
        admin_port = free_port()
        gw = gateways(two_step_config(standin.port, catcher.smtp_port, store="store: sqlite:./t.db")
                      + f"admin: 127.0.0.1:{admin_port}\n", env=env(api_key))
        gw.admin = admin_port
        assert eventually(lambda: _up(admin_port), within=10)
        visitor = Visitor(gw)
        for address in ["one@busy.test", "two@busy.test", "three@busy.test", "solo@quiet.test"]:
            assert visitor.send(address).status == 202
        ops = token(gw, "read,write")
        browser.get(f"http://127.0.0.1:{admin_port}/console")
        browser.find_element(By.ID, "token").send_keys(ops)
        browser.find_element(By.ID, "login").click()
        # Requests reach the store with its counters, a second behind; the page polls every 2 s.
        WebDriverWait(browser, 15).until(lambda d: "busy.test" in d.find_element(By.ID, "domains").text)
        # The table is rebuilt at every poll: read it and press its button in one step each.
        rows = browser.execute_script("""return Object.fromEntries([...document.querySelectorAll('#domains tbody tr')]
            .map((r) => [...r.cells].map((c) => c.textContent)).map((c) => [c[0], c.slice(1, 5)]));""")
        assert rows["busy.test"] == ["3", "0", "3", "0"] and rows["quiet.test"] == ["1", "0", "1", "0"]
        assert "one@" not in browser.execute_script("return document.body.textContent")
        browser.execute_script("""document.querySelector('#domains button.ban-domain[data-value="busy.test"]').click();""")
        WebDriverWait(browser, 10).until(lambda d: "busy.test" in d.find_element(By.ID, "bans").text)
        r = visitor.send("four@busy.test")
        assert r.status == 403 and r.json()["reason"] == "domain-blocked"
        assert visitor.send("again@quiet.test").status == 202
        audit = request(admin_port, "GET", "/v1/audit", headers={"Authorization": "Bearer " + ops}).json()["entries"]
        assert audit[0]["action"] == "bans.add" and audit[0]["target"] == "domain busy.test"
    finally:
        catcher.stop()


def _up(port):
    try:
        return request(port, "GET", "/livez").status == 200
    except OSError:
        return False
