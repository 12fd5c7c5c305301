"""A private 3-node MariaDB Galera cluster on loopback (tests, the jepsen harness).

Debian's `mariadbd` with the `galera-4` provider, every node in its own temp dir with
four free loopback ports (SQL, group communication, IST, rsync SST; `rsync` must be
installed). The nodes run as `mysql` (rsync SST's daemon drops to that user). Node 1 bootstraps the cluster (`--wsrep-new-cluster`) and gets the TCP
test user; the others join it by SST. Everything is stopped by its own PID.

    with GaleraCluster() as cluster:             # starts 3 nodes, each Synced (~10 s)
        url = cluster.new_database()             # an empty database, through node 1
        urls = cluster.urls(url)                 # the same database through each node
        node = cluster.nodes[1]                  # .port, .proc, .url(database)
        node.pause(); node.resume()              # SIGSTOP / SIGCONT
        node.kill(); node.start()                # SIGKILL; rejoin (a full SST)
        node.restart()                           # SIGKILL, then start
    # leaving the block (or cluster.stop_all(), alias stop()) kills every node and
    # removes the temp dirs

`GaleraCluster.missing()` says why no cluster can be started here (or None). A node
restarts by joining the nodes still running: with every node down, the cluster is not
bootstrapped again (make a new one). A node's rejoin after kill takes ~13 s (the others
drop it first, then a full rsync SST).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import pymysql

from metaserver.testing import free_port
from metaserver.testing.databases import PASSWORD, USER, server_binary
from metaserver.testing.mariadb import MariaDB

PROVIDER = "/usr/lib/galera/libgalera_smm.so"


class GaleraNode(MariaDB):
    """One node. Made and started by its GaleraCluster (which knows every node's
    ports), so DatabaseServer's start-at-construction is not used."""

    def __init__(self, directory: str, index: int, cluster_address: str,
                 ports: tuple[int, int, int, int]) -> None:
        # Not DatabaseServer.__init__: that one picks a port and starts the server.
        self.index, self.dir, self.private, self.proc = index, directory, True, None
        self.port, self.gcomm_port, self.ist_port, self.sst_port = ports
        self.cluster_address = cluster_address
        self.log_path = os.path.join(directory, "server.log")
        self.socket = os.path.join(directory, "mysqld.sock")
        self.new_cluster = False       # set for the first start of the first node

    def url(self, database: str = "") -> str:
        """The SQLAlchemy URL of `database` through this node."""
        return f"{self.scheme}://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def command(self) -> tuple[list[str], dict]:
        argv, popen_args = super().command()
        argv = [arg.replace("--user=root", "--user=mysql") for arg in argv]
        argv += ["--wsrep-on=ON", f"--wsrep-provider={PROVIDER}",
                 f"--wsrep-cluster-address=gcomm://{self.cluster_address}",
                 f"--wsrep-node-address=127.0.0.1:{self.gcomm_port}",
                 f"--wsrep-node-name=node{self.index}",
                 f"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm_port};"
                 f"ist.recv_addr=127.0.0.1:{self.ist_port};gcache.size=32M",
                 "--wsrep-sst-method=rsync",
                 f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
                 "--binlog-format=ROW", "--innodb-autoinc-lock-mode=2"]
        if self.new_cluster:
            argv.append("--wsrep-new-cluster")
        return argv, popen_args

    def ready(self) -> bool:
        """Accepting queries as a Synced member of the primary component."""
        try:
            with self._root() as conn, conn.cursor() as cur:
                cur.execute("SHOW STATUS WHERE Variable_name IN "
                            "('wsrep_ready', 'wsrep_local_state_comment')")
                return dict(cur.fetchall()) == {"wsrep_ready": "ON",
                                                "wsrep_local_state_comment": "Synced"}
        except pymysql.err.MySQLError:
            return False

    def isolate(self, on: bool) -> None:
        """Cut this node off the cluster's group communication (a partition that leaves
        it alone, in the minority), or reconnect it."""
        with self._root() as conn, conn.cursor() as cur:
            cur.execute(f"SET GLOBAL wsrep_provider_options = 'gmcast.isolate={int(on)}'")

    def start(self) -> None:
        """Start (or rejoin after kill) and wait until Synced."""
        super().start()
        self.new_cluster = False    # from now on it joins the others

    def pause(self) -> None:
        """SIGSTOP: the node hangs with its connections open."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)   # a paused process dies only when run
        super().kill()


class GaleraCluster:
    """`size` nodes on loopback, started and Synced when the constructor returns."""

    def __init__(self, size: int = 3) -> None:
        self.dir = tempfile.mkdtemp(prefix="galera-")
        ports = [tuple(free_port() for _ in range(4)) for _ in range(size)]
        address = ",".join(f"127.0.0.1:{p[1]}" for p in ports)
        self.nodes = [GaleraNode(os.path.join(self.dir, f"node{i}"), i, address, p)
                      for i, p in enumerate(ports, 1)]
        self._names = 0
        try:
            for node in self.nodes:
                os.makedirs(os.path.join(node.dir, "data"))
            first = self.nodes[0]
            first.initialise()       # joiners get their data directory by SST
            _chown_tree(self.dir, "mysql")
            first.new_cluster = True
            first.start()
            first.bootstrap()        # root is socket-only: the TCP user, replicated
            for node in self.nodes[1:]:
                node.start()
        except BaseException:
            self.stop_all()
            raise

    @staticmethod
    def missing() -> str | None:
        """Why a cluster cannot be started on this machine, or None."""
        try:
            server_binary("mariadbd")
        except FileNotFoundError:
            return "mariadbd is not installed (apt-get install mariadb-server)"
        if not os.path.exists(PROVIDER):
            return f"{PROVIDER} is missing (apt-get install galera-4)"
        if shutil.which("rsync") is None:
            return "rsync is not installed (apt-get install rsync; Galera's SST uses it)"
        return None

    def __enter__(self) -> GaleraCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

    def _admin(self) -> pymysql.Connection:
        """A connection to the first node that answers."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                try:
                    return pymysql.connect(host="127.0.0.1", port=node.port, user=USER,
                                           password=PASSWORD, connect_timeout=2, autocommit=True)
                except pymysql.err.MySQLError:
                    continue
        raise RuntimeError("no Galera node answers")

    def new_database(self) -> str:
        """A fresh, empty database (on every node); its URL through node 1."""
        self._names += 1
        name = f"ms_{os.getpid()}_{self._names}"
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        return self.nodes[0].url(name)

    def urls(self, url: str) -> list[str]:
        """The database of `url` through each node, in node order."""
        name = url.rsplit("/", 1)[1]
        return [node.url(name) for node in self.nodes]

    def drop_database(self, url: str) -> None:
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]}")

    def stop_all(self) -> None:
        """SIGKILL every node (their data is thrown away) and remove the temp dirs."""
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    stop = stop_all     # the name DatabaseServer uses


def _chown_tree(path: str, user: str) -> None:
    shutil.chown(path, user, user)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), user, user)
