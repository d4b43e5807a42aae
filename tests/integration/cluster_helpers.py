"""A PostgreSQL server for the cluster tests: the private cluster scripts/test started
(TOLLGATE_TEST_POSTGRES_DIR), or, when pytest runs alone, one started here in a temp dir and
stopped at exit. Each test gets a database of its own."""
import atexit
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import pg_cluster  # noqa: E402

_cluster = None


def cluster():
    global _cluster
    if _cluster is None:
        directory = os.environ.get("TOLLGATE_TEST_POSTGRES_DIR")
        if directory:
            _cluster = pg_cluster.Cluster(directory)
        else:
            _cluster = pg_cluster.Cluster(tempfile.mkdtemp(prefix="tollgate-pg-")).start()
            atexit.register(_cluster.stop)
    return _cluster


def fresh_database():
    """The URL of a new, empty database."""
    return cluster().create_database("it_" + uuid.uuid4().hex[:16])


def ledger_rows(url, where="TRUE"):
    database = url.rsplit("/", 1)[1]
    return int(cluster().psql(f"SELECT COUNT(*) FROM ledger WHERE {where}", database=database))


def scalar(url, sql):
    """One value from the test's database, as text."""
    return cluster().psql(sql, database=url.rsplit("/", 1)[1]).strip()
