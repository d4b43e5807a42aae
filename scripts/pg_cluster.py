#!/usr/bin/env python3
"""A private PostgreSQL cluster for the tests and the cluster benchmark.

`initdb` in a directory of its own, started with `pg_ctl` on a free loopback port, with trust
authentication for the superuser `tollgate` on 127.0.0.1 only. When we are root it runs as the
`postgres` user (initdb refuses root). Never a system service: stopping it removes nothing but
its own process.

    pg_cluster.py start DIR     # prints the URL of database `tollgate`
    pg_cluster.py stop DIR
"""
import glob
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

USER = "tollgate"


def find_bin(name):
    """`name` from PATH, else from the newest /usr/lib/postgresql/*/bin (Debian's layout)."""
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit(f"{name} not found: install Debian's postgresql package")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, directory, fsync=False):
        """`fsync=False` (tests) trades durability against a power cut for speed; benchmarks keep it."""
        self.directory = os.path.abspath(directory)
        self.fsync = fsync
        self.data = os.path.join(self.directory, "data")
        self.log = os.path.join(self.directory, "postgres.log")
        self.port_file = os.path.join(self.directory, "port")

    @property
    def port(self):
        with open(self.port_file) as f:
            return int(f.read())

    def url(self, database="tollgate"):
        return f"postgres://{USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, args, check=True, **kw):
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, check=check, capture_output=True, text=True, **kw)

    def start(self):
        """Creates the cluster on first use, then starts it (on a new free port each time it is created)."""
        os.makedirs(self.directory, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            self._let_postgres_through()
        if not os.path.exists(self.data):
            self._run([find_bin("initdb"), "-D", self.data, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"])
            with open(self.port_file, "w") as f:
                f.write(str(free_port()))
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'} "
                   f"-c max_connections=300 -c shared_buffers=64MB")
        result = self._run([find_bin("pg_ctl"), "-D", self.data, "-o", options, "-l", self.log, "-w", "-t", "60", "start"],
                           check=False)
        if result.returncode != 0:
            raise SystemExit(f"postgres did not start: {result.stderr}\n{self.tail()}")
        self.create_database("tollgate")
        return self

    def _let_postgres_through(self):
        """Temp directories are 0700: the postgres user needs to pass through our own ones under
        /tmp to reach its directory (search permission only, nothing is listed)."""
        parent = os.path.dirname(self.directory)
        while parent.startswith("/tmp/") and os.stat(parent).st_uid == os.geteuid():
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IXOTH)
            parent = os.path.dirname(parent)

    def stop(self, mode="fast"):
        self._run([find_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def psql(self, sql, database="postgres"):
        return subprocess.run([find_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database,
                               "-v", "ON_ERROR_STOP=1", "-Atc", sql], check=True, capture_output=True, text=True).stdout

    def create_database(self, name):
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def tail(self):
        try:
            with open(self.log) as f:
                return f.read()[-2000:]
        except OSError:
            return ""


def wait_for_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        raise SystemExit(__doc__)
    cluster = Cluster(sys.argv[2])
    if sys.argv[1] == "start":
        print(cluster.start().url())
    else:
        cluster.stop()
