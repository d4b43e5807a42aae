"""The two-step sign-up through the real binary: a real SMTP server (aiosmtpd, STARTTLS with a test
CA, AUTH), links bound to the page session and used once, the paid route refused until the link is
opened, limits and budgets per verified address, domain rules and floods, and restarts."""
import json
import sqlite3
import subprocess
import time
import urllib.parse

import pytest

from access_helpers import eventually
from conftest import TOLLGATE, free_port, request, wait_for_port
from test_tls import make_ca_and_cert
from two_step_helpers import SMTP_PASSWORD, MailCatcher, Visitor, env, link_for, two_step_config


@pytest.fixture
def catcher():
    c = MailCatcher()
    yield c
    c.stop()


def test_link_over_starttls_with_auth_unlocks_the_paid_route_once(standin, api_key, gateways, tmp_path):
    tls = make_ca_and_cert(tmp_path)
    catcher = MailCatcher(tls=tls, auth="tollgate:" + SMTP_PASSWORD)
    try:
        smtp = (f"{{ host: localhost, port: {catcher.smtp_port}, security: starttls, ca_file: {tls['ca']}, "
                f"username: tollgate, password: SMTP_PASSWORD }}")
        gw = gateways(two_step_config(standin.port, catcher.smtp_port, smtp=smtp, store="store: sqlite:./t.db"),
                      env=env(api_key))
        visitor = Visitor(gw)
        # Before any link: the paid route is refused with a reason the page can act on.
        r = visitor.lookup()
        assert r.status == 403 and r.json()["reason"] == "verification-required" and r.json()["request_id"]
        assert standin.stats()["authorized"] == 0

        started = time.monotonic()
        r = visitor.send("Jane.Doe@Mail.Tollgate.test")
        assert r.status == 202 and r.json() == {"status": "sent", "expires_in": 1800}
        assert time.monotonic() - started < 1.0            # the page does not wait for the mail server
        [message] = catcher.wait_for(1)
        assert message["tls"] and message["authenticated"]
        assert message["rcpt_to"] == ["Jane.Doe@mail.tollgate.test"] and message["mail_from"] == "signup@tollgate.test"
        assert message["subject"] == "Confirm your email address"
        link = message["links"][0]
        assert link.startswith(f"http://127.0.0.1:{gw.port}/_tollgate/verify/link?t=v1.")

        # Opening the link (GET) only shows the button: a mail scanner fetching it uses nothing up.
        parsed = urllib.parse.urlsplit(link)
        for _ in range(2):
            page = gw.get(parsed.path + "?" + parsed.query)
            assert page.status == 200 and b'id="confirm"' in page.body and page.header("content-type").startswith("text/html")
        # Another browser (another session) cannot use it.
        stranger = Visitor(gw)
        _, refused = stranger.open_link(link)
        assert refused.status == 403 and b"browser that asked for it" in refused.body
        assert stranger.lookup().status == 403
        # The browser that asked: confirmed, redirected, and now the paid call goes through.
        _, confirm = visitor.open_link(link)
        assert confirm.status == 303 and confirm.header("location") == "/?verified=1"
        r = visitor.lookup()
        assert r.status == 200, r.body
        assert standin.stats()["authorized"] == 1
        # Used once: a second confirmation of the same link is refused, even by the same browser.
        _, again = visitor.open_link(link)
        assert again.status == 410 and b"already used" in again.body
        # A forged or truncated link gets a page, not JSON.
        token = urllib.parse.parse_qs(parsed.query)["t"][0]
        forged = gw.post(parsed.path, urllib.parse.urlencode({"t": token[:-2] + "AA"}),
                         headers={"Cookie": visitor.cookie, "Content-Type": "application/x-www-form-urlencoded"})
        assert forged.status == 400 and b"not valid" in forged.body and forged.header("content-type").startswith("text/html")

        # The store holds the address only as a keyed hash (plus the domain).
        gw.stop()
        db = (gw.dir / "t.db").read_bytes() + b"".join(p.read_bytes() for p in gw.dir.glob("t.db-*"))
        assert b"mail.tollgate.test" in db and b"jane" not in db.lower()
        rows = sqlite3.connect(gw.dir / "t.db").execute("SELECT address_hash, domain FROM verification_requests").fetchall()
        assert len(rows) == 1 and rows[0][0].startswith("e-") and rows[0][1] == "mail.tollgate.test"
        # No secret and no address in anything the gateway printed.
        out = gw.output()
        for secret in [SMTP_PASSWORD, api_key, "v" * 32, "h" * 32, "jane.doe", "Jane.Doe"]:
            assert secret not in out
        assert "verification mail sent" in out
    finally:
        catcher.stop()


def test_addresses_are_checked_before_anything_is_sent(standin, api_key, gateways, catcher, tmp_path):
    (tmp_path / "disposable.txt").write_text("# list\nmailinator.com\n\nyopmail.com  # comment\n")
    gw = gateways(two_step_config(standin.port, catcher.smtp_port,
                                  verification_extra=f"  disposable_domains: {tmp_path / 'disposable.txt'}"), env=env(api_key))
    visitor = Visitor(gw)
    cases = {
        "not-an-address": (422, "email-syntax"), "a@b": (422, "email-syntax"), "x@-bad-.test": (422, "email-syntax"),
        "two..dots@tollgate.test": (422, "email-syntax"), '"quoted"@tollgate.test': (422, "email-syntax"),
        "a" * 65 + "@tollgate.test": (422, "email-too-long"), "ünicode@tollgate.test": (422, "email-syntax"),
        "x@example.com": (403, "domain-refused"), "x@mx.example.com": (403, "domain-refused"),
        "x@MAILINATOR.com": (403, "domain-refused"), "x@yopmail.com": (403, "domain-refused"),
    }
    for address, (status, reason) in cases.items():
        r = visitor.send(address)
        assert r.status == status and r.json()["reason"] == reason, (address, r.body)
    r = visitor.gw.post("/verify", "{}", headers=visitor.headers(**{"Content-Type": "application/json"}))
    assert r.status == 422
    # Without a page session there is nothing to bind a link to.
    r = gw.post("/verify", json.dumps({"email": "ok@tollgate.test"}), headers={"Content-Type": "application/json"})
    assert r.status == 403
    time.sleep(0.5)
    assert catcher.messages() == []
    assert visitor.send("ok@tollgate.test").status == 202
    catcher.wait_for(1)


def test_limits_count_the_normalized_address_and_its_domain(standin, api_key, gateways, catcher):
    limits = """    limits:
      - { per: email, rate: 2/h }
      - { per: email_domain, rate: 4/h }"""
    gw = gateways(two_step_config(standin.port, catcher.smtp_port, send_limits=limits), env=env(api_key))
    visitor = Visitor(gw)
    # One Gmail mailbox under three spellings: dots and +tags fold.
    assert visitor.send("Jane.Doe+news@gmail.com").status == 202
    assert visitor.send("janedoe@GMAIL.com").status == 202
    r = visitor.send("j.a.n.e.d.o.e+x@gmail.com")
    assert r.status == 429 and r.json()["limit"] == "email"
    # A different mailbox of the same domain still may, until the domain's own limit.
    assert visitor.send("someone@gmail.com").status == 202
    assert visitor.send("other@gmail.com").status == 202
    r = visitor.send("third@gmail.com")
    assert r.status == 429 and r.json()["limit"] == "email_domain"
    assert visitor.send("third@tollgate.test").status == 202
    assert len(catcher.wait_for(5)) == 5


def test_a_domain_flood_blocks_the_domain_everywhere(standin, api_key, gateways, catcher):
    extra = "  domain_blocks: { requests: 3, within: 1h, block_for: 2h }"
    admin_port = free_port()
    gw = gateways(two_step_config(standin.port, catcher.smtp_port, verification_extra=extra, store="store: sqlite:./t.db")
                  + f"admin: 127.0.0.1:{admin_port}\n", env=env(api_key))
    wait_for_port(admin_port)
    early = Visitor(gw)
    assert early.send("first@flood.test").status == 202
    early.open_link(link_for(catcher.wait_for(1), "first@flood.test"))
    assert early.lookup().status == 200
    bots = Visitor(gw)
    for i in range(2):
        assert bots.send(f"bot{i}@flood.test").status == 202
    r = bots.send("bot3@flood.test")                      # the 4th link within the hour
    assert r.status == 403 and r.json()["reason"] == "domain-blocked"
    assert bots.send("bot4@sub.flood.test").status == 403  # subdomains too
    # The session verified before the flood is refused now as well; other domains are not affected.
    r = early.lookup()
    assert r.status == 403 and r.json()["reason"] == "domain-blocked"
    assert bots.send("someone@tollgate.test").status == 202
    assert standin.stats()["authorized"] == 1
    listed = subprocess.run([str(TOLLGATE), "bans", "list", "--config", str(gw.config), "--json"],
                            capture_output=True, text=True, cwd=gw.dir)
    assert listed.returncode == 0, listed.stderr
    bans = json.loads(listed.stdout)
    bans = bans["bans"] if isinstance(bans, dict) else bans
    [ban] = [b for b in bans if b["kind"] == "domain"]
    assert ban["value"] == "flood.test" and ban["created_by"] == "auto:domain-flood"
    def by_domain():
        run = subprocess.run([str(TOLLGATE), "usage", "--config", str(gw.config), "--by", "domain", "--json"],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return {l["domain"]: l for l in json.loads(run.stdout)["lines"]}
    # Requests are counted with the store's counters (a second behind).
    assert eventually(lambda: by_domain().get("flood.test", {}).get("verification", {}).get("requested") == 3, within=3)
    line = by_domain()["flood.test"]
    assert line["calls"] == 1 and line["verification"]["confirmed"] == 1 and line["verification"]["addresses"] == 3
    assert line["verification"]["blocked_until"] is not None
    # The same through the admin API (what the console shows).
    tok = json.loads(subprocess.run([str(TOLLGATE), "admin-tokens", "create", "--config", str(gw.config), "--name", "ops",
                                     "--scopes", "read,write", "--json"], capture_output=True, text=True).stdout)["token"]
    usage = request(admin_port, "GET", "/v1/usage?by=domain", headers={"Authorization": "Bearer " + tok}).json()
    [api_line] = [l for l in usage["lines"] if l["key"] == "flood.test"]
    assert api_line["verification"]["requested"] == 3 and api_line["verification"]["blocked_until"]
    listed = request(admin_port, "GET", "/v1/bans", headers={"Authorization": "Bearer " + tok}).json()["bans"]
    assert [b["value"] for b in listed if b["kind"] == "domain"] == ["flood.test"]
    assert tok not in gw.output()
    # An operator lifts the block: the domain may ask again.
    removed = subprocess.run([str(TOLLGATE), "bans", "remove", str(ban["id"]), "--config", str(gw.config)],
                             capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    assert eventually(lambda: early.lookup().status == 200, within=3)


def test_budget_per_verified_address(standin, api_key, gateways, catcher):
    budgets = "budgets:\n  - { name: per-address, scope: email, limit: 0.02 USD, period: day }"
    gw = gateways(two_step_config(standin.port, catcher.smtp_port, budgets=budgets), env=env(api_key))
    alice, also_alice, bob = Visitor(gw), Visitor(gw), Visitor(gw)
    for visitor, address in [(alice, "alice@tollgate.test"), (also_alice, "Alice+2@tollgate.test"), (bob, "bob@tollgate.test")]:
        assert visitor.send(address).status == 202
    messages = catcher.wait_for(3)
    for visitor, address in [(alice, "alice@tollgate.test"), (also_alice, "Alice+2@tollgate.test"), (bob, "bob@tollgate.test")]:
        _, confirm = visitor.open_link(link_for(messages, address))
        assert confirm.status == 303
    assert alice.lookup("1 First Street").status == 200
    assert alice.lookup("2 First Street").status == 200
    r = alice.lookup("3 First Street")
    assert r.status == 402 and r.json()["budget"] == "per-address"
    # tollgate.test has no +tag folding: Alice+2 is another address with its own budget; so is bob.
    assert also_alice.lookup("4 First Street").status == 200
    assert bob.lookup("5 First Street").status == 200
    assert standin.stats()["authorized"] == 4


def test_temporary_smtp_failures_are_retried(standin, api_key, gateways):
    catcher = MailCatcher(fail_first=1)
    try:
        gw = gateways(two_step_config(standin.port, catcher.smtp_port), env=env(api_key))
        visitor = Visitor(gw)
        assert visitor.send("retry@tollgate.test").status == 202
        catcher.wait_for(1, within=8)
        assert catcher.attempts() == 2
        assert "verification mail: trying again" in gw.output()
    finally:
        catcher.stop()


def test_starttls_is_required_and_certificates_are_verified(standin, api_key, gateways, tmp_path):
    plain = MailCatcher()
    (tmp_path / "other").mkdir()
    (tmp_path / "tls").mkdir()
    other_ca = make_ca_and_cert(tmp_path / "other")
    tls = make_ca_and_cert(tmp_path / "tls")
    tls_catcher = MailCatcher(tls=tls)
    try:
        # A server without STARTTLS: nothing is sent in clear; the page still got its 202.
        smtp = f"{{ host: localhost, port: {plain.smtp_port}, ca_file: {other_ca['ca']} }}"
        gw = gateways(two_step_config(standin.port, plain.smtp_port, smtp=smtp), env=env(api_key))
        assert Visitor(gw).send("a@tollgate.test").status == 202
        assert eventually(lambda: "verification mail failed" in gw.output(), within=5)
        assert "does not offer STARTTLS" in gw.output()
        # A server whose certificate the configured CA did not sign: refused.
        smtp = f"{{ host: localhost, port: {tls_catcher.smtp_port}, ca_file: {other_ca['ca']} }}"
        gw2 = gateways(two_step_config(standin.port, tls_catcher.smtp_port, smtp=smtp), env=env(api_key))
        assert Visitor(gw2).send("b@tollgate.test").status == 202
        assert eventually(lambda: "verification mail failed" in gw2.output(), within=5)
        time.sleep(0.3)
        assert plain.messages() == [] and tls_catcher.messages() == []
    finally:
        plain.stop()
        tls_catcher.stop()


def test_webhook_transport_hands_the_message_to_the_application(standin, api_key, gateways, tmp_path):
    import hashlib
    import hmac
    import sys
    from pathlib import Path
    log = tmp_path / "hook.jsonl"
    receiver = subprocess.Popen([sys.executable, str(Path(__file__).parent / "webhook_receiver.py"), str(log)],
                                stdout=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stdout.readline())
        mail = f"""mail:
  from: "Sign-up <signup@tollgate.test>"
  webhook: {{ url: "http://127.0.0.1:{port}/mail", secret: HOOK_SECRET }}"""
        gw = gateways(two_step_config(standin.port, 0, mail=mail), env=env(api_key))
        visitor = Visitor(gw)
        assert visitor.send("hook@tollgate.test").status == 202
        assert eventually(lambda: log.exists() and log.read_text().strip(), within=5)
        [entry] = [json.loads(l) for l in log.read_text().splitlines()]
        body = json.loads(entry["body"])
        assert body["type"] == "verification.message" and body["to"] == "hook@tollgate.test"
        signature = dict(p.split("=", 1) for p in entry["headers"]["X-Tollgate-Signature"].split(","))
        t, v1 = signature["t"], signature["v1"]
        expected = hmac.new(("hook-" + "k" * 24).encode(), f"{t}.{entry['body']}".encode(), hashlib.sha256).hexdigest()
        assert hmac.compare_digest(v1, expected)
        _, confirm = visitor.open_link(body["link"])
        assert confirm.status == 303 and visitor.lookup().status == 200
    finally:
        receiver.terminate()


def test_a_restart_keeps_verified_sessions_and_used_links(standin, api_key, gateways, catcher):
    config = two_step_config(standin.port, catcher.smtp_port, store="store: sqlite:./t.db")
    gw = gateways(config, env=env(api_key))
    visitor = Visitor(gw)
    assert visitor.send("keep@tollgate.test").status == 202
    link = link_for(catcher.wait_for(1), "keep@tollgate.test")
    _, confirm = visitor.open_link(link)
    assert confirm.status == 303
    time.sleep(0.3)
    gw.stop()
    gw.start()
    assert visitor.lookup().status == 200
    _, again = visitor.open_link(link)
    assert again.status == 410


def test_verification_config_errors_are_reported(tmp_path):
    (tmp_path / "t.yaml").write_text("""
listen: 127.0.0.1:0
secrets: { K: env:K, PW: env:PW }
verification: { keys: [K], link_base: "https://x.test/path", redirect: "//evil.test" }
mail: { from: "bad\\nfrom", smtp: { host: smtp.example.org, security: none, username: u, password: PW } }
routes:
  - name: send
    match: { method: GET, path: /v }
    send_verification: {}
  - name: paid
    match: { method: GET, path: /p }
    file: t.yaml
    require: [verified_email]
    limits: [ { per: email, rate: 1/s } ]
""")
    r = subprocess.run([str(TOLLGATE), "check", "--config", str(tmp_path / "t.yaml")], capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    for expected in ["must be an http(s) origin without a path", "must be a path on this site", "from",
                     "allowed only to a loopback host", "must match POST"]:
        assert expected in out, (expected, out)
    (tmp_path / "u.yaml").write_text("""
listen: 127.0.0.1:0
secrets: { K: env:K }
verification: { keys: [K], link_base: "https://x.test" }
routes:
  - name: paid
    match: { method: GET, path: /p }
    file: u.yaml
    limits: [ { per: email_domain, rate: 1/s } ]
""")
    r = subprocess.run([str(TOLLGATE), "check", "--config", str(tmp_path / "u.yaml")], capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    for expected in ["needs page_tokens", "needs mail", "needs send_verification or require: [verified_email]"]:
        assert expected in out, (expected, out)


def test_a_reload_keeps_verified_sessions_and_changes_the_message(standin, api_key, gateways, catcher):
    import signal
    config = two_step_config(standin.port, catcher.smtp_port)
    gw = gateways(config, env=env(api_key))
    visitor = Visitor(gw)
    assert visitor.send("reload@tollgate.test").status == 202
    _, confirm = visitor.open_link(link_for(catcher.wait_for(1), "reload@tollgate.test"))
    assert confirm.status == 303
    gw.config.write_text(gw.config.read_text().replace("  refused_domains: [example.com]",
                                                       "  refused_domains: [example.com, refused.test]\n"
                                                       "  message: { subject: After the reload }"))
    gw.proc.send_signal(signal.SIGHUP)
    assert eventually(lambda: visitor.send("x@refused.test").status == 403, within=5)
    assert visitor.lookup().status == 200
    assert visitor.send("second@tollgate.test").status == 202
    [second] = eventually(lambda: [m for m in catcher.messages() if m["rcpt_to"] == ["second@tollgate.test"]], within=5)
    assert second["subject"] == "After the reload"


def test_an_operator_blocks_a_domain_from_the_cli(standin, api_key, gateways, catcher):
    gw = gateways(two_step_config(standin.port, catcher.smtp_port, store="store: sqlite:./t.db"), env=env(api_key))
    visitor = Visitor(gw)
    added = subprocess.run([str(TOLLGATE), "bans", "add", "domain", "Spam.Test", "--for", "1h", "--reason", "abuse",
                            "--config", str(gw.config)], capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    bad = subprocess.run([str(TOLLGATE), "bans", "add", "domain", "not a domain", "--config", str(gw.config)],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "must be a domain name" in bad.stdout + bad.stderr
    r = eventually(lambda: (lambda r: r if r.status == 403 else None)(visitor.send("x@mx.spam.test")), within=3)
    assert r and r.json()["reason"] == "domain-blocked"
    assert visitor.send("x@tollgate.test").status == 202


def test_a_banned_page_session_is_refused_before_routing(standin, api_key, gateways, catcher):
    gw = gateways(two_step_config(standin.port, catcher.smtp_port, store="store: sqlite:./t.db"), env=env(api_key))
    banned, other = Visitor(gw), Visitor(gw)
    value = banned.cookie.split("=", 1)[1]
    added = subprocess.run([str(TOLLGATE), "bans", "add", "session", value, "--for", "1h", "--config", str(gw.config)],
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    r = eventually(lambda: (lambda r: r if r.status == 403 else None)(banned.send("s@tollgate.test")), within=3)
    assert r and r.json()["type"] == "urn:tollgate:problem:banned"
    assert banned.lookup().json()["type"] == "urn:tollgate:problem:banned"
    assert other.send("o@tollgate.test").status == 202
    assert value not in gw.output()
