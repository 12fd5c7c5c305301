"""Shared fixtures: engines by name, an in-process server and a client, free ports.

Engines: memory, RocksDB and SQLite always; MariaDB on a private server started once
per session (or METASERVER_TEST_MYSQL_URL), which must work in CI; PostgreSQL on a
private server when its binaries are installed; TiKV when METASERVER_TEST_TIKV_PD
names a PD endpoint. Networked engines get a fresh database per test.
"""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from engines import open_engine
from engines.memory import MemoryEngine
from engines.rocksdb import RocksEngine
from engines.sql import SqlEngine
from metaserver.client import Client
from metaserver.runner import format_namespace
from metaserver.service.config import ServerConfig
from metaserver.service.server import start
from metaserver.testing import free_port  # noqa: F401  (tests import it from here)

ENGINE_NAMES = ["memory", "rocksdb", "sqlite", "mariadb", "postgres", "tikv"]
SERVER_ENGINES = {"mariadb", "postgres"}


def engine_url(name: str, tmp_path) -> str:
    """URL of an engine that lives in tmp_path (no server needed)."""
    return {"memory": "memory://", "rocksdb": f"rocksdb://{tmp_path}/db",
            "sqlite": f"sqlite:///{tmp_path}/kv.sqlite"}[name]


def fresh_engine_url(request, name: str, tmp_path) -> str:
    """URL of an empty store of any engine; a server's database is dropped after the test."""
    if name in SERVER_ENGINES:
        server = request.getfixturevalue(f"{name}_server")
        url = server.new_database()
        request.addfinalizer(lambda: server.drop_database(url))
        return url
    if name == "tikv":
        pd = os.environ.get("METASERVER_TEST_TIKV_PD")
        if not pd:
            pytest.skip("TiKV: METASERVER_TEST_TIKV_PD is not set (no TiKV/PD server here)")
        return f"tikv://{pd}/metaserver-test-{uuid.uuid4().hex}"
    return engine_url(name, tmp_path)


def formatted(engine):
    """`engine` with a new, empty namespace in it, as `metaserver format` leaves it."""
    format_namespace(engine)
    return engine


def format_url(url: str) -> str:
    """Format a new namespace at `url` (created if missing), as `metaserver format`
    does before the first `metaserver serve`; returns the URL."""
    engine = open_engine(url, create=True)
    try:
        format_namespace(engine)
    finally:
        engine.close()
    return url


def assert_no_open_transactions(engine) -> None:
    """A transaction left open is a leak (OCC history, a pooled connection)."""
    assert engine.active_transactions() == 0, \
        f"{engine.active_transactions()} transaction(s) left open on {engine.url}"


@pytest.fixture(autouse=True)
def no_engine_closed_with_open_transactions(monkeypatch):
    """Every engine a test closes (directly, or by stopping a server) must have no
    transaction left open: one that is never finished is a leak."""
    leaks: list[str] = []
    for cls in (MemoryEngine, RocksEngine, SqlEngine):
        def checked_close(self, _close=cls.close):
            if self.active_transactions():
                leaks.append(f"{self.url}: {self.active_transactions()} open")
            _close(self)
        monkeypatch.setattr(cls, "close", checked_close)
    yield
    assert not leaks, f"engines closed with transactions still open: {leaks}"


@pytest.fixture(params=ENGINE_NAMES)
def engine(request, tmp_path):
    eng = open_engine(fresh_engine_url(request, request.param, tmp_path), create=True)
    yield eng
    try:
        assert_no_open_transactions(eng)
    finally:
        eng.close()


@pytest.fixture(scope="session")
def mariadb_server():
    """A private MariaDB for the session, or the server METASERVER_TEST_MYSQL_URL names.
    Missing binaries skip its tests outside CI (scripts/test.sh installs them); in CI,
    and whenever the server fails to start, the tests fail."""
    from metaserver.testing.mariadb import MariaDB
    url = os.environ.get("METASERVER_TEST_MYSQL_URL")
    if not url and not shutil.which("mariadbd", path=os.environ.get("PATH", "") + ":/usr/sbin") \
            and not os.environ.get("CI"):
        pytest.skip("MariaDB: mariadbd is not installed (scripts/test.sh installs mariadb-server)")
    server = MariaDB(url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL for the session, when its binaries are installed."""
    from metaserver.testing.databases import server_binary
    from metaserver.testing.postgres import PostgreSQL
    try:
        server_binary("postgres")
    except FileNotFoundError:
        pytest.skip("PostgreSQL: no postgres binary on this machine")
    server = PostgreSQL()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server():
    """A real gRPC server on the in-memory engine, shared by one test module."""
    srv = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with Client(server.address) as c:
        yield c


@pytest.fixture(scope="session")
def galera_cluster():
    """A private 3-node MariaDB Galera cluster on loopback for the session. Skipped,
    with the reason, where its packages are missing (scripts/test.sh installs them)."""
    from metaserver.testing.galera import GaleraCluster
    missing = GaleraCluster.missing()
    if missing:
        pytest.skip(f"Galera: {missing}")
    with GaleraCluster() as cluster:
        yield cluster
