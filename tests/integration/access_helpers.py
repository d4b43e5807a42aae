"""Requests from chosen loopback addresses (all of 127.0.0.0/8 reaches the gateway on Linux), so
tests can be several clients at once."""
import time

from conftest import request


def request_from(source, port, method, path, headers=None, body=None, timeout=10.0):
    return request(port, method, path, headers=headers, body=body, timeout=timeout, source=source)


def eventually(check, within=2.0, step=0.05):
    """Retries `check` until it returns a truthy value or `within` seconds pass; returns the last value."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
