"""Helpers for the identity tests: the `tollgate keys|clients` CLI, and configs with `identity`."""
import json
import secrets
import subprocess

from conftest import TOLLGATE


def cli(gw, *args, check=True):
    """Runs `tollgate ARGS --config <gw's config>` with the gateway's environment; returns stdout."""
    p = subprocess.run([str(TOLLGATE), *args, "--config", str(gw.config)], capture_output=True, text=True, env=gw.env,
                       timeout=30)
    if check and p.returncode != 0:
        raise AssertionError(f"tollgate {' '.join(args)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def create_key(gw, *args):
    """A new key as {'id', 'key'} (the CLI's --json output)."""
    return json.loads(cli(gw, "keys", "create", "--json", *args).stdout)


def identity_env(api_key, **more):
    return dict(ADDRESS_API_KEY=api_key, KEY_HASH_SECRET=secrets.token_hex(24), **more)


def orders_config(standin_port, identity_extra="", auth="any_of: [api_key]", route_extra="", more_secrets=""):
    """A gateway with an authenticated orders API: GET /api/users/{user_id}/orders, owned by the caller."""
    return f"""
listen: 127.0.0.1:{{{{PORT}}}}
shutdown_grace: 5s
secrets:
  ADDRESS_API_KEY: env:ADDRESS_API_KEY
  KEY_HASH_SECRET: env:KEY_HASH_SECRET
{more_secrets}
identity:
  key_hash_secret: KEY_HASH_SECRET
  reactivation_help: "Write to keys@example.com to get it reactivated."
{identity_extra}
routes:
  - name: orders
    match: {{ method: GET, path: "/api/users/{{user_id}}/orders" }}
    upstream:
      url: http://127.0.0.1:{standin_port}/v2/validate
      auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }}
    params:
      user_id: {{ in: path, type: string, pattern: "^[A-Za-z0-9_-]+$", max_length: 64 }}
    auth: {{ {auth} }}
{route_extra}
"""


def upstream_header(standin, name):
    for n, v in standin.last()["headers"]:
        if n.lower() == name.lower():
            return v
    return None
