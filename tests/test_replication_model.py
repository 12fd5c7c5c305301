"""Prefix consistency: whatever a follower shows is the primary's state after exactly the
first S records, S its applied position, at every moment we look (random operations on
the primary, link resets through the fault proxy meanwhile); and the sequence audit:
several writer metaservers on one MariaDB, followed, never skip or repeat a record.

Hypothesis settings: HYPOTHESIS_PROFILE=ci (or unset) runs a modest number of examples.
"""

from __future__ import annotations

import os
import pathlib
import struct
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import format_url, free_port, fresh_engine_url
from engines import changelog, open_engine
from engines.contract import (CHANGELOG_END, ENGINE_RESERVED_PREFIX, TxnConflict,
                              changelog_key)
from metaserver.client import Client
from metaserver.errors import FsError
from metaserver.replication import POSITION_KEY
from metaserver.service import ServerConfig, start
from metaserver.testing.metaserver_process import ServerProcess, status, wait_for
from metaserver.types import ROOT_INO, FileType

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))   # jepsen/
from jepsen.faultproxy import FaultProxy  # noqa: E402

pytestmark = pytest.mark.timeout(240)
EXAMPLES = {"long": 200}.get(os.environ.get("HYPOTHESIS_PROFILE", ""), 8)
NAMES = [b"a", b"b", b"c", b"d"]
OPERATION = st.one_of(
    st.tuples(st.just("mkdir"), st.sampled_from(NAMES)),
    st.tuples(st.just("create"), st.sampled_from(NAMES)),
    st.tuples(st.just("unlink"), st.sampled_from(NAMES)),
    st.tuples(st.just("rmdir"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("setxattr"), st.sampled_from(NAMES)),
    st.tuples(st.just("reset_link"),),
)


def run(primary, proxy, operation) -> None:
    kind, *names = operation
    kwargs = {"parent": ROOT_INO}
    try:
        if kind == "reset_link":
            proxy.reset()
        elif kind in ("mkdir", "create"):
            primary.runner.call("mknod", os.urandom(8), name=names[0], mode=0o755, uid=0,
                                gid=0, rdev=0, type=FileType.DIRECTORY if kind == "mkdir"
                                else FileType.REGULAR, **kwargs)
        elif kind in ("unlink", "rmdir"):
            primary.runner.call(kind, os.urandom(8), name=names[0], **kwargs)
        elif kind == "rename":
            primary.runner.call("rename", os.urandom(8), name=names[0], new_parent=ROOT_INO,
                                new_name=names[1], flags=0, **kwargs)
        else:
            entry = primary.runner.call("lookup", name=names[0], **kwargs)
            primary.runner.call("setxattr", os.urandom(8), ino=entry.ino, name=b"user.k",
                                value=os.urandom(4), flags=0)
    except FsError:
        pass     # refused operations commit nothing


def observe(engine) -> tuple[int, dict[bytes, bytes]] | None:
    """(applied position, namespace) read in one consistent snapshot of the follower."""
    while True:
        txn = engine.snapshot()
        try:
            position = txn.get(POSITION_KEY)
            data = dict(txn.scan(b"", ENGINE_RESERVED_PREFIX))
            txn.validate()
        except TxnConflict:
            continue
        finally:
            txn.rollback()
        return None if position is None else (struct.unpack(">QQ", position)[1], data)


def replay(engine, upto: int) -> dict[bytes, bytes]:
    """The namespace after change records 1..upto of `engine`, replayed on a model."""
    state: dict[bytes, bytes] = {}
    txn = engine.snapshot()
    try:
        for _, value in txn.scan(changelog_key(1), changelog_key(upto + 1)):
            for key, written in changelog.decode(value).writes:
                if key.startswith(ENGINE_RESERVED_PREFIX):
                    continue
                if written is None:
                    state.pop(key, None)
                else:
                    state[key] = written
    finally:
        txn.rollback()
    return state


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(OPERATION, min_size=5, max_size=60))
def test_follower_shows_only_primary_prefixes(operations):
    primary = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0"))
    proxy = FaultProxy(free_port(), primary.address).start()
    follower = start(ServerConfig(meta_url="memory://", listen="127.0.0.1:0",
                                  follow=proxy.address))
    done = threading.Event()

    def drive():
        try:
            for operation in operations:
                run(primary, proxy, operation)
        finally:
            done.set()
    try:
        thread = threading.Thread(target=drive)
        thread.start()
        seen = []
        while not done.is_set() or follower.node.follower.applied < primary.engine.last_seq():
            observed = observe(follower.engine)
            if observed is not None:
                seen.append(observed)
        thread.join()
        seen.append(observe(follower.engine))
        assert seen[-1][0] == primary.engine.last_seq()
        for position, data in seen:
            assert data == replay(primary.engine, position), f"state at {position}"
    finally:
        follower.stop()
        proxy.stop()
        primary.stop()


def test_sequence_audit_several_writers_on_mariadb(request, tmp_path):
    """Three metaservers write one MariaDB database; a follower of one of them applies
    every record exactly once, in order, and ends equal to the primary."""
    url = fresh_engine_url(request, "mariadb", tmp_path)
    format_url(url)
    writers = [ServerProcess(url).start() for _ in range(3)]
    follower = ServerProcess(f"rocksdb://{tmp_path}/follower", follow=writers[0].address)
    try:
        follower.start()

        def write(index: int, address: str) -> None:
            with Client(address) as c:
                d = c.mkdir(ROOT_INO, f"w{index}")
                for i in range(150):
                    c.create(d.ino, f"f{i}")
        threads = [threading.Thread(target=write, args=(i, w.address))
                   for i, w in enumerate(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        last = status(writers[0].address).last_seq
        wait_for(lambda: status(follower.address).applied_seq == last, what="catch-up")
        follower.stop()
        source = open_engine(url)
        local = open_engine(f"rocksdb://{tmp_path}/follower")
        try:
            txn = source.snapshot()
            seqs = [changelog.decode(v).seq for _, v in
                    txn.scan(changelog_key(1), CHANGELOG_END)]
            txn.rollback()
            assert seqs == list(range(1, last + 1))          # gap-free, in order
            assert observe(local) == (last, replay(source, last))
        finally:
            source.close()
            local.close()
    finally:
        follower.stop()
        for w in writers:
            w.stop()
