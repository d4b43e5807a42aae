"""Requests from chosen loopback addresses (all of 127.0.0.0/8 reaches the gateway on Linux), so
tests can be several clients at once."""
import http.client
import time

from conftest import Response


def request_from(source, port, method, path, headers=None, body=None, timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def eventually(check, within=2.0, step=0.05):
    """Retries `check` until it returns a truthy value or `within` seconds pass; returns the last value."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
