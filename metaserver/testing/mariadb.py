"""A private MariaDB server on loopback (tests, benchmarks, deploy/two-dc.sh)."""

from __future__ import annotations

import os

from metaserver.testing.databases import PASSWORD, USER, DatabaseServer, run_setup, server_binary


class MariaDB(DatabaseServer):
    """Debian's mariadb-server binaries on a temp datadir, fsync at every commit."""

    scheme = "mysql+pymysql"
    drop_sql = "SET STATEMENT lock_wait_timeout=5 FOR DROP DATABASE IF EXISTS {name}"

    def initialise(self) -> None:
        self.socket = os.path.join(self.dir, "mysqld.sock")
        run_setup([server_binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.dir}/data",
                   "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"])

    def command(self) -> tuple[list[str], dict]:
        return [server_binary("mariadbd"), "--no-defaults", f"--datadir={self.dir}/data",
                f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--pid-file={self.dir}/mariadbd.pid", f"--log-error={self.log_path}",
                "--user=root", "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=1",
                "--innodb-buffer-pool-size=128M", "--max-connections=500"], {}

    def _root(self):
        import pymysql
        return pymysql.connect(unix_socket=self.socket, user="root", connect_timeout=2)

    def ready(self) -> bool:
        import pymysql
        try:
            self._root().close()
            return True
        except pymysql.err.OperationalError:
            return False

    def bootstrap(self) -> None:
        with self._root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
            cur.execute(f"GRANT ALL ON *.* TO '{USER}'@'127.0.0.1'")
