"""A raw HTTP/2 client for the tests: TLS with ALPN `h2`, frames written and read one by one
(hyperframe, hpack), so a test can send what a browser sends and what an attacker sends. No client
state machine sits in between: a flood is sent as it is written."""
import socket
import ssl
import time

from hpack import Decoder, Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM, REFUSED_STREAM, CANCEL, PROTOCOL_ERROR = 0xB, 0x7, 0x8, 0x1


class Answer:
    def __init__(self):
        self.headers, self.body, self.ended, self.reset = [], b"", False, None

    @property
    def status(self):
        return int(dict(self.headers)[":status"]) if self.headers else None

    def header(self, name):
        return dict(self.headers).get(name)


class H2:
    """One HTTP/2 connection to `port` over TLS, trusting `ca`."""

    def __init__(self, port, ca, host="localhost", timeout=10):
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=host)
        assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.host, self.port = host, port
        self.encoder, self.decoder = Encoder(), Decoder()
        self.buffer = b""
        self.next_id = 1
        self.answers = {}
        self.server_settings = {}
        self.goaway = None
        self.goaways = []
        self.closed = False
        self.initial_window = 65535  # the gateway's SETTINGS_INITIAL_WINDOW_SIZE, for our DATA
        self.send_windows = {0: 65535}  # stream id (0: the connection) -> bytes we may still send
        self.send(PREFACE + SettingsFrame(0).serialize())

    def send(self, data):
        self.sock.sendall(data)

    def frame(self, frame):
        self.send(frame.serialize())

    def reply(self, frame):
        """An acknowledgement or window update: not sent once the gateway has closed the connection."""
        try:
            self.frame(frame)
        except OSError:
            self.closed = True

    def header_block(self, method, path, headers=()):
        fields = [(":method", method), (":scheme", "https"), (":authority", f"{self.host}:{self.port}"), (":path", path)]
        return self.encoder.encode(fields + [(k.lower(), v) for k, v in headers])

    def request(self, method, path, headers=(), body=None, end=True):
        """Opens a stream; returns its id. `end=False` leaves the request open (more DATA to come)."""
        sid = self.next_id
        self.next_id += 2
        h = HeadersFrame(sid, self.header_block(method, path, headers))
        h.flags.add("END_HEADERS")
        if body is None and end:
            h.flags.add("END_STREAM")
        self.frame(h)
        if body is not None:
            self.data(sid, body, end=end)
        self.answers[sid] = Answer()
        return sid

    def data(self, sid, body, end=True):
        d = DataFrame(sid, body if isinstance(body, bytes) else body.encode())
        if end:
            d.flags.add("END_STREAM")
        self.frame(d)

    def send_body(self, sid, body, frame_size=16384, timeout=10):
        """Sends `body` on stream `sid` as a client must: within the gateway's flow-control windows,
        waiting for its WINDOW_UPDATEs. False when they stop coming before the body is sent."""
        sent = 0
        while sent < len(body):
            room = min(self.send_windows[0], self.send_windows.setdefault(sid, self.initial_window), frame_size, len(body) - sent)
            if room <= 0:
                if not self.pump(lambda: min(self.send_windows[0], self.send_windows[sid]) > 0, timeout):
                    return False
                continue
            self.send_windows[0] -= room
            self.send_windows[sid] -= room
            self.data(sid, body[sent:sent + room], end=sent + room == len(body))
            sent += room
        return True

    def _read_frame(self):
        while True:
            if len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9:9 + length]))
                    self.buffer = self.buffer[9 + length:]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                self.closed = True
                return None
            self.buffer += chunk

    def pump(self, until, timeout=10):
        """Reads frames until `until()` holds, the connection closes or `timeout` passes."""
        deadline = time.time() + timeout
        while not until():
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                frame = self._read_frame()
            except (socket.timeout, TimeoutError):
                if time.time() >= deadline:
                    return False
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                self.closed = True
                return until()
            if frame is None:
                return until()
            self.handle(frame)
        return True

    def handle(self, frame):
        if isinstance(frame, SettingsFrame):
            if "ACK" not in frame.flags:
                self.server_settings.update(frame.settings)
                self.initial_window = frame.settings.get(4, self.initial_window)
                self.reply(SettingsFrame(0, flags=["ACK"]))
        elif isinstance(frame, PingFrame):
            if "ACK" not in frame.flags:
                self.reply(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]))
        elif isinstance(frame, GoAwayFrame):
            # The first GOAWAY says why; after a graceful one (NO_ERROR, then a PING), NIO may send
            # a second once our PING answer reaches a connection it already counts as closed.
            self.goaways.append(frame.error_code)
            self.goaway = self.goaways[0]
        elif isinstance(frame, HeadersFrame):
            a = self.answers.setdefault(frame.stream_id, Answer())
            a.headers += [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                          for k, v in self.decoder.decode(frame.data, raw=True)]
            a.ended = a.ended or "END_STREAM" in frame.flags
        elif isinstance(frame, DataFrame):
            a = self.answers.setdefault(frame.stream_id, Answer())
            a.body += frame.data
            a.ended = a.ended or "END_STREAM" in frame.flags
            if frame.flow_controlled_length:
                self.reply(WindowUpdateFrame(0, window_increment=frame.flow_controlled_length))
        elif isinstance(frame, WindowUpdateFrame):
            sid = frame.stream_id
            self.send_windows[sid] = self.send_windows.get(sid, self.initial_window) + frame.window_increment
        elif isinstance(frame, RstStreamFrame):
            self.answers.setdefault(frame.stream_id, Answer()).reset = frame.error_code

    def wait(self, *sids, timeout=10):
        self.pump(lambda: all(self.answers[s].ended or self.answers[s].reset is not None for s in sids), timeout)
        return [self.answers[s] for s in sids]

    def get(self, path, headers=(), timeout=10):
        return self.wait(self.request("GET", path, headers), timeout=timeout)[0]

    def wait_closed(self, timeout=10):
        """True when the gateway ends the connection (GOAWAY and close) within `timeout`."""
        return self.pump(lambda: self.closed, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def h2_tls_config(standin_port, cert_paths, http2="true", root_extra="", extra_route=""):
    from conftest import address_config
    return address_config(standin_port, extra_route=extra_route, root_extra=f"""tls:
  cert: {cert_paths['cert']}
  key: {cert_paths['key']}
  http2: {http2}
{root_extra}""")


__all__ = ["H2", "Answer", "h2_tls_config", "ContinuationFrame", "HeadersFrame", "PingFrame", "RstStreamFrame",
           "SettingsFrame", "DataFrame", "ENHANCE_YOUR_CALM", "REFUSED_STREAM", "CANCEL", "PROTOCOL_ERROR"]
