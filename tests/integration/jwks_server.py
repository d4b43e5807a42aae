"""A JWKS server for tests: a real process on loopback serving the JSON file given as argv[1] at
/jwks.json, re-read on every request (so a test rotates keys by rewriting it). A file holding the
word DOWN makes it answer 503. Each fetch is appended to argv[2], one line per request."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

document, fetch_log = sys.argv[1], sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with open(fetch_log, "a") as f:
            f.write(self.path + "\n")
        with open(document, "rb") as f:
            body = f.read()
        status = 503 if body.strip() == b"DOWN" else 200
        if self.path != "/jwks.json":
            status, body = 404, b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
