"""Engine drivers behind one transactional KV contract; `open_engine(url)` checks the
URL against the grammar below and opens the store it names.

URLs (anything else is refused with `BadEngineUrl`, one line):
  rocksdb://PATH                   embedded RocksDB, fsync on commit (the default). PATH is
                                   absolute (rocksdb:///var/lib/ms) or relative to the
                                   working directory (rocksdb://data/ms); never empty, no
                                   ?query or #fragment. rocksdb:/x and rocksdb:x are refused.
  rocksdb+unsafe-nosync://PATH     the same without fsync (benchmarks only)
  memory://                        in memory, for tests; nothing may follow the //
  mysql[+DRIVER]://[USER[:PASS]@]HOST[:PORT]/DB[?OPTIONS]
                                   MySQL, MariaDB, TiDB, OceanBase (mariadb:// too); DRIVER
                                   pymysql (default) or mysqldb (extra: mysqlclient)
  postgresql[+DRIVER]://[USER[:PASS]@]HOST[:PORT]/DB[?OPTIONS]
                                   PostgreSQL through psycopg (postgres:// too; extra: postgres)
  sqlite:///PATH                   SQLite file, WAL; PATH relative, or absolute after a
                                   fourth slash (sqlite:////var/lib/ms.db)
  tikv://HOST:PORT[,HOST:PORT...][/PREFIX]
                                   TiKV through its PD endpoints (extra: tikv)

Opening never creates a store unless asked (`create=True`: formatting, loading, a
follower's bootstrap): a URL naming no store raises `NotFormatted`, so a typo cannot
start an empty namespace. memory:// is new and empty on every open.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from engines.contract import Engine, EngineError


class BadEngineUrl(EngineError):
    """The URL does not follow the grammar above; the message says why, in one line
    (without the URL: the caller names it, without its password)."""


class NotFormatted(EngineError):
    """The URL holds no metaserver namespace: the store is missing (and was not to be
    created) or was never formatted. Never retried: it is the operator's to fix."""

    def __init__(self, url: str) -> None:
        shown = redact_url(url)
        super().__init__(f"no metaserver namespace at {shown}; "
                         f"run `metaserver format --meta-url {shown}` first")


def redact_url(url: str) -> str:
    """`url` with its password, if any, replaced by ***, for messages and logs."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return url
    return url.replace(f":{password}@", ":***@") if password else url


def is_ephemeral(url: str) -> bool:
    """Whether the store is new and empty on every open (memory://): there is nothing
    in it to protect, so a server may format it as it starts."""
    return urlsplit(url).scheme == "memory"


_SQL_SCHEMES = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql",
                "postgres": "postgresql", "sqlite": "sqlite"}
_SQL_FORMS = {"mysql": "mysql+pymysql://USER:PASS@HOST:PORT/DB",
              "postgresql": "postgresql://USER:PASS@HOST:PORT/DB",
              "sqlite": "sqlite:///relative/path.db or sqlite:////absolute/path.db"}
_KNOWN = "rocksdb://, rocksdb+unsafe-nosync://, memory://, mysql://, postgresql://, " \
         "sqlite:// or tikv://"


def check_engine_url(url: str) -> str:
    """Refuse a URL outside the grammar (BadEngineUrl); returns its scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        named = url.partition(":")[0]
        if named in ("rocksdb", "rocksdb+unsafe-nosync"):
            raise BadEngineUrl(f"{named}: needs // before the path ({named}:///absolute/"
                               f"path, or {named}://relative/path)")
        raise BadEngineUrl(f"not an engine URL (expected {_KNOWN})")
    if scheme in ("rocksdb", "rocksdb+unsafe-nosync"):
        if not rest:
            raise BadEngineUrl(f"no data directory (expected {scheme}:///absolute/path "
                               f"or {scheme}://relative/path)")
        if "?" in rest or "#" in rest:
            raise BadEngineUrl("a RocksDB URL takes no ?query or #fragment")
        return scheme
    if scheme == "memory":
        if rest:
            raise BadEngineUrl("nothing may follow memory://")
        return scheme
    if scheme == "tikv":
        _check_tikv(url)
        return scheme
    kind = _SQL_SCHEMES.get(scheme.partition("+")[0])
    if kind is None:
        raise BadEngineUrl(f"unknown engine {scheme!r} (expected {_KNOWN})")
    _check_sql(url, kind)
    return scheme


def _check_tikv(url: str) -> None:
    parts = urlsplit(url)
    endpoints = parts.netloc.split(",")
    for endpoint in endpoints:
        host, colon, port = endpoint.rpartition(":")
        if not (host and colon and port.isdigit() and int(port) <= 65535):
            raise BadEngineUrl(f"PD endpoint {endpoint!r} is not HOST:PORT "
                               "(expected tikv://HOST:PORT[,HOST:PORT...][/PREFIX])")
    if parts.query or parts.fragment:
        raise BadEngineUrl("a TiKV URL takes no ?query or #fragment")


def _check_sql(url: str, kind: str) -> None:
    parts = urlsplit(url)
    expected = f"(expected {_SQL_FORMS[kind]})"
    if kind == "sqlite":
        if parts.netloc or parts.path in ("", "/"):
            raise BadEngineUrl(f"no database file {expected}")
        return
    try:
        parts.port                       # raises on a port that is not a number
    except ValueError:
        raise BadEngineUrl(f"the port is not a number {expected}") from None
    if not parts.hostname:
        raise BadEngineUrl(f"no host {expected}")
    if not parts.path.strip("/"):
        raise BadEngineUrl(f"no database name {expected}")


def open_engine(url: str, *, create: bool = False) -> Engine:
    """The store `url` names. Without `create`, a missing store raises NotFormatted and
    nothing is created; with it, a missing store is made (empty)."""
    scheme = check_engine_url(url)
    if scheme == "memory":
        from engines.memory import MemoryEngine
        return MemoryEngine(url)
    if scheme in ("rocksdb", "rocksdb+unsafe-nosync"):
        from engines.rocksdb import RocksEngine
        return RocksEngine(url, url.partition("://")[2], sync=(scheme == "rocksdb"),
                           create=create)
    if scheme == "tikv":
        from engines.tikv import TikvEngine
        return TikvEngine(url, create=create)
    from engines.sql import SqlEngine
    return SqlEngine(url, create=create)
