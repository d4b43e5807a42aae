"""Reads `detect-secrets scan` JSON on stdin; prints and fails on findings not in .secrets.baseline.

Findings are compared by file and hashed secret (never by line), so a reviewed fixture that moves
within its file is not a new finding."""
import json
import os
import sys

found = json.load(sys.stdin)["results"]
known = set()
if os.path.exists(".secrets.baseline"):
    with open(".secrets.baseline") as f:
        for name, results in json.load(f)["results"].items():
            known.update((name, r["hashed_secret"]) for r in results)
new = [(name, r) for name, results in found.items() for r in results if (name, r["hashed_secret"]) not in known]
for name, r in new:
    print("secret scan: %s:%s: %s" % (name, r["line_number"], r["type"]))
sys.exit(1 if new else 0)
