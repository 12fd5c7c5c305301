"""The SQL engine on a real 3-node MariaDB Galera cluster (metaserver.testing.galera).

One namespace, one runner per node (as three metaservers would be): commits that lose
Galera's certification to another node's are retried, never EIO, and so are the
background log trim and usage fold; a read through one node shows every commit
acknowledged through another (causal reads), also right after the node was paused; a
node outside the primary component fails calls at once, and a killed node within the
runner's bound and the client's deadline. Skipped, with the reason, where Debian's
galera-4 / mariadb-server / rsync are not installed (scripts/test.sh installs them).
"""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
import uuid
from collections import Counter

import pytest

from engines import open_engine
from engines.contract import CHANGELOG_END, CHANGELOG_PREFIX
from engines.transactional import RETRY
from metaserver.client import Client, RetryPolicy
from metaserver.errors import FsError
from metaserver.runner import RETRIES, Runner
from metaserver.service.config import ServerConfig
from metaserver.service.maintenance import Maintenance
from metaserver.service.server import start

from conftest import format_url

pytestmark = pytest.mark.timeout(180)
ROOT = 1
# What racing operations may legitimately answer; anything else fails the test.
EXPECTED = {errno.ENOENT, errno.EEXIST}


@pytest.fixture
def nodes(galera_cluster):
    """(url of node i, Runner on node i) for each node, over one fresh namespace."""
    url = format_url(galera_cluster.new_database())
    engines = [open_engine(u) for u in galera_cluster.urls(url)]
    try:
        yield [(u, Runner(e)) for u, e in zip(galera_cluster.urls(url), engines)]
    finally:
        for e in engines:
            e.close()
        galera_cluster.drop_database(url)


def conflict_retries() -> float:
    return sum(s.value for m in RETRIES.collect() for s in m.samples
               if s.name.endswith("_total") and s.labels["reason"] == "TxnConflict")


def test_conflicts_across_nodes_are_retried_never_eio(nodes, caplog):
    """Six workers, two per node, create, rename and unlink a few names in two shared
    directories while every node's maintenance folds its usage and trims the log:
    nothing but the expected errnos, and no maintenance error logged."""
    runners = [r for _, r in nodes]
    dirs = [runners[0].call("mkdir", uuid.uuid4().bytes, parent=ROOT, name=n).ino
            for n in (b"a", b"b")]
    names = [b"f%d" % i for i in range(6)]
    outcomes: Counter = Counter()
    unexpected: list[BaseException] = []
    stop = time.monotonic() + 6
    retries_before = conflict_retries()

    def worker(runner: Runner, seed: int) -> None:
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            a, b = rnd.choice(dirs), rnd.choice(dirs)
            op, kwargs = rnd.choice([
                ("create", dict(parent=a, name=rnd.choice(names))),
                ("rename", dict(parent=a, name=rnd.choice(names), new_parent=b,
                                new_name=rnd.choice(names))),
                ("unlink", dict(parent=a, name=rnd.choice(names)))])
            try:
                runner.call(op, uuid.uuid4().bytes, **kwargs)
                outcomes["ok"] += 1
            except FsError as exc:
                outcomes[errno.errorcode[exc.errno]] += 1
                if exc.errno not in EXPECTED:
                    unexpected.append(exc)
            except Exception as exc:     # noqa: BLE001 (what the test looks for)
                unexpected.append(exc)

    def maintenance(runner: Runner) -> None:
        tasks = Maintenance(runner, interval_s=0.05, request_ttl_s=3600, changelog_keep=20)
        while time.monotonic() < stop:
            tasks.run_once()
            time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(r, i)) for i, r in enumerate(runners * 2)]
    threads += [threading.Thread(target=maintenance, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("outcomes", dict(outcomes), "conflict retries", conflict_retries() - retries_before)
    assert not unexpected, f"{len(unexpected)} unexpected errors, e.g. {unexpected[:3]!r}"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert outcomes["ok"] > 50
    assert conflict_retries() > retries_before     # the nodes did conflict


def test_reads_through_a_paused_then_resumed_node_are_causal(galera_cluster, nodes):
    """Each create acknowledged through node 1 is looked up through node 3 at once,
    before, during and after a 3 s SIGSTOP of node 3: never ENOENT."""
    writer, reader = nodes[0][1], nodes[2][1]
    node = galera_cluster.nodes[2]
    stale, acked = [], 0
    pause_at, resume_at, stop = (time.monotonic() + d for d in (1, 4, 9))
    paused = False
    while time.monotonic() < stop:
        now = time.monotonic()
        if not paused and pause_at <= now < resume_at:
            node.pause()
            threading.Timer(resume_at - now, node.resume).start()
            paused = True
        name = uuid.uuid4().hex.encode()
        writer.call("create", uuid.uuid4().bytes, parent=ROOT, name=name)
        acked += 1
        try:
            reader.call("lookup", parent=ROOT, name=name)
        except FsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            stale.append(name)
    print(f"{acked} creates, {len(stale)} stale reads")
    assert acked > 100 and not stale


def test_node_outside_the_primary_component_fails_at_once(galera_cluster, nodes):
    node = galera_cluster.nodes[2]
    runner = nodes[2][1]
    node.isolate(True)
    try:
        deadline = time.monotonic() + 30
        failed = None
        while failed is None or "primary component" not in str(failed):
            # Until the node knows (~5 s): calls wait or get 1205, retried within the bound.
            assert time.monotonic() < deadline, f"node never left the primary: {failed}"
            try:
                runner.call("lookup", parent=ROOT, name=b"x")
            except FsError as exc:
                failed = exc
        began = time.monotonic()
        with pytest.raises(FsError) as failed:
            runner.call("lookup", parent=ROOT, name=b"x")
        assert failed.value.errno == errno.EIO
        assert "primary component" in str(failed.value)
        assert time.monotonic() - began < 1          # no retries on an isolated node
    finally:
        node.isolate(False)
    # Back in the cluster, the same runner works again.
    deadline = time.monotonic() + 60
    while not node.ready():
        assert time.monotonic() < deadline, "node did not rejoin"
        time.sleep(0.2)
    with pytest.raises(FsError) as missing:
        runner.call("lookup", parent=ROOT, name=b"x")
    assert missing.value.errno == errno.ENOENT


def test_killed_node_fails_within_the_bound_and_the_deadline(galera_cluster, nodes):
    """A metaserver whose node was killed answers EIO within the runner's short bound
    for an unavailable engine, within a shorter client deadline, and a client with the
    default retry policy gives up in seconds, not tens of seconds."""
    node = galera_cluster.nodes[2]
    server = start(ServerConfig(meta_url=nodes[2][0], listen="127.0.0.1:0"))
    try:
        with Client(server.address) as fs:
            fs.lookup(ROOT, ".")
        node.kill()
        timings = {}
        for name, client in (("default", Client(server.address)),
                             ("deadline 1s", Client(server.address, timeout=1.0,
                                                    retry=RetryPolicy(attempts=1)))):
            with client:
                began = time.monotonic()
                with pytest.raises(OSError) as failed:
                    client.lookup(ROOT, "x")
                timings[name] = time.monotonic() - began
                assert failed.value.errno == errno.EIO, failed.value
        began = time.monotonic()
        with pytest.raises(FsError):
            nodes[2][1].call("lookup", parent=ROOT, name=b"x")
        timings["runner"] = time.monotonic() - began
        print("time to EIO", timings)
        assert timings["runner"] < RETRY.unavailable_seconds + 1
        assert timings["deadline 1s"] < 1        # answered (EIO) within the deadline
        assert timings["default"] < 16
    finally:
        server.stop()
        node.start()     # the session's cluster is whole again for whoever follows



def test_commits_through_one_node_hand_on_when_it_dies(galera_cluster):
    """?commit_via=: three runners, one per node, all commit through node 1 (no
    certification conflicts between them); when node 1 is killed, node 2 takes the
    commits: calls through nodes 2 and 3 keep succeeding, nothing acknowledged is
    missing, and the change log stays gap-free."""
    url = format_url(galera_cluster.new_database())
    via = ",".join(f"127.0.0.1:{n.port}" for n in galera_cluster.nodes)
    engines = [open_engine(f"{u}?commit_via={via}") for u in galera_cluster.urls(url)]
    runners = [Runner(e) for e in engines]
    made: list[bytes] = []

    def create(runner: Runner, name: bytes) -> None:
        runner.call("create", uuid.uuid4().bytes, parent=d, name=name)
        made.append(name)

    try:
        d = runners[0].call("mkdir", uuid.uuid4().bytes, parent=ROOT, name=b"d").ino
        for i, runner in enumerate(runners):
            create(runner, b"before%d" % i)
        galera_cluster.nodes[0].kill()
        try:
            for i, runner in enumerate(runners[1:], 1):
                for j in range(5):
                    create(runner, b"after%d.%d" % (i, j))
            listed = {e.name for e in runners[2].call("readdir", ino=d, limit=100).entries}
            assert listed >= set(made), set(made) - listed
            seqs = [int.from_bytes(k[len(CHANGELOG_PREFIX):], "big") for k, _ in
                    engines[1].snapshot_scan(CHANGELOG_PREFIX, CHANGELOG_END)[1]]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) > len(made)
        finally:
            galera_cluster.nodes[0].start()
    finally:
        for e in engines:
            e.close()
        galera_cluster.drop_database(url)


@pytest.mark.parametrize("bad", ["commit_via=,", "commit_via=host:port", "commit_via=:3306"])
def test_a_malformed_commit_via_is_refused_with_its_reason(bad):
    from engines import BadEngineUrl
    with pytest.raises(BadEngineUrl, match="commit_via"):
        open_engine(f"mysql+pymysql://u:p@127.0.0.1:1/db?{bad}")
