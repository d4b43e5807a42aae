#!/usr/bin/env python3
"""A local SMTP server that keeps every message it receives, and a web page listing them.

For the two-step sign-up demo and its tests (aiosmtpd from PyPI does the SMTP): a person opens the
page and clicks the verification link; a test reads /messages.json. Optionally STARTTLS (required
before MAIL), AUTH PLAIN/LOGIN with one user, and temporary failures of the first N messages.

    python3 scripts/mail_catcher.py --smtp-port 2525 --http-port 8025 [--tls-cert C --tls-key K]
        [--auth user:password] [--fail-first N]

Prints one JSON line with the ports once both servers listen, then runs until killed.
"""
import argparse
import asyncio
import email
import email.policy
import html
import json
import os
import re
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

MESSAGES = []
LOCK = threading.Lock()
LINK = re.compile(r"https?://[^\s<>\"']+")


class Catcher:
    def __init__(self, fail_first):
        self.fail_left = fail_first
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.fail_left > 0:
            self.fail_left -= 1
            return "451 4.3.0 try again later (mail_catcher --fail-first)"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        rich = message.get_body(preferencelist=("html",))
        text = text.get_content() if text else ""
        record = {
            "id": len(MESSAGES) + 1,
            "received": time.time(),
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_tos),
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "text": text,
            "html": rich.get_content() if rich else None,
            "links": LINK.findall(text),
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "raw": envelope.original_content.decode("utf-8", "replace"),
        }
        with LOCK:
            MESSAGES.append(record)
        return "250 2.0.0 kept"


def authenticator(expected):
    def check(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == expected:
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)
    return check


class Page(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, kind):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            messages = list(MESSAGES)
        if self.path.startswith("/messages.json"):
            return self.send(200, json.dumps(messages), "application/json")
        if self.path == "/attempts":
            return self.send(200, json.dumps({"attempts": CATCHER.attempts}), "application/json")
        items = "".join(
            "<li><b>{}</b> to {} at {}<br>{}</li>".format(
                html.escape(m["subject"]), html.escape(m["to"]), time.strftime("%H:%M:%S", time.localtime(m["received"])),
                " ".join('<a href="{0}">{0}</a>'.format(html.escape(link)) for link in m["links"]))
            for m in reversed(messages))
        self.send(200, "<!doctype html><meta charset=utf-8><title>Caught mail</title><h1>Caught mail</h1>"
                       "<p>Messages the demo's gateway sent. Open a link in the browser that asked for it.</p>"
                       "<ul>{}</ul>".format(items or "<li>none yet</li>"), "text/html; charset=utf-8")

    def do_POST(self):
        if self.path == "/clear":
            with LOCK:
                MESSAGES.clear()
            return self.send(204, "", "text/plain")
        self.send(404, "", "text/plain")


def main():
    global CATCHER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=2525)
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--auth", help="user:password; AUTH required (over TLS)")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the process that started it is gone")
    args = parser.parse_args()
    if args.exit_with_parent:
        parent = os.getppid()

        def watch():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()

    CATCHER = Catcher(args.fail_first)
    options = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        options.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")
        options.update(authenticator=authenticator((user, password)), auth_required=True, auth_require_tls=bool(args.tls_cert))
    controller = Controller(CATCHER, hostname=args.host, port=args.smtp_port, server_hostname="localhost", **options)
    controller.start()
    http = ThreadingHTTPServer((args.host, args.http_port), Page)
    print(json.dumps({"smtp": controller.port, "http": http.server_address[1]}), flush=True)
    try:
        http.serve_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
