"""Engine drivers behind one transactional KV contract; `open_engine(url)` picks one.

URLs:
  rocksdb:///abs/path or rocksdb://rel/path    embedded RocksDB, fsync on commit (default)
  rocksdb+unsafe-nosync://...                    same, without fsync (benchmarks only)
  memory://                                      in-memory, for tests
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
    raise EngineUnavailable(f"{url}: unknown engine (expected rocksdb://PATH or memory://)")
