"""Stateless scale-out: three `metaserver serve` processes over one MariaDB database.

Clients of different servers at once rename directories across each other (a storm
that would leave cycles if two servers' checks raced), create files in one shared
directory, and link and unlink the same inodes. Afterwards fsck finds nothing wrong,
every acknowledged create is there, and the change log is gap-free with no sequence
used twice, although three processes wrote it. A server that just started never
serves a view older than its start.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from engines import changelog, open_engine
from engines.contract import CHANGELOG_END, CHANGELOG_PREFIX
from metaserver.client import Client
from metaserver.fsck import fsck
from metaserver.service.config import ServerConfig
from metaserver.service.server import start

from conftest import format_url, free_port, fresh_engine_url

pytestmark = pytest.mark.timeout(240)
ROOT = 1
SERVERS, WORKERS, OPS_PER_WORKER = 3, 6, 120
# What racing operations may legitimately answer; anything else fails the test.
EXPECTED = {errno.ENOENT, errno.EINVAL, errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR}


class Server:
    """`metaserver serve` as a child of this test; stopped by its PID."""

    def __init__(self, meta_url: str) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        exe = os.path.join(os.path.dirname(sys.executable), "metaserver")
        self.proc = subprocess.Popen([exe, "serve", "--meta-url", meta_url,
                                      "--listen", self.address],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def client(self) -> Client:
        client = Client(self.address, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.statfs()
                return client
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {self.proc.stderr.read()!r}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc.stderr.close()


@pytest.fixture
def servers(request, tmp_path):
    url = fresh_engine_url(request, "mariadb", tmp_path)
    format_url(url)                 # once, before the servers start
    started = [Server(url) for _ in range(SERVERS)]
    try:
        yield url, [s.client() for s in started]
    finally:
        for s in started:
            s.stop()


def test_three_servers_one_database(servers):
    url, clients = servers
    setup = clients[0]
    shared = setup.mkdir(ROOT, "shared").ino
    links = setup.mkdir(ROOT, "links").ino
    dirs = [setup.mkdir(ROOT, f"d{i}").ino for i in range(8)]
    targets = [setup.create(links, f"t{i}").ino for i in range(4)]
    acked_creates: set[bytes] = set()
    tried_creates: set[bytes] = set()
    failures: list[BaseException] = []
    outcomes: list[str] = []
    deadline = time.monotonic() + 150

    def rename_dir(client: Client, rng: random.Random) -> None:
        moving, into = rng.choice(dirs), rng.choice(dirs + [ROOT])
        parent = client.getattr(moving).parent
        client.rename(parent, f"d{dirs.index(moving)}", into, f"d{dirs.index(moving)}")

    def create_shared(client: Client, rng: random.Random, worker: int, i: int) -> None:
        name = f"f-{worker}-{i}".encode()
        tried_creates.add(name)
        client.create(shared, name)
        acked_creates.add(name)

    def link_churn(client: Client, rng: random.Random, worker: int, i: int) -> None:
        where = rng.choice([links] + dirs)
        name = f"l-{worker}-{i}"
        client.link(rng.choice(targets), where, name)
        if rng.random() < 0.6:
            client.unlink(where, name)

    def work(worker: int) -> None:
        client, rng = clients[worker % SERVERS], random.Random(worker)
        try:
            for i in range(OPS_PER_WORKER):
                if time.monotonic() > deadline:
                    return
                kind = rng.random()
                try:
                    if kind < 0.4:
                        rename_dir(client, rng)
                    elif kind < 0.7:
                        create_shared(client, rng, worker, i)
                    else:
                        link_churn(client, rng, worker, i)
                    outcomes.append("ok")
                except OSError as exc:
                    outcomes.append(errno.errorcode[exc.errno])
                    if exc.errno not in EXPECTED:
                        raise
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert outcomes.count("ok") > len(outcomes) // 2     # the races were mostly won
    listed = {e.name for e in setup.readdir(shared)}
    assert acked_creates <= listed <= tried_creates
    for c in clients:
        c.close()

    engine = open_engine(url)
    try:
        report = fsck(engine)
        assert report.ok, str(report)
        assert report.dirs == 1 + 2 + len(dirs)
        _, rows = engine.snapshot_scan(CHANGELOG_PREFIX, CHANGELOG_END)
        seqs = [changelog.decode(value).seq for _, value in rows]
        assert seqs == list(range(1, engine.last_seq() + 1))
        assert len(seqs) > WORKERS * OPS_PER_WORKER // 3
    finally:
        engine.close()


# --- first-request freshness ------------------------------------------------------------

def test_a_fresh_server_never_serves_a_view_older_than_its_start(request, tmp_path):
    """Two servers A and B on one database: B starts, /x is made through A, B's very
    first stat of /x finds it (its start-up reads left no snapshot open in the pool)."""
    url = format_url(fresh_engine_url(request, "mariadb", tmp_path))
    a = start(ServerConfig(meta_url=url, listen="127.0.0.1:0"))
    try:
        for round_ in range(3):
            b = start(ServerConfig(meta_url=url, listen="127.0.0.1:0"))
            try:
                with Client(a.address) as via_a, Client(b.address) as via_b:
                    made = via_a.mkdir(ROOT, f"x{round_}")
                    assert via_b.lookup(ROOT, f"x{round_}").ino == made.ino
            finally:
                b.stop()
    finally:
        a.stop()


def test_the_pool_rolls_back_a_connection_returned_inside_a_transaction(request, tmp_path):
    """A connection handed back with its snapshot still open (a leak) is reset by the
    pool: the next transaction on it sees a commit made after the leak."""
    url = fresh_engine_url(request, "mariadb", tmp_path)
    reader, writer = open_engine(url, create=True), open_engine(url)
    try:
        raw = reader._sa.raw_connection()      # the pool's only connection from now on
        cursor = raw.cursor()
        cursor.execute("SELECT v FROM kv LIMIT 1")     # opens a REPEATABLE READ snapshot
        cursor.close()
        raw.close()                                    # back to the pool, not finished
        with writer.begin() as txn:
            txn.put(b"k", b"v")
            txn.commit(b"put")
        with reader.snapshot() as txn:
            assert txn.get(b"k") == b"v"
    finally:
        reader.close()
        writer.close()
