"""Shadow mode through the real binary: every policy and stage can be shadowed — it notes what it
would have refused (in the access log and `tollgate usage`) and lets the request through."""
import json
import subprocess
import time

from conftest import TOLLGATE, address_config, request
from test_pages import CAPTCHA_SECRET, KEYS, captcha_config, fake_siteverify, page_config


def note_of(gw, path_prefix="/api/address", responses=None):
    """The access log's notes for `path_prefix`; with `responses`, in their order (each event loop
    writes its own lines, so lines of different connections may be out of order)."""
    lines = [l for l in gw.access_log() if l["path"].startswith(path_prefix)]
    if responses is not None:
        by_id = {l["request_id"]: l for l in lines}
        lines = [by_id[r.header("x-request-id")] for r in responses]
    return [l.get("note") or "" for l in lines]


def usage_by_reason(gw):
    out = subprocess.run([str(TOLLGATE), "usage", "--by", "reason", "--json", "--config", str(gw.config)],
                         capture_output=True, text=True, env=gw.env)
    assert out.returncode == 0, out.stderr
    return {l["reason"]: l["refusals"] for l in json.loads(out.stdout)["lines"]}


def route_config(port, route_extra, root_extra=""):
    return address_config(port, root_extra=root_extra).replace(
        "    response:\n      fields: [formatted, postcode, valid]",
        "    response:\n      fields: [formatted, postcode, valid]\n" + route_extra)


def test_rate_limit_in_shadow_counts_but_never_refuses(gateways, standin, api_key):
    gw = gateways(route_config(standin.port, "    limits:\n      - { per: ip, rate: 2/min }\n    shadow: [rate_limit]\n"),
                  env={"ADDRESS_API_KEY": api_key})
    responses = [gw.get("/api/address?q=Main+Street") for _ in range(4)]
    assert [r.status for r in responses] == [200] * 4
    assert [r.header("ratelimit").split(";")[1] for r in responses] == ["r=1", "r=0", "r=0", "r=0"]
    assert standin.stats()["calls"] == 4
    time.sleep(1.2)
    assert usage_by_reason(gw) == {"shadow:rate_limit": 2}
    gw.stop()
    notes = note_of(gw, responses=responses)
    assert notes[:2] == ["", ""] and all("shadow rate_limit:rate-limited" in n for n in notes[2:])


def test_validation_in_shadow_sends_only_valid_parameters(gateways, standin, api_key):
    gw = gateways(route_config(standin.port, "    shadow: [validation]\n"), env={"ADDRESS_API_KEY": api_key})
    r = gw.get("/api/address?q=Main+Street&country=XX&debug=1")
    assert r.status == 200, r.text
    # The invalid country and the unknown debug never reach the upstream; the default fills in.
    assert standin.last()["target"] == "/v2/validate?q=Main%20Street&country=US&format=json"
    gw.stop()
    assert "shadow validation:invalid-parameters" in note_of(gw)[0]


def test_budget_in_shadow_reserves_past_the_cap_and_notes_it(gateways, standin, api_key):
    config = route_config(standin.port, "    cost: 0.01 USD\n    shadow: [budget]\n",
                          "budgets:\n  - { name: daily, limit: 0.02 USD, period: day }")
    gw = gateways(config, env={"ADDRESS_API_KEY": api_key})
    assert [gw.get("/api/address?q=Main+Street").status for _ in range(4)] == [200] * 4
    assert standin.stats()["calls"] == 4
    out = subprocess.run([str(TOLLGATE), "budgets", "--json", "--config", str(gw.config)], capture_output=True, text=True, env=gw.env)
    assert json.loads(out.stdout)["budgets"][0]["used"] == "0.04 USD"  # spend is counted, past the cap
    time.sleep(1.2)
    assert usage_by_reason(gw) == {"shadow:budget": 2}
    # The kill switch is an order, not a policy: shadow mode does not override it.
    subprocess.run([str(TOLLGATE), "budgets", "pause", "all", "--config", str(gw.config)], check=True, env=gw.env)
    time.sleep(1.0)
    assert gw.get("/api/address?q=Main+Street").status == 503
    gw.stop()
    assert sum("shadow budget:budget-exhausted" in n for n in note_of(gw)) == 2


def test_cors_in_shadow_grants_what_the_rules_would_refuse(gateways, standin, api_key):
    route = ('    cors: { origins: ["https://partner.example"], methods: [GET], headers: [] }\n'
             '    shadow: [cors]\n')
    gw = gateways(route_config(standin.port, route), env={"ADDRESS_API_KEY": api_key})
    pre = request(gw.port, "OPTIONS", "/api/address", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-custom"})
    assert pre.status == 204
    assert pre.header("access-control-allow-origin") == "https://evil.example"
    assert pre.header("access-control-allow-headers") == "x-custom"
    r = gw.get("/api/address?q=Main+Street", headers={"Origin": "https://evil.example"})
    assert r.status == 200 and r.header("access-control-allow-origin") == "https://evil.example"
    listed = gw.get("/api/address?q=Main+Street", headers={"Origin": "https://partner.example"})
    assert listed.header("access-control-allow-origin") == "https://partner.example"
    time.sleep(1.2)
    assert usage_by_reason(gw) == {"shadow:cors": 2}
    gw.stop()
    notes = note_of(gw)
    assert sum("shadow cors:cors" in n for n in notes) == 2


def test_challenge_in_shadow_lets_unsolved_requests_through(gateways, standin, api_key):
    route = "    require: [challenge]\n    shadow: [challenge]\n"
    gw = gateways(page_config(standin.port, route), env={"ADDRESS_API_KEY": api_key, **KEYS})
    answers = [gw.get("/api/address?q=Main+Street"),
               gw.get("/api/address?q=Main+Street", headers={"X-Tollgate-Solution": "bm90LWEtc29sdXRpb24="})]
    assert [r.status for r in answers] == [200, 200]
    assert standin.stats()["calls"] == 2
    gw.stop()
    notes = note_of(gw, responses=answers)
    assert "shadow challenge:challenge:challenge-required" in notes[0]
    assert "challenge:challenge" in notes[1]


def test_captcha_in_shadow_notes_missing_and_failed_tokens(gateways, standin, api_key, tmp_path):
    log = tmp_path / "siteverify.jsonl"
    with fake_siteverify(log) as port:
        gw = gateways(captcha_config(standin.port, port, "    require: [captcha]\n    shadow: [captcha]\n"),
                      env={"ADDRESS_API_KEY": api_key, "CAPTCHA_SECRET": CAPTCHA_SECRET, **KEYS})
        answers = [gw.get("/api/address?q=Main+Street"),
                   gw.get("/api/address?q=Main+Street", headers={"X-Tollgate-Captcha": "forged"})]
        assert [r.status for r in answers] == [200, 200]
        assert standin.stats()["calls"] == 2
        assert [json.loads(l)["token"] for l in log.read_text().splitlines()] == ["forged"]  # the check was still made
        gw.stop()
        notes = note_of(gw, responses=answers)
        assert "shadow captcha:captcha:captcha-required" in notes[0]
        assert "captcha:captcha" in notes[1]
        assert CAPTCHA_SECRET not in gw.output()


def test_shadow_of_a_stage_the_route_lacks_is_a_config_error(gateways, standin, api_key):
    gw = gateways(route_config(standin.port, "    shadow: [cors, budget]\n"), env={"ADDRESS_API_KEY": api_key}, start=False)
    out = subprocess.run([str(TOLLGATE), "check", "--config", str(gw.config)], capture_output=True, text=True, env=gw.env)
    assert out.returncode == 1
    assert "cors is shadowed but the route has no cors" in out.stderr
    assert "budget is shadowed but the route has no cost" in out.stderr
