"""Engine drivers behind one transactional KV contract; `open_engine(url)` picks one.

URLs:
  rocksdb:///abs/path or rocksdb://rel/path    embedded RocksDB, fsync on commit (default)
  rocksdb+unsafe-nosync://...                    same, without fsync (benchmarks only)
  memory://                                      in-memory, for tests
  mysql+pymysql://user:pass@host:port/db         MySQL, MariaDB, TiDB, OceanBase (mysql:// too)
  mysql+mysqldb://...                            the same through mysqlclient (extra: mysqlclient)
  postgresql://user:pass@host:port/db            PostgreSQL through psycopg (extra: postgres)
  sqlite:///abs/path or sqlite:///rel/path       SQLite file, WAL
  tikv://pd1:2379,pd2:2379[/prefix]              TiKV through its PD endpoints (extra: tikv)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from engines.contract import Engine, EngineUnavailable


def open_engine(url: str) -> Engine:
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme == "memory":
        from engines.memory import MemoryEngine
        return MemoryEngine(url)
    if scheme in ("rocksdb", "rocksdb+unsafe-nosync"):
        from engines.rocksdb import RocksEngine
        path = parts.netloc + parts.path
        if not path:
            raise EngineUnavailable(f"{url}: no data directory in the URL")
        return RocksEngine(url, path, sync=(scheme == "rocksdb"))
    if scheme.partition("+")[0] in _SQL_SCHEMES:
        from engines.sql import SqlEngine
        return SqlEngine(url)
    if scheme == "tikv":
        from engines.tikv import TikvEngine
        return TikvEngine(url)
    raise EngineUnavailable(f"{url}: unknown engine (expected rocksdb://, memory://, mysql://, "
                            "postgresql://, sqlite:// or tikv://)")


_SQL_SCHEMES = {"mysql", "mariadb", "postgresql", "postgres", "sqlite"}
