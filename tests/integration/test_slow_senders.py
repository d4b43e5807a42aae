"""Slow senders through the real binary: a head trickled byte by byte is answered 408 and closed
after request_head_timeout (not after the much longer idle timeout); a body slower than
min_body_rate is too; a whole request sent at once, an idle keep-alive connection and a large body
sent at a normal pace are not affected."""
import socket
import time

from conftest import address_config, read_until_closed

SLOW = "idle_timeout: 30s\nrequest_head_timeout: 1s\nmin_body_rate: 1KiB\n"


def json_route(standin_port):
    return address_config(standin_port, root_extra=SLOW, extra_route=f"""
  - name: echo
    match: {{ method: POST, path: /api/echo }}
    upstream: {{ url: http://127.0.0.1:{standin_port}/v2/validate, auth: {{ header: X-Api-Key, secret: ADDRESS_API_KEY }} }}
    max_body: 64KiB
    params:
      q: {{ in: body, type: string, max_length: 60000 }}
""")


def test_a_trickled_head_is_closed_with_408_after_the_head_timeout(gateways, standin, api_key):
    gw = gateways(json_route(standin.port), env={"ADDRESS_API_KEY": api_key})
    s = socket.create_connection(("127.0.0.1", gw.port))
    started = time.monotonic()
    s.sendall(b"GET /api/address?q=abcdef HTTP/1.1\r\nHost: x\r\n")
    s.settimeout(5)
    answer = b""
    try:
        for _ in range(20):
            s.sendall(b"X")
            time.sleep(0.2)
    except OSError:
        pass  # closed on us, as it should be
    answer = read_until_closed(s)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"urn:tollgate:problem:request-timeout" in answer and 0.9 < elapsed < 4
    assert standin.stats()["calls"] == 0


def test_a_body_slower_than_the_minimum_rate_is_closed(gateways, standin, api_key):
    gw = gateways(json_route(standin.port), env={"ADDRESS_API_KEY": api_key})
    body = b'{"q": "' + b"a" * 20000 + b'"}'
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body[:100])
    started = time.monotonic()
    s.settimeout(6)
    try:
        for i in range(100, len(body), 50):  # 50 bytes every 0.1 s: 500 B/s, under 1 KiB/s
            s.sendall(body[i:i + 50])
            time.sleep(0.1)
    except OSError:
        pass
    answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 5
    assert standin.stats()["calls"] == 0


def test_normal_requests_idle_connections_and_paced_bodies_are_served(gateways, standin, api_key):
    gw = gateways(json_route(standin.port), env={"ADDRESS_API_KEY": api_key})
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(b"GET /api/address?q=abcdef HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    time.sleep(2.5)  # idle past the head timeout: a keep-alive connection may wait for its next request
    s.sendall(b"GET /api/address?q=abcdef HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    # 20 KB at 8 KB/s: above the minimum rate, served.
    body = b'{"q": "' + b"a" * 20000 + b'"}'
    s.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n")
    for i in range(0, len(body), 800):
        s.sendall(body[i:i + 800])
        time.sleep(0.1)
    s.settimeout(10)
    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    s.close()
