"""A private PostgreSQL server on loopback (the engine tests)."""

from __future__ import annotations

import shutil

from metaserver.testing.databases import USER, DatabaseServer, run_setup, server_binary


class PostgreSQL(DatabaseServer):
    """Debian's postgresql binaries, run as the `postgres` user (initdb refuses root)."""

    scheme = "postgresql+psycopg"
    admin_database = "postgres"
    drop_sql = "DROP DATABASE IF EXISTS {name} WITH (FORCE)"

    def initialise(self) -> None:
        shutil.chown(self.dir, "postgres")
        run_setup([server_binary("initdb"), "-D", f"{self.dir}/data", "-A", "trust", "-U", USER,
                   "--no-sync", "-E", "UTF8"], user="postgres", group="postgres")

    def command(self) -> tuple[list[str], dict]:
        return [server_binary("postgres"), "-D", f"{self.dir}/data", "-k", self.dir,
                "-h", "127.0.0.1", "-p", str(self.port), "-c", "max_connections=300"], \
            dict(user="postgres", group="postgres")

    def ready(self) -> bool:
        import psycopg
        try:
            psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres",
                            connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False
