"""The Jepsen harness's deployments and nemeses against real processes: each deployment
sets up and serves on every server; every nemesis that applies to it visibly takes
effect (a killed server refuses, a paused one times out, a cut link holds what crosses
it, a promoted follower is the primary) and its heal brings every server back; the
final check is clean, and teardown leaves no process running.

The steps of one deployment run in order on one deployment (set up by the first step,
torn down by the last), so a nemesis is also healed from whatever the earlier ones left.
"""

from __future__ import annotations

import errno
import os
import pathlib
import random
import sys
import time

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))   # jepsen/
from jepsen import deploy  # noqa: E402
from jepsen.deploy import DEPLOYMENTS, Deployment  # noqa: E402
from jepsen.faultproxy import FaultProxy  # noqa: E402
from jepsen.nemesis import NEMESES, applicable, skipped  # noqa: E402
from metaserver.client import Client, RetryPolicy  # noqa: E402
from metaserver.testing.metaserver_process import wait_for  # noqa: E402
from metaserver.types import ROOT_INO  # noqa: E402

ONCE = RetryPolicy(attempts=1)
PROBE_TIMEOUT_S = 1.5
# Each deployment with the faults that fit it (those that cannot run here skip, saying why).
STEPS = [(name, step) for name in DEPLOYMENTS
         for step in ["setup", *applicable(name), *skipped(name), "final"]]
_running: dict[str, Deployment] = {}
_names = iter(range(1, 1 << 30))


def _unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def _write(address: str, timeout: float = PROBE_TIMEOUT_S, value: bytes = b"") -> float:
    """Create a file (with an xattr `value`, if given); returns the seconds it took."""
    began = time.monotonic()
    with Client(address, timeout=timeout, retry=ONCE, session_consistency=False) as c:
        ino = c.create(ROOT_INO, _unique("f")).ino
        if value:
            c.setxattr(ino, "user.v", value)
    return time.monotonic() - began


def _fails(address: str) -> BaseException:
    with pytest.raises((OSError, grpc.RpcError)) as info:
        _write(address)
    return info.value


def _all_serve(d: Deployment) -> None:
    for name, address, role in d.servers():
        # Retried as the harness's clients do: a follower's first forward after the
        # primary restarted may find its channel still reconnecting, and a create whose
        # outcome is unknown (EIO) is sent again with its request id once all serve.
        with Client(address, timeout=5, retry=RetryPolicy(attempts=8)) as c:
            request_id, file_name = c.new_request_id(), _unique("f").encode()
            for attempt in range(3):
                try:
                    c.call("create", parent=ROOT_INO, name=file_name, mode=0o644,
                           request_id=request_id)
                    break
                except OSError as exc:
                    if exc.errno != errno.EIO or attempt == 2:
                        raise
                    d.wait_serving()
        with Client(address, timeout=5, retry=ONCE) as c:
            assert c.getattr(ROOT_INO).ino == ROOT_INO


@pytest.fixture
def deployment(request, tmp_path_factory):
    name, step = request.param
    if reason := deploy.unavailable(name):
        pytest.skip(reason)
    if step == "setup":
        d = _running[name] = DEPLOYMENTS[name]()
        d.setup(tmp_path_factory.mktemp(name))
    elif name not in _running:
        pytest.skip(f"{name} was not set up")
    yield _running[name]
    if step == "final":
        _running.pop(name).teardown()


@pytest.fixture(scope="module", autouse=True)
def _teardown_all():
    yield
    for d in _running.values():     # after a failed step
        d.teardown()


@pytest.mark.parametrize("deployment", STEPS, indirect=True,
                         ids=[f"{d}-{s}" for d, s in STEPS])
def test_step(deployment: Deployment, request):
    _, step = request.node.callspec.params["deployment"]
    if step == "setup":
        assert {role for _, _, role in deployment.servers()} <= {"primary", "follower",
                                                                 "server"}
        assert deployment.primary() in {a for _, a, _ in deployment.servers()}
        _all_serve(deployment)
        return
    if step == "final":
        procs = list(deployment.processes().values())
        checked = deployment.final_check()
        assert checked["fsck"]["clean"], checked
        assert checked.get("replication", {}).get("caught_up", True), checked
        deployment.teardown()
        assert not [p for p in procs if p.alive]
        deployment.teardown()       # idempotent
        return
    if step not in applicable(deployment.name):
        pytest.skip(skipped(deployment.name).get(step, f"{step} does not apply to "
                                                       f"{deployment.name}"))
    nemesis = NEMESES[step]()
    started = nemesis.start(deployment, random.Random(f"{deployment.name}-{step}"))
    assert "target" in started
    try:
        EFFECTS[step](deployment, started)
    finally:
        healed = nemesis.heal(deployment)
    _all_serve(deployment)
    if step == "failover":
        assert healed["lost"], healed       # the write to the cut-off old primary
        assert all(epoch == started["at"][0] and seq > started["at"][1]
                   for epoch, seq in healed["lost"])


# --- what each fault visibly does ------------------------------------------------------
def _server_of(d: Deployment, started: dict) -> str:
    """The address whose calls the fault affects."""
    target = started["target"]
    procs = d.metaservers()
    if target in procs:
        return procs[target].address
    if target.startswith("db-"):        # a metaserver's link to its database
        return procs[target[3:]].address
    if target.startswith("galera"):     # the database node under metaserver nN
        return procs["n" + target[len("galera"):]].address
    return d.primary()


def _replication_held(d, started: dict) -> None:
    """A write on the primary does not reach the follower while the link holds."""
    before = d.status(d.follower_names()[0]).applied_seq
    _write(d.primary(), value=os.urandom(60_000))
    time.sleep(1)
    follower = d.status(d.follower_names()[0])
    assert follower.applied_seq == before
    assert d.status(d.primary_name()).last_seq > before


def killed(d: Deployment, started: dict) -> None:
    assert not d.processes()[started["target"]].alive
    _fails(_server_of(d, started))


def paused(d: Deployment, started: dict) -> None:
    assert d.processes()[started["target"]].paused
    error = _fails(_server_of(d, started))
    if isinstance(error, grpc.RpcError):
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        assert error.errno in (errno.ETIMEDOUT, errno.EIO, errno.EAGAIN, errno.EROFS)


def held(d: Deployment, started: dict) -> None:
    if "failover" in d.features:
        _replication_held(d, started)
    else:
        _fails(_server_of(d, started))


def _replicated_in(d, value: bytes = b"") -> float:
    """Seconds from a write on the primary until the follower has applied it."""
    follower = d.follower_names()[0]
    began = time.monotonic()
    _write(d.primary(), value=value)
    last = d.status(d.primary_name()).last_seq
    wait_for(lambda: d.status(follower).applied_seq >= last, 30, what="replication")
    return time.monotonic() - began


def slowed(d: Deployment, started: dict) -> None:
    took = (_replicated_in(d) if "failover" in d.features
            else _write(_server_of(d, started), timeout=10))
    assert took >= started["latency"]


def capped(d: Deployment, started: dict) -> None:
    value = os.urandom(min(started["bytes_per_s"], 60_000))   # about a second's worth
    took = (_replicated_in(d, value) if "failover" in d.features
            else _write(_server_of(d, started), timeout=30, value=value))
    assert took >= 0.5 * len(value) / started["bytes_per_s"]


def reset(d: Deployment, started: dict) -> None:
    proxy: FaultProxy = d.proxies()[started["target"]]
    assert not (proxy.blackhole or proxy.latency)      # one-shot: the link works again
    wait_for(lambda: deploy.answers(_server_of(d, started)), 30, what="reconnect")


def skewed(d: Deployment, started: dict) -> None:
    """A file created on the skewed server carries its clock in mtime."""
    address = d.metaservers()[started["target"]].address
    with Client(address, timeout=10, retry=ONCE) as c:
        mtime = c.create(ROOT_INO, _unique("clock")).attr.mtime_ns / 1e9
    assert abs(mtime - time.time() - started["offset_s"]) < 15


def promoted(d, started: dict) -> None:
    new = d.metaservers()[started["target"]].address
    assert d.primary() == new and started["epoch"] == started["at"][0] + 1
    _write(new, timeout=10)
    old = d.metaservers()[started["old_primary"]].address
    if started["forced"]:
        # The old primary is cut off from everyone but its own clients: it still
        # acknowledges (the loss window the rollback file keeps).
        _write(old, timeout=10)
    else:
        assert started["lost"] == []
        assert _fails(old).errno == errno.EROFS


def partitioned(d: Deployment, started: dict) -> None:
    """The minority node's server refuses writes (once the node knows: ~5 s); the
    majority's servers go on writing."""
    minority = _server_of(d, started)
    deadline = time.monotonic() + 30
    while True:
        try:
            _write(minority, timeout=5)
        except OSError as exc:
            assert exc.errno in (errno.EIO, errno.ETIMEDOUT, errno.EAGAIN), exc
            if "primary component" in str(exc):
                break
        assert time.monotonic() < deadline, "the minority side kept accepting writes"
        time.sleep(0.5)
    for _, address, _ in d.servers():
        if address != minority:
            _write(address, timeout=10)


EFFECTS = {"kill": killed, "kill-engine": killed, "pause": paused, "partition": partitioned,
           "blackhole": held,
           "one-way": held, "latency": slowed, "bandwidth": capped, "reset": reset,
           "clock": skewed, "switchover": promoted, "failover": promoted}
