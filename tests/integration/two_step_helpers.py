"""Helpers for the two-step sign-up tests: the mail catcher (scripts/mail_catcher.py, aiosmtpd) as a
real process, a config pointed at it, and a visitor with a page session."""
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from access_helpers import eventually
from conftest import ROOT, free_port

KEYS = {"PAGE_TOKEN_KEY": "p" * 32, "VERIFY_KEY": "v" * 32, "HASH_KEY": "h" * 32}
SMTP_PASSWORD = "smtp-pw-" + "q" * 24


class MailCatcher:
    """aiosmtpd behind scripts/mail_catcher.py; `messages()` reads what it caught."""

    def __init__(self, tls=None, auth=None, fail_first=0):
        args = [sys.executable, str(ROOT / "scripts" / "mail_catcher.py"), "--smtp-port", str(free_port()),
                "--http-port", str(free_port()), "--fail-first", str(fail_first)]
        if tls:
            args += ["--tls-cert", str(tls["cert"]), "--tls-key", str(tls["key"])]
        if auth:
            args += ["--auth", auth]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("mail catcher did not start: " + self.proc.stderr.read())
        ports = json.loads(line)
        self.smtp_port, self.http_port = ports["smtp"], ports["http"]

    def _get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            return json.loads(r.read())

    def messages(self):
        return self._get("/messages.json")

    def attempts(self):
        return self._get("/attempts")["attempts"]

    def wait_for(self, count, within=10.0):
        found = eventually(lambda: len(self.messages()) >= count, within=within)
        assert found, f"expected {count} messages, caught {len(self.messages())}"
        return self.messages()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


def two_step_config(standin_port, smtp_port, smtp=None, verification_extra="", send_limits="", lookup_limits="",
                    budgets="", store="store: memory", mail=None):
    """A gateway with the two-step flow: POST /verify sends links, /api/address needs a verified email."""
    smtp = smtp or f"{{ host: 127.0.0.1, port: {smtp_port}, security: none }}"
    mail = mail or f"""mail:
  from: "Sign-up <signup@tollgate.test>"
  timeout: 5s
  retries: 2
  smtp: {smtp}"""
    return f"""
listen: 127.0.0.1:{{{{PORT}}}}
shutdown_grace: 2s
{store}
secrets:
  ADDRESS_API_KEY: env:ADDRESS_API_KEY
  PAGE_TOKEN_KEY: env:PAGE_TOKEN_KEY
  VERIFY_KEY: env:VERIFY_KEY
  HASH_KEY: env:HASH_KEY
  SMTP_PASSWORD: env:SMTP_PASSWORD
  HOOK_SECRET: env:HOOK_SECRET
page_tokens: {{ keys: [PAGE_TOKEN_KEY], min_age: 200ms, max_age: 10m, max_uses: 100 }}
verification:
  keys: [VERIFY_KEY]
  hash_key: HASH_KEY
  link_base: http://127.0.0.1:{{{{PORT}}}}
  redirect: /?verified=1
  refused_domains: [example.com]
{verification_extra}
{mail}
routes:
  - name: send-link
    match: {{ method: POST, path: /verify }}
    send_verification: {{}}
    require: [page_token]
{send_limits}
  - name: address-lookup
    match: {{ method: GET, path: /api/address }}
    upstream:
      url: http://127.0.0.1:{standin_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
      timeout: 2s
    params:
      q: {{ in: query, type: string, min_length: 3, max_length: 100, required: true }}
    require: [page_token, verified_email]
    cost: 0.01 USD
{lookup_limits}
{budgets}
"""


def env(api_key, **more):
    return dict(KEYS, ADDRESS_API_KEY=api_key, SMTP_PASSWORD=SMTP_PASSWORD, HOOK_SECRET="hook-" + "k" * 24, **more)


class Visitor:
    """A browser-like client: a page session cookie and page tokens from the gateway."""

    def __init__(self, gw):
        self.gw = gw
        r = gw.get("/_tollgate/token")
        assert r.status == 200
        self.cookie = r.header("set-cookie").split(";")[0]
        self.token = r.json()["token"]
        time.sleep(0.25)

    def headers(self, **more):
        return {"Cookie": self.cookie, "X-Tollgate-Token": self.token, **more}

    def send(self, email):
        return self.gw.post("/verify", json.dumps({"email": email}),
                            headers=self.headers(**{"Content-Type": "application/json"}))

    def open_link(self, link):
        """What a browser does with the link: GET (from the mail client: no cookie), then the button's POST."""
        parsed = urllib.parse.urlsplit(link)
        page = self.gw.get(parsed.path + "?" + parsed.query)
        token = urllib.parse.parse_qs(parsed.query)["t"][0]
        confirm = self.gw.post(parsed.path, urllib.parse.urlencode({"t": token}),
                               headers={"Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"})
        return page, confirm

    def lookup(self, q="10 Downing Street"):
        return self.gw.get("/api/address?q=" + urllib.parse.quote(q), headers=self.headers())


def link_for(messages, address):
    found = [m for m in messages if address in m["rcpt_to"]]
    assert found, f"no message to {address}"
    return found[-1]["links"][0]
