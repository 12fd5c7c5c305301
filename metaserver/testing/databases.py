"""A private database server in a temp dir: what MariaDB and PostgreSQL have in common.

A server is initialised into a fresh directory, listens on a free loopback port, and
is stopped by its own PID: nothing else on the machine is touched. Tests get a fresh
database per call of `new_database()`, so they never see each other's rows.

A `base_url` (mysql+pymysql://user:pass@host:port/; the tests take it from
`METASERVER_TEST_MYSQL_URL`) names an existing server instead of starting one; it
needs the right to create databases, and tests that kill the server skip on it.
A private server runs in a session of its own, so a terminal's Ctrl-C does not reach
it: whoever started it stops it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

import sqlalchemy as sa

from metaserver.testing import free_port

START_TIMEOUT_S = 60
USER, PASSWORD = "metaserver", "metaserver-test"


class ServerError(RuntimeError):
    """The server could not be set up; the message carries its log's tail."""


class DatabaseServer:
    """One server process. Subclasses say how to initialise, run and administer it."""

    scheme = ""
    admin_database = ""
    drop_sql = ""

    def __init__(self, base_url: str | None = None) -> None:
        self.private = base_url is None
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)
        if base_url is None:
            self.dir = tempfile.mkdtemp(prefix=f"{type(self).__name__.lower()}-")
            self.port = free_port()
            self.log_path = os.path.join(self.dir, "server.log")
            try:
                self.initialise()
                self.start()
                self.bootstrap()
            except BaseException:   # a failure, or Ctrl-C while it starts: leave nothing
                self.kill()
                shutil.rmtree(self.dir, ignore_errors=True)
                raise
            base_url = f"{self.scheme}://{USER}:{PASSWORD}@127.0.0.1:{self.port}/"
        self.base_url = base_url.rstrip("/") + "/"
        self._admin = sa.create_engine(self.base_url + self.admin_database,
                                       isolation_level="AUTOCOMMIT", pool_size=1,
                                       pool_pre_ping=True)   # survives kill() + start()

    # --- what a subclass provides -----------------------------------------------------
    def initialise(self) -> None: ...

    def command(self) -> tuple[list[str], dict]: ...

    def ready(self) -> bool:
        """Whether the server accepts connections yet."""

    def bootstrap(self) -> None:
        """First-start setup: the test user."""

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the server process and wait until it accepts connections."""
        argv, popen_args = self.command()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     **popen_args)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"{argv[0]} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"{argv[0]} did not accept connections:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: a crash. The data directory stays, so start() brings it back."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self._admin.dispose()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.private:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    # --- databases ----------------------------------------------------------------------
    def new_database(self) -> str:
        """A fresh, empty database; returns the engine URL for it."""
        name = f"ms_{os.getpid()}_{next(self._names)}"
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        return self.base_url + name

    def drop_database(self, url: str) -> None:
        """Best effort: a connection a test left open may hold the database."""
        name = urlsplit(url).path.strip("/")
        try:
            with self._admin.connect() as conn:
                conn.exec_driver_sql(self.drop_sql.format(name=name))
        except sa.exc.DBAPIError:
            pass


def run_setup(argv: list[str], **popen_args) -> None:
    """Run a setup command (initdb, mariadb-install-db) to its end, in a process group of
    its own: interrupted, the whole group is killed, since mariadb-install-db's
    bootstrap server would otherwise outlive it."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, **popen_args)
    try:
        output, _ = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise ServerError(f"{argv[0]} exited with {proc.returncode}:\n"
                          f"{output.decode(errors='replace')[-2000:]}")


def server_binary(name: str) -> str:
    """A server binary: on PATH, or where Debian keeps PostgreSQL's."""
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin")
    if found is None:
        versions = sorted(os.listdir("/usr/lib/postgresql")) if os.path.isdir("/usr/lib/postgresql") else []
        candidate = f"/usr/lib/postgresql/{versions[-1]}/bin/{name}" if versions else ""
        if not os.path.exists(candidate):
            raise FileNotFoundError(f"{name} is not installed")
        found = candidate
    return found
