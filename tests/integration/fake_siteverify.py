"""A fake CAPTCHA siteverify server for tests (a real process on loopback). Accepts the token
`good-token` for the secret given on the command line, is slow for `slow-token`, and logs each call."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

secret, log_path = sys.argv[1], sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
        token = form.get("response", [""])[0]
        with open(log_path, "a") as f:
            f.write(json.dumps({"path": self.path, "secret_ok": form.get("secret", [""])[0] == secret,
                                "token": token, "remoteip": form.get("remoteip", [""])[0]}) + "\n")
        if token == "slow-token":
            time.sleep(3)
        ok = form.get("secret", [""])[0] == secret and token == "good-token"
        body = json.dumps({"success": ok, "error-codes": [] if ok else ["invalid-input-response"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
