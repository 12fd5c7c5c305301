"""What a mount learnt about names, kept no longer than the kernel may cache the same
(the entry timeout): directory inodes by path, so a create does not resolve its parent
again, and the attributes of an entry just made, which libfuse asks for right after
making it. Another mount's rename or rmdir is seen once the timeout has passed, as
with the kernel's own caches; this mount's own are seen at once."""

from __future__ import annotations

import threading
import time

from metaserver.types import Attr


class NameCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._dirs: dict[str, tuple[int, float]] = {}     # path -> (ino, expiry)
        self._new: dict[str, tuple[Attr, float]] = {}     # path -> (attr, expiry)
        self._lock = threading.Lock()

    def dir_ino(self, path: str) -> int | None:
        with self._lock:
            found = self._dirs.get(path)
        return found[0] if found and found[1] > time.monotonic() else None

    def remember_dir(self, path: str, ino: int) -> None:
        if self.ttl_s > 0:
            with self._lock:
                self._dirs[path] = (ino, time.monotonic() + self.ttl_s)

    def remember_new(self, path: str, attr: Attr) -> None:
        if self.ttl_s > 0:
            with self._lock:
                self._new[path] = (attr, time.monotonic() + self.ttl_s)

    def take_new(self, path: str) -> Attr | None:
        """The attributes of `path` if it was just made here (once)."""
        with self._lock:
            found = self._new.pop(path, None)
        return found[0] if found and found[1] > time.monotonic() else None

    def forget_under(self, path: str) -> None:
        """`path` was renamed or removed here: forget it and everything under it."""
        prefix = path.rstrip("/") + "/"
        with self._lock:
            for table in (self._dirs, self._new):
                for key in [k for k in table if k == path or k.startswith(prefix)]:
                    del table[key]
