"""The DEPLOYMENT seam: a set of metaservers (and engine nodes) on loopback that a run's
clients call and its nemeses fault.

Every deployment has `name`; `setup(workdir)` starts everything and formats the
namespace; `teardown()` stops all it started (idempotent, also after a failed setup);
`servers()` lists (node name, address, role) for clients; `primary()` is the current
primary's address; `processes()` and `proxies()` are what nemeses fault; `heal()`
undoes every fault (clear proxies, resume paused, restart dead processes) and waits
until every server answers; `final_check()` runs fsck on the engine (and, with
followers, checks they reached the primary's last sequence).

  rocksdb   one metaserver on durable RocksDB                      role "server"
  mariadb   three stateless metaservers over one private MariaDB,
            each through its own FaultProxy (metaserver <-> database link)  "server"
  follower  a RocksDB primary and a RocksDB follower that follows it through a
            FaultProxy; writes go to the primary or are forwarded by the follower;
            promote() / rejoin() swap the roles                    "primary", "follower",
                                                                   "deposed" (a former
            primary between a promote and its rejoin: clients may still reach it)
  galera    a 3-node MariaDB Galera cluster, one metaserver per node, each through
            its own FaultProxy (metaserver.testing.galera)           "server"
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc

from jepsen.db import EngineProcess, MetaserverProcess, Process
from jepsen.faultproxy import FaultProxy
from metaserver.client import Client, RetryPolicy
from metaserver.testing import free_port
from metaserver.testing.mariadb import MariaDB
from metaserver.testing.metaserver_process import (ServerProcess, format_store, status,
                                                   wait_for)
from metaserver.types import ROOT_INO
from metaserver.v1 import replication_pb2 as rpb
from metaserver.v1 import replication_pb2_grpc

METACTL = os.path.join(os.path.dirname(sys.executable), "metactl")
SERVE_TIMEOUT_S = 60          # a restarted server (or one behind a restarted engine)
CATCH_UP_TIMEOUT_S = 30
_PROBE = RetryPolicy(attempts=1)


class Deployment:
    """What every deployment shares: its processes and proxies, teardown, heal and the
    fsck of the final check. Subclasses start things in `_start()`."""

    name = ""
    # What nemeses can do here: "links" (proxies()), "engine" (engine nodes apart from
    # the metaservers), "failover" (promote() / rejoin()).
    features: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.workdir: Path | None = None
        self._stack = contextlib.ExitStack()
        self._metaservers: dict[str, MetaserverProcess] = {}
        self._engines: dict[str, EngineProcess] = {}

    # --- lifecycle ----------------------------------------------------------------------
    def setup(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.teardown()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Stop everything started, newest first; safe to call again."""
        for proc in self.processes().values():
            proc.resume()        # a paused process cannot act on SIGTERM
        self._stack.close()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    # --- what clients and nemeses see ---------------------------------------------------
    def servers(self) -> list[tuple[str, str, str]]:
        """(node name, address, role) of every metaserver clients may call."""
        return [(name, proc.address, "server") for name, proc in self._metaservers.items()]

    def primary(self) -> str:
        return next(address for _, address, role in self.servers()
                    if role in ("primary", "server"))

    def processes(self) -> dict[str, Process]:
        """Every faultable process by name: engine nodes, then metaservers."""
        return {**self._engines, **self._metaservers}

    def metaservers(self) -> dict[str, MetaserverProcess]:
        return dict(self._metaservers)

    def engines(self) -> dict[str, EngineProcess]:
        return dict(self._engines)

    def proxies(self) -> dict[str, FaultProxy]:
        """Link-fault proxies by name (none here)."""
        return {}

    # --- helpers for subclasses ---------------------------------------------------------
    def _log(self, name: str) -> str:
        return str(self.workdir / f"{name}.log")

    def _add_metaserver(self, name: str, meta_url: str, **flags) -> MetaserverProcess:
        proc = MetaserverProcess(name, ServerProcess(meta_url, log_path=self._log(name),
                                                     **flags))
        self._metaservers[name] = proc
        self._stack.callback(proc.stop)      # before start: a failed start leaves nothing
        proc.start()
        return proc

    def _add_proxy(self, upstream: str) -> FaultProxy:
        proxy = FaultProxy(free_port(), upstream).start()
        self._stack.callback(proxy.stop)
        return proxy

    # --- heal and final check -----------------------------------------------------------
    def heal(self) -> dict:
        """Clear every proxy fault, resume paused processes, restart dead ones (engines
        first), then wait until every server answers. Returns what it did."""
        for proxy in self.proxies().values():
            proxy.clear()
        resumed, restarted = [], []
        for name, proc in self.processes().items():
            if proc.paused:
                proc.resume()
                resumed.append(name)
        for name, proc in self.processes().items():
            if not proc.alive:
                proc.start()
                restarted.append(name)
        self.wait_serving()
        return {"resumed": resumed, "restarted": restarted}

    def wait_serving(self, timeout: float = SERVE_TIMEOUT_S) -> None:
        """Until every server answers a read (through its engine)."""
        for name, address, _ in self.servers():
            wait_for(lambda: answers(address), timeout, what=f"{name} ({address}) to answer")

    def final_check(self) -> dict:
        return {"fsck": fsck(self._fsck_url())}

    def _fsck_url(self) -> str:
        raise NotImplementedError


def answers(address: str, timeout: float = 2.0) -> bool:
    """Whether a metaserver answers a getattr of the root now."""
    try:
        with Client(address, timeout=timeout, retry=_PROBE) as client:
            client.getattr(ROOT_INO)
        return True
    except (OSError, grpc.RpcError):
        return False


def fsck(meta_url: str) -> dict:
    """`metactl fsck --meta-url URL`: {"clean": bool, "problems": [one line each],
    "summary": its first line}."""
    done = subprocess.run([METACTL, "fsck", "--meta-url", meta_url], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)
    lines = done.stdout.splitlines()
    if done.returncode not in (0, 1) or not lines:
        return {"clean": False, "summary": "",
                "problems": [f"metactl fsck exited with {done.returncode}: "
                             f"{done.stderr.strip()}"]}
    return {"clean": done.returncode == 0, "summary": lines[0],
            "problems": [line.strip() for line in lines[1:]]}


@contextlib.contextmanager
def stopped(proc: MetaserverProcess):
    """The process stopped for the body (RocksDB admits one process: fsck needs it
    stopped), then started again."""
    proc.stop()
    try:
        yield
    finally:
        proc.start()


def via(url: str, proxy: FaultProxy) -> str:
    """An engine URL with its host:port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{proxy.address}"))


class RocksDBDeployment(Deployment):
    """One metaserver on durable RocksDB."""

    name = "rocksdb"

    def _start(self) -> None:
        self._url = format_store(f"rocksdb://{self.workdir}/n1")
        self._add_metaserver("n1", self._url)

    def final_check(self) -> dict:
        with stopped(self._metaservers["n1"]):
            return super().final_check()

    def _fsck_url(self) -> str:
        return self._url


class MariaDBDeployment(Deployment):
    """Three stateless metaservers over one private MariaDB; each reaches it through a
    proxy of its own ("db-n1" ...), so a nemesis can cut one server from the database."""

    name = "mariadb"
    features = frozenset({"links", "engine"})
    SERVERS = 3

    def _start(self) -> None:
        db = MariaDB()
        # MariaDB.stop removes its temp dir: the last thing teardown does.
        self._stack.callback(db.stop)
        self._engines["mariadb"] = EngineProcess("mariadb", db)
        self._url = format_store(db.new_database())
        self._proxies = {}
        for i in range(1, self.SERVERS + 1):
            proxy = self._add_proxy(f"127.0.0.1:{db.port}")
            self._proxies[f"db-n{i}"] = proxy
            self._add_metaserver(f"n{i}", via(self._url, proxy))

    def proxies(self) -> dict[str, FaultProxy]:
        return dict(self._proxies)

    def _fsck_url(self) -> str:
        return self._url       # SQL: fsck reads one snapshot beside running servers


class FollowerDeployment(Deployment):
    """A RocksDB primary and a RocksDB follower; every node has a proxy in front of it
    ("link-<node>") and a follower follows the primary through the primary's proxy, so
    link faults are replication faults. Roles change with promote() and rejoin()."""

    name = "follower"
    features = frozenset({"links", "failover"})

    def _start(self) -> None:
        self._links: dict[str, FaultProxy] = {}
        self._roles: dict[str, str] = {}
        url = format_store(f"rocksdb://{self.workdir}/n1")
        self._add_node("n1", url, follow="")
        self._add_node("n2", f"rocksdb://{self.workdir}/n2", follow="n1")
        self.wait_caught_up()

    def _add_node(self, name: str, url: str, follow: str) -> None:
        # Its proxy first: the port is known before anyone follows it.
        self._links[name] = self._add_proxy(f"127.0.0.1:{free_port()}")
        port = self._links[name].upstream_port
        self._roles[name] = "follower" if follow else "primary"
        self._add_metaserver(name, url, port=port,
                             follow=self._links[follow].address if follow else "",
                             rollback_dir=str(self.workdir / f"{name}-rollback"))

    def servers(self) -> list[tuple[str, str, str]]:
        return [(name, proc.address, self._roles[name])
                for name, proc in self._metaservers.items()]

    def primary_name(self) -> str:
        return next(name for name, role in self._roles.items() if role == "primary")

    def follower_names(self) -> list[str]:
        return [name for name, role in self._roles.items() if role == "follower"]

    def proxies(self) -> dict[str, FaultProxy]:
        """The link followers use now: the proxy in front of the primary."""
        name = self.primary_name()
        return {f"link-{name}": self._links[name]}

    def link(self, name: str) -> FaultProxy:
        """The proxy in front of node `name` (in use or not)."""
        return self._links[name]

    def status(self, name: str) -> rpb.StatusReply:
        return status(self._metaservers[name].address)

    # --- failover -----------------------------------------------------------------------
    def promote(self, name: str, *, force: bool, timeout: float = 10.0) -> rpb.PromoteReply:
        """The Promote RPC on follower `name`: a switchover, or with `force` a failover.
        The former primary is "deposed" until rejoin()."""
        old = self.primary_name()
        with grpc.insecure_channel(self._metaservers[name].address) as channel:
            reply = replication_pb2_grpc.ReplicationStub(channel).Promote(
                rpb.PromoteRequest(force=force, timeout_s=timeout), timeout=timeout + 30)
        self._roles[old], self._roles[name] = "deposed", "primary"
        server = self._metaservers[name].server
        server.follow, server.rejoin = "", False     # a restart keeps it the primary
        return reply

    def rejoin(self, name: str, *, rejoin: bool) -> rpb.StatusReply:
        """Restart deposed node `name` as a follower of the new primary (through its
        proxy); `rejoin` lets it keep records after the fork in a rollback file (after a
        forced failover). Returns its status once it is ready."""
        proc = self._metaservers[name]
        proc.stop()
        proc.server.follow = self._links[self.primary_name()].address
        proc.server.rejoin = rejoin
        proc.start()
        self._roles[name] = "follower"
        return wait_for(lambda: (s := self.status(name)).ready and s, SERVE_TIMEOUT_S,
                        what=f"{name} to rejoin")

    # --- heal and final check -----------------------------------------------------------
    def heal(self) -> dict:
        for proxy in self._links.values():     # links not in use too (a deposed node's)
            proxy.clear()
        return super().heal()

    def wait_serving(self, timeout: float = SERVE_TIMEOUT_S) -> None:
        """Also until every follower has heard from its primary: until then a follower
        (one just restarted, say) refuses writes with EROFS."""
        super().wait_serving(timeout)
        for name in self.follower_names():
            wait_for(lambda: self.status(name).connected, timeout,
                     what=f"follower {name} to reconnect")

    def wait_caught_up(self, timeout: float = CATCH_UP_TIMEOUT_S) -> bool:
        """Until every follower has applied the primary's last sequence (False if not
        within `timeout`)."""
        primary = self.primary_name()

        def caught_up() -> bool:
            last = self.status(primary).last_seq
            return all(self.status(f).applied_seq >= last for f in self.follower_names())
        try:
            wait_for(caught_up, timeout, what="followers to catch up")
            return True
        except AssertionError:
            return False

    def final_check(self) -> dict:
        primary = self.primary_name()
        caught_up = self.wait_caught_up()
        replication = {"primary": primary, "caught_up": caught_up,
                       "primary_seq": self.status(primary).last_seq,
                       "followers": {f: self.status(f).applied_seq
                                     for f in self.follower_names()}}
        with stopped(self._metaservers[primary]):
            checked = fsck(self._metaservers[primary].server.meta_url)
        self.heal()        # followers reconnect to the restarted primary
        return {"fsck": checked, "replication": replication}


class GaleraDeployment(MariaDBDeployment):
    """A 3-node MariaDB Galera cluster (metaserver.testing.galera), one metaserver per
    node, each through its own proxy ("db-n1" ...) to its node's SQL port. A killed
    node rejoins by a full SST when started again."""

    name = "galera"
    features = MariaDBDeployment.features | {"partition"}

    def _start(self) -> None:
        from metaserver.testing.galera import GaleraCluster
        cluster = GaleraCluster()
        self._stack.callback(cluster.stop)
        self._url = format_store(cluster.new_database())
        self._proxies = {}
        for i, node in enumerate(cluster.nodes, 1):
            self._engines[f"galera{i}"] = EngineProcess(f"galera{i}", node)
            proxy = self._add_proxy(f"127.0.0.1:{node.port}")
            self._proxies[f"db-n{i}"] = proxy
            self._add_metaserver(f"n{i}", via(self._url, proxy))


DEPLOYMENTS: dict[str, type[Deployment]] = {
    cls.name: cls for cls in (RocksDBDeployment, MariaDBDeployment, FollowerDeployment,
                              GaleraDeployment)}


def unavailable(name: str) -> str | None:
    """Why deployment `name` cannot run on this machine, or None."""
    if name in ("mariadb", "galera") and shutil.which("mariadbd", path=os.environ.get(
            "PATH", "") + ":/usr/sbin") is None:
        return "mariadbd is not installed (apt-get install mariadb-server)"
    if name == "galera":
        from metaserver.testing.galera import GaleraCluster
        return GaleraCluster.missing()
    return None
