"""In-memory engine: the OCC machinery over a dict and a sorted key list. For tests.

Nothing is durable; `memory://` says so in its name.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Sequence

from engines.occ import OccEngine

_SCAN_CHUNK = 256


class MemoryEngine(OccEngine):
    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._lock = threading.Lock()

    def _get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def _get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        with self._lock:
            return [self._data.get(k) for k in keys]

    def _scan(self, start: bytes, end: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        # Chunks are read under the lock; between chunks the cursor re-seeks, so a
        # concurrent commit never breaks iteration (OCC validation catches the change).
        cursor = end if reverse else start
        while True:
            with self._lock:
                if reverse:
                    stop = bisect.bisect_left(self._keys, cursor)
                    begin = max(bisect.bisect_left(self._keys, start), stop - _SCAN_CHUNK)
                    chunk = [(k, self._data[k]) for k in reversed(self._keys[begin:stop])]
                else:
                    begin = bisect.bisect_left(self._keys, cursor)
                    stop = min(bisect.bisect_left(self._keys, end), begin + _SCAN_CHUNK)
                    chunk = [(k, self._data[k]) for k in self._keys[begin:stop]]
            if not chunk:
                return
            yield from chunk
            cursor = chunk[-1][0] if reverse else chunk[-1][0] + b"\x00"

    def _scan_pinned(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._lock:   # a copy: this engine is for tests, the range is small
            lo, hi = bisect.bisect_left(self._keys, start), bisect.bisect_left(self._keys, end)
            return iter([(k, self._data[k]) for k in self._keys[lo:hi]])

    def _apply(self, writes: dict[bytes, bytes | None]) -> None:
        with self._lock:
            for key, value in writes.items():
                present = key in self._data
                if value is None:
                    if present:
                        del self._data[key]
                        self._keys.pop(bisect.bisect_left(self._keys, key))
                else:
                    if not present:
                        bisect.insort(self._keys, key)
                    self._data[key] = value

    def _delete_range(self, start: bytes, end: bytes) -> None:
        with self._lock:
            lo, hi = bisect.bisect_left(self._keys, start), bisect.bisect_left(self._keys, end)
            for key in self._keys[lo:hi]:
                del self._data[key]
            del self._keys[lo:hi]

    def _sync(self) -> None:
        pass

    def close(self) -> None:
        pass
