"""Several gateways on one PostgreSQL store (`store: postgres://…`), as real processes: keys,
revocations, bans and pauses written through any of them (or the CLI) apply on all within a second;
usage, audit and the ledger are shared; a killed gateway's reservations are in the database; bad
store configs and an unreachable database are clear errors that never show the password."""
import json
import re
import signal
import threading
import time

from access_helpers import eventually, request_from
from cluster_helpers import fresh_database, ledger_rows
from conftest import free_port, request
from identity_helpers import cli, create_key, identity_env, orders_config
from test_admin_api import admin, token

ORDERS = "/api/users/alice/orders"


def cluster_config(standin_port, url, extra=""):
    return orders_config(standin_port, route_extra="    cost: 0.01 USD\n") + f"store: {url}\n{extra}"


def three_gateways(gateways, standin, api_key, extra=""):
    url = fresh_database()
    env = identity_env(api_key)
    return url, [gateways(cluster_config(standin.port, url, extra), env=env) for _ in range(3)]


def all_within(gws, check, seconds=1.0):
    """True when `check(gw)` holds on every gateway within `seconds` of now (checked in turn)."""
    began = time.monotonic()
    for gw in gws:
        if not eventually(lambda: check(gw), within=seconds * 2):
            return False
    return time.monotonic() - began < seconds


def test_keys_revocations_and_bans_reach_every_gateway_within_a_second(gateways, standin, api_key):
    url, gws = three_gateways(gateways, standin, api_key)
    k = create_key(gws[0], "--name", "partner", "--owner", "alice")
    ok = lambda gw: gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status == 200
    assert all_within(gws, ok), "a new key was not accepted everywhere within a second"
    cli(gws[1], "keys", "revoke", k["id"])
    assert all_within(gws, lambda gw: gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status == 401), \
        "a revocation did not reach every gateway within a second"
    k2 = create_key(gws[2], "--name", "other", "--owner", "alice")
    assert all_within(gws, lambda gw: gw.get(ORDERS, headers={"X-API-Key": k2["key"]}).status == 200)
    out = cli(gws[0], "bans", "add", "address", "127.0.0.5", "--for", "1h", "--reason", "scraping").stdout
    assert out.startswith("banned: address 127.0.0.5")
    banned = lambda gw: request_from("127.0.0.5", gw.port, "GET", ORDERS, headers={"X-API-Key": k2["key"]}).status == 403
    assert all_within(gws, banned), "a ban did not reach every gateway within a second"
    assert all(request_from("127.0.0.6", gw.port, "GET", ORDERS, headers={"X-API-Key": k2["key"]}).status == 200 for gw in gws)
    ban_id = json.loads(cli(gws[2], "bans", "list", "--json").stdout)[0]["id"]
    cli(gws[1], "bans", "remove", str(ban_id))
    assert all_within(gws, lambda gw: not banned(gw))
    # Usage is one ledger: every gateway's calls, seen from any config.
    calls = standin.stats()["calls"]
    usage = json.loads(cli(gws[1], "usage", "--by", "route", "--json").stdout)
    assert sum(l["calls"] for l in usage["lines"]) == calls
    keys = json.loads(cli(gws[0], "keys", "list", "--json").stdout)
    assert {x["id"]: x["state"] for x in keys} == {k["id"]: "revoked", k2["id"]: "active"}


def test_a_pause_and_an_admin_api_write_apply_on_every_gateway(gateways, standin, api_key):
    url = fresh_database()
    env = identity_env(api_key)
    admins = [free_port() for _ in range(3)]
    gws = [gateways(cluster_config(standin.port, url, f"admin: 127.0.0.1:{p}\n"), env=env) for p in admins]
    for gw, p in zip(gws, admins):
        gw.admin = p
        assert eventually(lambda: _up(p), within=10)
    k = create_key(gws[0], "--name", "partner", "--owner", "alice")
    assert all_within(gws, lambda gw: gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status == 200)
    cli(gws[0], "budgets", "pause", "orders")
    assert all_within(gws, lambda gw: gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status == 503), \
        "a pause did not stop every gateway within a second"
    calls = standin.stats()["calls"]
    assert all(gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status == 503 for gw in gws)
    assert standin.stats()["calls"] == calls
    cli(gws[0], "budgets", "resume", "orders")
    assert all_within(gws, lambda gw: gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status == 200)
    # Each change was announced (NOTIFY) and every gateway heard it: the key, the pause, the resume.
    for p in admins:
        metrics = request(p, "GET", "/metrics").text
        heard = int(re.search(r"^tollgate_store_notifications_total (\d+)", metrics, re.M).group(1))
        assert heard >= 3, metrics
    # A token made with one gateway's CLI works on every admin API; a ban written through the
    # third gateway's API is enforced by the first, and audited once in the shared log.
    tok = token(gws[0], "read,write")
    r = admin(gws[2], "POST", "/v1/bans", tok, {"kind": "address", "value": "127.0.0.7", "reason": "api"})
    assert r.status == 201, r.text
    assert all_within(gws, lambda gw: request_from("127.0.0.7", gw.port, "GET", ORDERS, headers={"X-API-Key": k["key"]}).status == 403)
    audit = admin(gws[1], "GET", "/v1/audit", tok).json()["entries"]
    assert [e["action"] for e in audit].count("bans.add") == 1
    lines = admin(gws[0], "GET", "/v1/usage?by=route", tok).json()["lines"]
    assert sum(l["calls"] for l in lines) == standin.stats()["calls"]
    for gw in gws:
        assert tok not in gw.output() and api_key not in gw.output()


def _up(port):
    try:
        return request(port, "GET", "/livez").status == 200
    except OSError:
        return False


def test_a_killed_gateway_leaves_its_reservations_in_the_database(gateways, standin, api_key):
    url, gws = three_gateways(gateways, standin, api_key)
    k = create_key(gws[0], "--name", "load", "--owner", "alice")
    assert all_within(gws, lambda gw: gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status == 200)
    stop = threading.Event()
    answered = []

    def hammer(gw):
        while not stop.is_set():
            try:
                if request(gw.port, "GET", ORDERS, headers={"X-API-Key": k["key"]}, timeout=2).status == 200:
                    answered.append(gw.port)
            except OSError:
                pass

    threads = [threading.Thread(target=hammer, args=(gw,)) for gw in gws for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    gws[1].stop(sig=signal.SIGKILL)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    for gw in (gws[0], gws[2]):
        gw.stop()
    # Every call the paid API answered had its reservation committed first: none is missing,
    # whichever gateway made it (the killed one included).
    assert ledger_rows(url) >= standin.stats()["calls"] > 0
    assert len(answered) > 0


def test_store_config_errors_and_an_unreachable_database(gateways, standin, api_key, tmp_path):
    env = identity_env(api_key, PG_PASSWORD="pg-secret-" + api_key[-8:])
    for store, expect in [
        ("postgres://tollgate:hunter2@127.0.0.1/db", "must not carry the password"),
        ("postgres://127.0.0.1/db", "needs a user"),
        ("postgres://tollgate@127.0.0.1/", "needs a database name"),
        ("{ url: 'postgres://tollgate@db.example.net/db', tls: disable }", "allowed only to a loopback host"),
        ("{ url: 'postgres://tollgate@127.0.0.1/db', password: NOPE }", "names no entry under secrets"),
    ]:
        gw = gateways(orders_config(standin.port) + f"store: {store}\n", env=env, start=False)
        gw.start(expect_failure=True)
        assert gw.proc.returncode != 0 and expect in gw.output(), (store, gw.output())
        assert "hunter2" not in gw.output()
    # Nothing listens on the port: the gateway stops with where it looked, never the password.
    closed = free_port()
    gw = gateways(orders_config(standin.port, more_secrets="  PG_PASSWORD: env:PG_PASSWORD")
                  + f"store: {{ url: 'postgres://tollgate@127.0.0.1:{closed}/db', password: PG_PASSWORD, query_timeout: 1s }}\n",
                  env=env, start=False)
    gw.start(expect_failure=True)
    out = gw.output()
    assert gw.proc.returncode != 0 and f"postgres://tollgate@127.0.0.1:{closed}/db" in out, out
    assert env["PG_PASSWORD"] not in out


def test_paid_calls_stop_while_the_database_is_down_and_resume_when_it_is_back(gateways, standin, api_key, tmp_path):
    import pg_cluster
    own = pg_cluster.Cluster(tmp_path / "pg").start()  # its own server: this test stops it
    admin_port = free_port()
    try:
        config = orders_config(standin.port, auth="any_of: [api_key]", route_extra="    cost: 0.01 USD\n") + f"""
  - name: status
    match: {{ method: GET, path: /api/status }}
    upstream:
      url: http://127.0.0.1:{standin.port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
store: {{ url: '{own.url()}', query_timeout: 1s }}
admin: 127.0.0.1:{admin_port}
"""
        gw = gateways(config, env=identity_env(api_key))
        assert eventually(lambda: _up(admin_port), within=10)
        failures = lambda: int(re.search(r"^tollgate_store_commit_failures_total (\d+)", request(admin_port, "GET", "/metrics").text,
                                         re.M).group(1))
        assert failures() == 0
        k = create_key(gw, "--name", "partner", "--owner", "alice")
        paid = lambda: gw.get(ORDERS, headers={"X-API-Key": k["key"]}, timeout=5)
        assert eventually(lambda: paid().status == 200)
        own.stop()
        calls = standin.stats()["calls"]
        r = paid()
        assert r.status == 503 and r.json()["type"].endswith("ledger-unavailable"), r.text
        assert r.header("content-type") == "application/problem+json" and r.json()["request_id"]
        assert standin.stats()["calls"] == calls, "a paid call went out without a durable reservation"
        assert gw.get("/api/status").status == 200  # unpriced: no reservation needed
        assert gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status != 401  # keys stay as last read
        assert failures() > 0
        own.start()
        assert eventually(lambda: paid().status == 200, within=10), "the gateway did not recover"
        assert "ledger write failed" in gw.output()
        assert api_key not in gw.output() and k["key"] not in gw.output()
    finally:
        own.stop()


def test_an_address_confirmed_on_one_gateway_is_verified_on_the_others(gateways, standin, api_key):
    from two_step_helpers import MailCatcher, Visitor, env as two_step_env, two_step_config
    url = fresh_database()
    catcher = MailCatcher()
    try:
        config = two_step_config(standin.port, catcher.smtp_port, store=f"store: {url}")
        environment = two_step_env(api_key)
        first, second = gateways(config, env=environment), gateways(config, env=environment)
        visitor = Visitor(first)
        assert visitor.send("jane@mail.tollgate.test").status == 202
        [message] = catcher.wait_for(1)
        _, confirm = visitor.open_link(message["links"][0])
        assert confirm.status == 303
        # The same browser's next call lands on the other gateway (a round-robin balancer).
        visitor.gw = second
        began = time.monotonic()
        r = eventually(lambda: (lambda r: r if r.status == 200 else None)(visitor.lookup()), within=3)
        assert r and r.status == 200, "the other gateway did not learn of the confirmation"
        assert time.monotonic() - began < 1.0
        # The link is used up on every gateway, not only where it was opened.
        _, again = visitor.open_link(message["links"][0].replace(f":{first.port}/", f":{second.port}/"))
        assert again.status == 410
        # Another browser is still refused on both.
        for gw in (first, second):
            stranger = Visitor(gw)
            assert stranger.lookup().status == 403
    finally:
        catcher.stop()


def test_a_reload_on_one_gateway_reloads_every_gateway(gateways, standin, api_key):
    url, gws = three_gateways(gateways, standin, api_key)
    status = f"""
  - name: status
    match: {{ method: GET, path: /api/status }}
    upstream:
      url: http://127.0.0.1:{standin.port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
"""
    assert all(gw.get("/api/status").status == 404 for gw in gws)
    for gw in gws:  # the new config is deployed to every machine, then reloaded on one
        text = cluster_config(standin.port, url).replace("store:", status.lstrip("\n") + "store:", 1)
        gw.config.write_text(text.replace("{{PORT}}", str(gw.port)))
    gws[0].proc.send_signal(signal.SIGHUP)
    assert all_within(gws, lambda gw: gw.get("/api/status").status == 200), "a reload did not reach every gateway within a second"
    assert all("config reload asked by another gateway" in gw.output() for gw in gws[1:])
    assert gws[0].output().count("config reloaded") == 1 and "asked by another gateway" not in gws[0].output()
    assert all(gw.output().count("config reloaded") == 1 for gw in gws[1:]), "a gateway asked to reload must not ask again"


def test_page_token_uses_and_solved_challenges_hold_across_gateways(gateways, standin, api_key):
    from test_pages import KEYS, new_session, page_config, solve
    url = fresh_database()
    config = page_config(standin.port, "    require: [page_token, challenge]\n", root_extra=f"store: {url}")
    config = config.replace("max_uses: 5", "max_uses: 3")
    gws = [gateways(config, env={"ADDRESS_API_KEY": api_key, **KEYS}) for _ in range(3)]
    session, issued = new_session(gws[0])
    time.sleep(0.35)
    headers = {"Cookie": session, "X-Tollgate-Token": issued["token"]}
    path = "/api/address?q=Main+Street"
    asked = gws[0].get(path, headers=headers)  # use 1: the token passes, work is asked
    assert asked.status == 403 and asked.json()["reason"] == "challenge-required", asked.text
    solution = solve(asked.json()["challenge"])
    assert gws[0].get(path, headers={**headers, "X-Tollgate-Solution": solution}).status == 200  # use 2
    time.sleep(0.6)
    # Another gateway has heard of the solution: replaying it there is refused (use 3).
    r = gws[1].get(path, headers={**headers, "X-Tollgate-Solution": solution})
    assert r.status == 403 and r.json()["reason"] == "solution-replayed", r.text
    time.sleep(0.6)
    # A third gateway has heard of all three uses: max_uses holds across the cluster.
    r = gws[2].get(path, headers=headers)
    assert r.status == 403 and r.json()["reason"] == "token-used-up", r.text
    assert standin.stats()["calls"] == 1


def test_a_keys_max_uses_holds_across_gateways(gateways, standin, api_key):
    url, gws = three_gateways(gateways, standin, api_key)
    k = create_key(gws[0], "--name", "trial", "--owner", "alice", "--max-uses", "4")
    time.sleep(0.6)  # the new key reaches every gateway (a use would spend one)
    statuses = []
    for gw in gws + [gws[0]]:  # four uses, one after the other, over three gateways
        statuses.append(gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status)
        time.sleep(0.5)  # one sync round and more
    assert statuses == [200, 200, 200, 200], statuses
    # Each gateway has heard of the others' uses: the fifth is refused wherever it lands.
    assert all(gw.get(ORDERS, headers={"X-API-Key": k["key"]}).status == 401 for gw in gws)
    assert standin.stats()["calls"] == 4
