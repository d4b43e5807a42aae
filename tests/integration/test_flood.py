"""Bounds on what one client can hold: connections per client and in all (refused at accept, before
a byte is read), and a connection refused too often in a row is closed."""
import socket
import time

from conftest import address_config, free_port, read_until_closed, request


BAD = b"GET /api/address?q=ab HTTP/1.1\r\nHost: x\r\n\r\n"  # too short: 422
GOOD = b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\n\r\n"


def connect_from(source, port):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.settimeout(3)
    return s


def answered(s):
    """Sends one request on `s`; the status, or None when the gateway closed the connection."""
    try:
        s.sendall(b"GET /api/address?q=Main+Street HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return None
    return int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else None


def metrics(port):
    text = request(port, "GET", "/metrics").text
    return dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))


def test_connections_are_capped_per_client_and_in_all(gateways, standin, api_key):
    admin = free_port()
    gw = gateways(address_config(standin.port, root_extra=f"max_connections_per_client: 3\nmax_connections: 5\nadmin: 127.0.0.1:{admin}"),
                  env={"ADDRESS_API_KEY": api_key})
    held = [connect_from("127.0.0.2", gw.port) for _ in range(3)]
    assert [answered(s) for s in held] == [200, 200, 200]
    extra = connect_from("127.0.0.2", gw.port)
    assert answered(extra) is None                     # a fourth from the same client: closed at accept
    other = [connect_from("127.0.0.3", gw.port) for _ in range(2)]
    assert [answered(s) for s in other] == [200, 200]  # another client is not affected...
    sixth = connect_from("127.0.0.4", gw.port)
    assert answered(sixth) is None                     # ...until the global cap (5) is reached
    held[0].close()
    time.sleep(0.3)
    again = connect_from("127.0.0.2", gw.port)
    assert answered(again) == 200                      # a closed connection frees its place
    m = metrics(admin)
    assert m['tollgate_connections_refused_total{reason="per_client"}'] == "1"
    assert m['tollgate_connections_refused_total{reason="global"}'] == "1"
    for s in held[1:] + other + [extra, sixth, again]:
        s.close()
    assert standin.stats()["calls"] == 6


def test_a_connection_refused_too_often_in_a_row_is_closed(gateways, standin, api_key):
    admin = free_port()
    gw = gateways(address_config(standin.port, root_extra=f"close_after_refusals: 3\nadmin: 127.0.0.1:{admin}"),
                  env={"ADDRESS_API_KEY": api_key})
    s = connect_from("127.0.0.2", gw.port)
    s.sendall(BAD + BAD + GOOD + BAD + BAD)  # a success in between resets the count
    time.sleep(0.5)
    s.sendall(BAD)
    data = read_until_closed(s)
    statuses = [int(data[i + 9:i + 12]) for i in range(len(data)) if data.startswith(b"HTTP/1.1 ", i)]
    assert statuses == [422, 422, 200, 422, 422, 422]
    assert data.rfind(b"Connection: close") > data.rfind(b"HTTP/1.1 422")  # the third refusal in a row closes
    assert metrics(admin)["tollgate_connections_closed_after_refusals_total"] == "1"


def statuses_with_times(s, count):
    """Reads `count` responses from `s`: each one's status and the seconds since the call."""
    start, data, seen = time.monotonic(), b"", []
    while len(seen) < count:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        while len(seen) < count and data.count(b"HTTP/1.1 ") > len(seen):
            seen.append(time.monotonic() - start)
    statuses = [int(data[i + 9:i + 12]) for i in range(len(data)) if data.startswith(b"HTTP/1.1 ", i)]
    return list(zip(statuses, seen))


def test_a_run_of_refusals_is_answered_slowly_and_a_success_ends_it(gateways, standin, api_key):
    admin = free_port()
    gw = gateways(address_config(standin.port, root_extra=f"delay_after_refusals: 3\nrefusal_delay: 400ms\nadmin: 127.0.0.1:{admin}"),
                  env={"ADDRESS_API_KEY": api_key})
    s = connect_from("127.0.0.2", gw.port)
    s.sendall(BAD * 5 + GOOD + BAD)
    answers = statuses_with_times(s, 7)
    assert [status for status, _ in answers] == [422, 422, 422, 422, 422, 200, 422]
    times = [t for _, t in answers]
    assert times[2] < 0.3                          # the first three refusals at once
    assert times[3] >= 0.38 and times[4] - times[3] >= 0.38  # the fourth and fifth each after the delay
    assert times[6] - times[5] < 0.3               # the success ended the run
    assert metrics(admin)["tollgate_refusals_delayed_total"] == "2"
    # Another client on its own connection is answered at once meanwhile.
    s.sendall(BAD * 5)
    other = connect_from("127.0.0.3", gw.port)
    started = time.monotonic()
    assert answered(other) == 200 and time.monotonic() - started < 0.3
    s.close()
    other.close()


def test_a_proxy_connection_is_never_slowed_down(gateways, standin, api_key):
    gw = gateways(address_config(standin.port, root_extra="delay_after_refusals: 1\nrefusal_delay: 1s\ntrusted_proxies: [127.0.0.5/32]"),
                  env={"ADDRESS_API_KEY": api_key})
    s = connect_from("127.0.0.5", gw.port)
    bad = b"GET /api/address?q=ab HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n"
    s.sendall(bad * 4)
    answers = statuses_with_times(s, 4)
    assert [status for status, _ in answers] == [422] * 4
    assert answers[-1][1] < 0.5
    s.close()


def test_a_connection_over_the_client_cap_is_held_then_closed(gateways, standin, api_key):
    gw = gateways(address_config(standin.port, root_extra="max_connections_per_client: 1\nrefusal_delay: 600ms"),
                  env={"ADDRESS_API_KEY": api_key})
    first = connect_from("127.0.0.2", gw.port)
    assert answered(first) == 200
    extra = connect_from("127.0.0.2", gw.port)
    started = time.monotonic()
    assert answered(extra) is None                   # never answered...
    assert time.monotonic() - started >= 0.5         # ...and closed only after the delay
    first.close()
