"""The FUSE operations of metafs, path-based over libfuse's high-level API (mfusepy).

Every metadata operation is a client call: paths are resolved by the server (Resolve:
one call, one transaction; creates and renames resolve their parent first), open files
and directories are handles naming an inode, file data goes through FileData, locks
are the server's (shared by all mounts). Errors are OSErrors with the server's errno
(mount.MetaFuse answers anything else EIO).

Open-unlinked files: when a file open here loses its name (unlink, or a rename over
it), libfuse first renames it to a hidden name (".fuse_hidden…") and unlinks that
name at the last close. metafs turns that rename into "hold the inode in the server
under this mount's session, then unlink it", and keeps the hidden name only here:
other mounts see the name gone at once, fstat shows nlink 0, and the server frees
the inode at the last close (or when this mount's session dies). A rename over an
open file is thus two steps in the server (the old target goes, then the rename).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import stat
import threading
import time

import mfusepy

from metaserver.client import Client
from metaserver.fuse.filedata import FileData
from metaserver.fuse.namecache import NameCache
from metaserver.fuse.session import ClientSession
from metaserver.types import Attr, FileType, RenameFlags

log = logging.getLogger("metafs")

BLOCK_SIZE = 4096
NAME_MAX = 255
NOW = "now"         # utimens: set this time to the server's clock
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
LOCK_POLL_MAX_S = 0.5      # a blocking lock asks the server again at most this far apart
# libfuse's name for an open file that lost its name (fuse.c: hidden_name)
HIDDEN_NAME = re.compile(r"\.fuse_hidden[0-9a-f]{16}")

_TYPE_BITS = {FileType.REGULAR: stat.S_IFREG, FileType.DIRECTORY: stat.S_IFDIR,
              FileType.SYMLINK: stat.S_IFLNK, FileType.FIFO: stat.S_IFIFO,
              FileType.SOCKET: stat.S_IFSOCK, FileType.CHAR_DEVICE: stat.S_IFCHR,
              FileType.BLOCK_DEVICE: stat.S_IFBLK}
_TYPE_OF_BITS = {bits: type_ for type_, bits in _TYPE_BITS.items()}


def stat_of(a: Attr) -> dict:
    return {"st_ino": a.ino, "st_mode": _TYPE_BITS[a.type] | a.mode, "st_nlink": a.nlink,
            "st_uid": a.uid, "st_gid": a.gid, "st_size": a.size, "st_rdev": a.rdev,
            "st_atime": a.atime_ns, "st_mtime": a.mtime_ns, "st_ctime": a.ctime_ns,
            "st_blksize": BLOCK_SIZE, "st_blocks": (a.size + 511) // 512}


def _refuse_acl(name: str) -> None:
    """POSIX ACLs are not supported: storing them as plain xattrs would let them
    disagree with the mode, so tools (cp -a, tar) fall back to chmod."""
    if name.startswith("system.posix_acl_"):
        raise mfusepy.FuseOSError(errno.EOPNOTSUPP)


def _split(path: str) -> tuple[bytes, bytes]:
    parent, _, name = os.fsencode(path).rpartition(b"/")
    return parent or b"/", name


class MetaFs(mfusepy.Operations):
    use_ns = True           # mfusepy: times are integer nanoseconds

    def __init__(self, client: Client, data: FileData, session: ClientSession,
                 names: NameCache) -> None:
        self.client = client
        self.data = data
        self.session = session
        self.names = names
        self._handles: dict[int, int] = {}      # handle -> inode
        self._hidden: dict[str, int] = {}       # libfuse's hidden name -> the inode held
        # (inode, owner) that may hold POSIX locks: libfuse unlocks at every close, and
        # only these need the server to hear it.
        self._posix_owners: set[tuple[int, int]] = set()
        self._next_handle = itertools.count(1)
        self._lock = threading.Lock()

    # --- helpers --------------------------------------------------------------------------
    def _ino(self, path: str) -> int:
        held = self._hidden.get(os.path.basename(path))
        if held is not None:
            return held
        made = self.names.take_new(path)    # about to change: not fresh after this
        return (made and made.ino) or self.names.dir_ino(path) or \
            self.client.resolve(os.fsencode(path)).ino

    def _parent(self, path: str) -> tuple[int, bytes]:
        parent, name = _split(path)
        parent_path = os.fsdecode(parent)
        ino = self.names.dir_ino(parent_path)
        if ino is None:
            ino = self.client.resolve(parent).ino
            self.names.remember_dir(parent_path, ino)
        return ino, name

    def _open_handle(self, ino: int) -> int:
        with self._lock:
            handle = next(self._next_handle)
            self._handles[handle] = ino
        return handle

    def _handle_ino(self, fh: int) -> int:
        try:
            return self._handles[fh]
        except KeyError:
            raise mfusepy.FuseOSError(errno.EBADF) from None

    @staticmethod
    def _caller() -> tuple[int, int]:
        uid, gid, _pid = mfusepy.fuse_get_context()
        return uid, gid

    # --- attributes -----------------------------------------------------------------------
    def getattr(self, path, fh=None):
        if fh in self._handles:
            return stat_of(self.client.getattr(self._handles[fh]))
        held = self._hidden.get(os.path.basename(path))
        if held is not None:
            return stat_of(self.client.getattr(held))
        attr = self.names.take_new(path) or self.client.resolve(os.fsencode(path)).attr
        if attr.is_dir:
            self.names.remember_dir(path, attr.ino)
        return stat_of(attr)

    def chmod(self, path, mode):
        self.client.setattr(self._ino(path), mode=mode & 0o7777)

    def chown(self, path, uid, gid):
        self.client.setattr(self._ino(path), uid=None if uid == -1 else uid,
                            gid=None if gid == -1 else gid)

    def truncate(self, path, length, fh=None):
        ino = self._handles[fh] if fh in self._handles else self._ino(path)
        self.client.setattr(ino, size=length)

    def utimens(self, path, atime, mtime):
        """Each of atime, mtime: nanoseconds, NOW, or None (leave it)."""
        self.client.setattr(self._ino(path),
                            atime_ns=atime if isinstance(atime, int) else None,
                            mtime_ns=mtime if isinstance(mtime, int) else None,
                            atime_now=atime == NOW, mtime_now=mtime == NOW)

    # --- names ----------------------------------------------------------------------------
    def readlink(self, path):
        return os.fsdecode(self.client.readlink(self._ino(path)))

    def mknod(self, path, mode, dev):
        parent, name = self._parent(path)
        type_ = _TYPE_OF_BITS.get(stat.S_IFMT(mode))
        if type_ is None or type_ in (FileType.DIRECTORY, FileType.SYMLINK):
            raise mfusepy.FuseOSError(errno.EINVAL)
        uid, gid = self._caller()
        self.names.remember_new(path, self.client.mknod(parent, name, type_, mode & 0o7777,
                                                        uid, gid, dev).attr)

    def mkdir(self, path, mode):
        parent, name = self._parent(path)
        uid, gid = self._caller()
        made = self.client.mkdir(parent, name, mode & 0o7777, uid, gid)
        self.names.remember_new(path, made.attr)
        self.names.remember_dir(path, made.ino)

    def unlink(self, path):
        held = self._hidden.pop(os.path.basename(path), None)
        if held is not None:        # the last close of an open-unlinked file
            self.client.release_inode(self.session.id, held)
            return
        self.names.take_new(path)
        self.client.unlink(*self._parent(path))

    def rmdir(self, path):
        self.names.forget_under(path)
        self.client.rmdir(*self._parent(path))

    def symlink(self, target, source):
        """mfusepy's names: `target` is the new link, `source` what it points to."""
        parent, name = self._parent(target)
        uid, gid = self._caller()
        self.names.remember_new(target, self.client.symlink(parent, name, os.fsencode(source),
                                                            uid, gid).attr)

    def link(self, target, source):
        """A new name `target` for the file at `source`."""
        parent, name = self._parent(target)
        self.names.remember_new(target, self.client.link(self._ino(source), parent, name).attr)

    def rename(self, old, new, flags=0):
        parent, name = self._parent(old)
        if HIDDEN_NAME.fullmatch(os.path.basename(new)) and not flags:
            self._hide(parent, name, os.path.basename(new))
            return
        new_parent, new_name = self._parent(new)
        self.names.forget_under(old)
        self.names.forget_under(new)
        self.client.rename(parent, name, new_parent, new_name, RenameFlags(flags))

    def _hide(self, parent: int, name: bytes, hidden: str) -> None:
        """libfuse hides a file open here that loses its name: hold it, then unlink."""
        ino = self.client.lookup(parent, name).ino
        self.client.hold_inode(self.session.id, ino)
        self.client.unlink(parent, name)
        self._hidden[hidden] = ino

    # --- files ----------------------------------------------------------------------------
    def create(self, path, mode, flags=0):
        parent, name = self._parent(path)
        uid, gid = self._caller()
        made = self.client.create(parent, name, mode & 0o7777, uid, gid)
        self.names.remember_new(path, made.attr)
        return self._open_handle(made.ino)

    def open(self, path, flags):
        return self._open_handle(self._ino(path))

    def read(self, path, size, offset, fh):
        ino = self._handle_ino(fh)
        return self.data.read(ino, offset, size, self.client.getattr(ino).size)

    def write(self, path, data, offset, fh):
        self.data.write(self._handle_ino(fh), offset, data)
        return len(data)

    def flush(self, path, fh):
        return 0            # writes are stored when write() returns

    def fsync(self, path, datasync, fh):
        return 0

    def release(self, path, fh, flock_owner=None):
        """The last close of an open file; `flock_owner`: its flock goes too."""
        if flock_owner is not None:
            self._set_lock(self._handle_ino(fh), flock_owner, F_UNLCK, 0, 0, flock=True,
                           pid=0, wait=False)
        with self._lock:
            self._handles.pop(fh, None)
        return 0

    # --- locks (held in the server, under this mount's session) --------------------------
    def _set_lock(self, ino: int, owner: int, type_: int, start: int, end: int, *,
                  flock: bool, pid: int, wait: bool) -> None:
        """One lock, asking the server again until it is free when `wait`."""
        pause = 0.01
        while True:
            try:
                self.client.set_lock(self.session.id, ino, owner, type_, start, end,
                                     flock=flock, pid=pid)
                return
            except PermissionError:     # another owner's lock is in the way
                if not wait or self.session.closing:
                    raise mfusepy.FuseOSError(errno.EAGAIN) from None
            time.sleep(pause)
            pause = min(pause * 2, LOCK_POLL_MAX_S)

    def flock(self, fh, owner, op):
        type_ = F_UNLCK if op & LOCK_UN else F_WRLCK if op & LOCK_EX else F_RDLCK
        self._set_lock(self._handle_ino(fh), owner, type_, 0, 0, flock=True, pid=0,
                       wait=not op & LOCK_NB)

    def lock(self, fh, owner, cmd, lk):
        """POSIX locks; `lk` is the struct flock (l_whence is SEEK_SET by now)."""
        ino = self._handle_ino(fh)
        end = lk.l_start + lk.l_len if lk.l_len > 0 else 0
        if cmd == F_GETLK:
            type_, start, lock_end, pid = self.client.get_lock(
                self.session.id, ino, owner, lk.l_type, lk.l_start, end)
            lk.l_type = type_
            if type_ != F_UNLCK:
                lk.l_start, lk.l_len, lk.l_pid = start, lock_end - start if lock_end else 0, pid
            return 0
        if cmd not in (F_SETLK, F_SETLKW):
            raise mfusepy.FuseOSError(errno.EINVAL)
        if lk.l_type == F_UNLCK and (ino, owner) not in self._posix_owners:
            return 0
        self._set_lock(ino, owner, lk.l_type, lk.l_start, end, flock=False, pid=lk.l_pid,
                       wait=cmd == F_SETLKW)
        with self._lock:
            if lk.l_type != F_UNLCK:
                self._posix_owners.add((ino, owner))
            elif lk.l_start == 0 and end == 0:      # all of them gone
                self._posix_owners.discard((ino, owner))
        return 0

    # --- directories ----------------------------------------------------------------------
    def opendir(self, path):
        return self._open_handle(self._ino(path))

    def readdir(self, path, fh):
        """(name, stat, 0) for ".", ".." and every entry, with attributes (readdirplus)."""
        ino = self._handle_ino(fh)
        attr = self.client.getattr(ino)
        parent = self.client.getattr(attr.parent or ino)
        return [(b".", stat_of(attr), 0), (b"..", stat_of(parent), 0)] + [
            (entry.name, stat_of(entry.attr), 0)
            for entry in self.client.readdir(ino, with_attrs=True)]

    def releasedir(self, path, fh):
        return self.release(path, fh)

    def fsyncdir(self, path, datasync, fh):
        return 0

    # --- extended attributes --------------------------------------------------------------
    def getxattr(self, path, name, position=0):
        _refuse_acl(name)
        return self.client.getxattr(self._ino(path), name)

    def setxattr(self, path, name, value, options, position=0):
        _refuse_acl(name)
        self.client.setxattr(self._ino(path), name, value, options)

    def listxattr(self, path):
        return [os.fsdecode(name) for name in self.client.listxattr(self._ino(path))]

    def removexattr(self, path, name):
        self.client.removexattr(self._ino(path), name)

    # --- the file system ------------------------------------------------------------------
    def destroy(self, path):
        self.session.close()

    def statfs(self, path):
        s = self.client.statfs()
        free_bytes = max(s.total_bytes - s.used_bytes, 0)
        free_inodes = max(s.total_inodes - s.used_inodes, 0)
        return {"f_bsize": BLOCK_SIZE, "f_frsize": BLOCK_SIZE,
                "f_blocks": s.total_bytes // BLOCK_SIZE, "f_bfree": free_bytes // BLOCK_SIZE,
                "f_bavail": free_bytes // BLOCK_SIZE, "f_files": s.total_inodes,
                "f_ffree": free_inodes, "f_favail": free_inodes, "f_namemax": NAME_MAX}
