"""Running libfuse over MetaFs: the mount options, and the few callbacks whose
mfusepy wrappers drop what metafs needs (readdirplus attributes, UTIME_NOW/OMIT,
renameat2 flags, lock owners)."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

import mfusepy

from metaserver.client import Client, RetryPolicy
from metaserver.fuse.filedata import FileData
from metaserver.fuse.fs import NOW, MetaFs
from metaserver.fuse.namecache import NameCache
from metaserver.fuse.objects import ObjectStore
from metaserver.fuse.session import ClientSession

FUSE_READDIR_PLUS = 1           # fuse_readdir_flags: the kernel asked for readdirplus
FUSE_FILL_DIR_PLUS = 2          # fuse_fill_dir_flags: this entry carries its attributes
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

log = logging.getLogger("metafs")

# While the server is away (a restart), calls wait for it instead of failing: each
# attempt is retried with the same request id for up to this long.
RECONNECT = RetryPolicy(attempts=1000, total_seconds=120.0, initial_backoff=0.05,
                        max_backoff=1.0)


@dataclass(frozen=True)
class MountOptions:
    server: str
    data_dir: str
    mountpoint: str
    read_only: bool = False
    attr_timeout: float = 0.0       # see the metafs command's --attr-timeout
    entry_timeout: float = 1.0
    negative_timeout: float = 0.0
    timeout: float = 30.0           # one attempt of one call, seconds
    token: str | None = None
    debug: bool = False
    session_ttl: float = 30.0       # seconds a dead mount's locks and holds outlive it


class MetaFuse(mfusepy.FUSE):
    def _wrapper(self, func, *args, **kwargs):
        """Every callback: an OSError keeps its errno; anything else (a bug, a broken
        connection) is one log line and EIO, never a crashed mount."""
        def guarded(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except OSError as exc:
                if isinstance(exc.errno, int) and exc.errno > 0:
                    raise
                log.error("%s: %s", func.__name__, exc)
            except Exception as exc:   # noqa: BLE001 - the mount outlives any bug
                log.error("%s: %s: %s", func.__name__, type(exc).__name__, exc)
            raise mfusepy.FuseOSError(errno.EIO)
        guarded.__name__ = func.__name__
        return super()._wrapper(guarded, *args, **kwargs)

    def readdir_fuse_3(self, path, buf, filler, offset, fip, flags):
        plus = FUSE_FILL_DIR_PLUS if flags & FUSE_READDIR_PLUS else 0
        for name, attrs, _ in self.operations.readdir(path, fip.contents.fh):
            st = mfusepy.c_stat()
            mfusepy.set_st_attrs(st, attrs, use_ns=True)
            if filler(buf, name, st, 0, plus) != 0:
                break
        return 0

    def utimens_fuse_3(self, path, buf, fip):
        if not buf:
            times = (NOW, NOW)
        else:
            times = (_time(buf.contents.actime), _time(buf.contents.modtime))
        return self.operations.utimens(path.decode(self.encoding, self.errors), *times)

    def flock(self, path, fip, op):
        return self.operations.flock(fip.contents.fh, fip.contents.lock_owner, op)

    def lock(self, path, fip, cmd, lock):
        return self.operations.lock(fip.contents.fh, fip.contents.lock_owner, cmd,
                                    lock.contents)

    def release(self, path, fip):
        # The kernel asks the last close of a flock()ed file to drop its flock here.
        fi = fip.contents
        return self.operations.release(None, fi.fh, fi.lock_owner if fi.flock_release else None)

    def rename_fuse_3(self, old, new, flags):
        return self.operations.rename(old.decode(self.encoding, self.errors),
                                      new.decode(self.encoding, self.errors), flags)


def _time(spec) -> int | str | None:
    if spec.tv_nsec == UTIME_OMIT:
        return None
    if spec.tv_nsec == UTIME_NOW:
        return NOW
    return spec.tv_sec * 1_000_000_000 + spec.tv_nsec


def run(options: MountOptions) -> None:
    """Mount and serve until unmounted (foreground). Raises OSError if the server
    cannot be reached at the start."""
    client = Client(options.server, timeout=options.timeout, retry=RECONNECT,
                    token=options.token)
    try:
        with Client(options.server, timeout=5, retry=RetryPolicy(attempts=1),
                    token=options.token) as probe:
            probe.statfs()
        session = ClientSession(client, options.session_ttl).start()
        fs = MetaFs(client, FileData(client, ObjectStore(options.data_dir)), session,
                    NameCache(options.entry_timeout))
        fuse_options = dict(
            foreground=True, fsname=f"metafs:{options.server}", subtype="metafs",
            default_permissions=True, use_ino=True,
            hard_remove=False,  # libfuse hides open files that lose their name (fs.py)
            attr_timeout=options.attr_timeout, entry_timeout=options.entry_timeout,
            negative_timeout=options.negative_timeout, ro=options.read_only,
            debug=options.debug)
        log.info("mounting %s on %s", options.server, options.mountpoint)
        try:
            MetaFuse(fs, options.mountpoint, **fuse_options)
        finally:
            session.close()
    finally:
        client.close()
