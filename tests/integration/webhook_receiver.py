"""A webhook receiver for tests: a real process on loopback that appends every POST (headers and
body) to a JSON-lines file. Answers 500 to the first N requests when asked, to exercise retries."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

log_path, fail_first = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
seen = {"n": 0}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen["n"] += 1
        with open(log_path, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers), "body": body.decode()}) + "\n")
        status = 500 if seen["n"] <= fail_first else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
