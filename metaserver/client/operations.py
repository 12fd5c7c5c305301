"""The metadata operations with os-like signatures, written once: Client runs each
call at once, a Batch queues it. Names and paths are str (os.fsencode) or bytes."""

from __future__ import annotations

import os
from typing import Union

from metaserver.types import (Attr, CompactResult, DirPage, Entry, FileType, Quota,
                              SetAttrMask, Slice, StatFs, Summary, TreeCheck)
from metaserver.client import wire

Name = Union[str, bytes, os.PathLike]

# setattr keyword -> the mask bit saying it is set
_SETATTR_BITS = {"mode": SetAttrMask.MODE, "uid": SetAttrMask.UID, "gid": SetAttrMask.GID,
                 "size": SetAttrMask.SIZE, "atime_ns": SetAttrMask.ATIME,
                 "mtime_ns": SetAttrMask.MTIME, "ctime_ns": SetAttrMask.CTIME}


class Operations:
    """Subclasses run or queue `op` (a key of wire.CALLS) with its request fields;
    `subject` is the name the operation is about, for the error's filename."""

    def _op(self, op: str, subject: bytes | None, /, **fields):
        raise NotImplementedError

    def lookup(self, parent: int, name: Name) -> Entry:
        name = os.fsencode(name)
        return self._op("lookup", name, parent=parent, name=name)

    def getattr(self, ino: int) -> Attr:
        return self._op("getattr", None, ino=ino)

    def setattr(self, ino: int, *, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, size: int | None = None, atime_ns: int | None = None,
                mtime_ns: int | None = None, ctime_ns: int | None = None,
                atime_now: bool = False, mtime_now: bool = False) -> Attr:
        """Change the given fields; *_now set a time to the server's clock."""
        given = {key: value for key, value in
                 (("mode", mode), ("uid", uid), ("gid", gid), ("size", size),
                  ("atime_ns", atime_ns), ("mtime_ns", mtime_ns), ("ctime_ns", ctime_ns))
                 if value is not None}
        mask = SetAttrMask(0)
        for key in given:
            mask |= _SETATTR_BITS[key]
        if atime_now:
            mask |= SetAttrMask.ATIME_NOW
        if mtime_now:
            mask |= SetAttrMask.MTIME_NOW
        return self._op("setattr", None, ino=ino, mask=int(mask), **given)

    def mknod(self, parent: int, name: Name, type: FileType, mode: int, uid: int = 0,
              gid: int = 0, rdev: int = 0) -> Entry:
        name = os.fsencode(name)
        return self._op("mknod", name, parent=parent, name=name, type=int(type), mode=mode,
                        uid=uid, gid=gid, rdev=rdev)

    def create(self, parent: int, name: Name, mode: int = 0o644, uid: int = 0,
               gid: int = 0) -> Entry:
        name = os.fsencode(name)
        return self._op("create", name, parent=parent, name=name, mode=mode, uid=uid, gid=gid)

    def mkdir(self, parent: int, name: Name, mode: int = 0o755, uid: int = 0,
              gid: int = 0) -> Entry:
        name = os.fsencode(name)
        return self._op("mkdir", name, parent=parent, name=name, mode=mode, uid=uid, gid=gid)

    def symlink(self, parent: int, name: Name, target: Name, uid: int = 0,
                gid: int = 0) -> Entry:
        name = os.fsencode(name)
        return self._op("symlink", name, parent=parent, name=name,
                        target=os.fsencode(target), uid=uid, gid=gid)

    def readlink(self, ino: int) -> bytes:
        return self._op("readlink", None, ino=ino)

    def link(self, ino: int, parent: int, name: Name) -> Entry:
        """A new name `name` in directory `parent` for inode `ino`."""
        name = os.fsencode(name)
        return self._op("link", name, ino=ino, parent=parent, name=name)

    def unlink(self, parent: int, name: Name) -> None:
        name = os.fsencode(name)
        return self._op("unlink", name, parent=parent, name=name)

    def rmdir(self, parent: int, name: Name) -> None:
        name = os.fsencode(name)
        return self._op("rmdir", name, parent=parent, name=name)

    def rename(self, parent: int, name: Name, new_parent: int, new_name: Name,
               flags: int = 0) -> Entry:
        """flags: metaserver.types.RenameFlags (renameat2 values)."""
        name = os.fsencode(name)
        return self._op("rename", name, parent=parent, name=name, new_parent=new_parent,
                        new_name=os.fsencode(new_name), flags=int(flags))

    def readdir_page(self, ino: int, cursor: Name = b"", limit: int = 1000, *,
                     with_attrs: bool = False) -> DirPage:
        """The entries after `cursor` (the previous page's cursor; empty to start)."""
        return self._op("readdir", None, ino=ino, cursor=os.fsencode(cursor), limit=limit,
                        with_attrs=with_attrs)

    def getxattr(self, ino: int, name: Name) -> bytes:
        name = os.fsencode(name)
        return self._op("getxattr", name, ino=ino, name=name)

    def setxattr(self, ino: int, name: Name, value: bytes | str, flags: int = 0) -> None:
        """flags: metaserver.types.XattrFlags (CREATE, REPLACE)."""
        name = os.fsencode(name)
        return self._op("setxattr", name, ino=ino, name=name, value=os.fsencode(value),
                        flags=int(flags))

    def listxattr(self, ino: int) -> list[bytes]:
        return self._op("listxattr", None, ino=ino)

    def removexattr(self, ino: int, name: Name) -> None:
        name = os.fsencode(name)
        return self._op("removexattr", name, ino=ino, name=name)

    def statfs(self) -> StatFs:
        return self._op("statfs", None)

    def resolve(self, path: Name) -> Entry:
        """The entry at an absolute path, symlinks not followed (like lstat)."""
        path = os.fsencode(path)
        return self._op("resolve", path, path=path)

    def alloc_slice_ids(self, count: int) -> int:
        """Reserve `count` consecutive slice ids; returns the first."""
        return self._op("alloc_slice_ids", None, count=count)

    def write_slice(self, ino: int, index: int, slice: Slice) -> Attr:
        """Append `slice` to chunk `index` of file `ino`; returns the new attributes."""
        return self._op("write_slice", None, ino=ino, index=index,
                        slice=wire.slice_to_pb(slice))

    def read_chunk(self, ino: int, index: int) -> list[Slice]:
        return self._op("read_chunk", None, ino=ino, index=index)

    def compact_chunk(self, ino: int, index: int) -> CompactResult:
        return self._op("compact_chunk", None, ino=ino, index=index)

    # --- client sessions (open-unlinked holds, locks); see the API's comments ----------
    def renew_session(self, session: bytes, ttl_ms: int) -> None:
        return self._op("renew_session", None, session=session, ttl_ms=ttl_ms)

    def close_session(self, session: bytes) -> None:
        return self._op("close_session", None, session=session)

    def hold_inode(self, session: bytes, ino: int) -> None:
        return self._op("hold_inode", None, session=session, ino=ino)

    def release_inode(self, session: bytes, ino: int) -> None:
        return self._op("release_inode", None, session=session, ino=ino)

    def set_lock(self, session: bytes, ino: int, owner: int, type: int, start: int = 0,
                 end: int = 0, *, flock: bool = False, pid: int = 0) -> None:
        """Lock [start, end) (end 0: to EOF) for (session, owner); type F_RDLCK,
        F_WRLCK or F_UNLCK. PermissionError (EACCES) if another live owner's conflicts."""
        return self._op("set_lock", None, session=session, ino=ino, owner=owner, flock=flock,
                        type=type, start=start, end=end, pid=pid)

    def get_lock(self, session: bytes, ino: int, owner: int, type: int, start: int = 0,
                 end: int = 0, *, flock: bool = False) -> tuple[int, int, int, int]:
        """(type, start, end, pid) of a conflicting lock; type F_UNLCK if none."""
        return self._op("get_lock", None, session=session, ino=ino, owner=owner, flock=flock,
                        type=type, start=start, end=end)

    # --- directory summaries and quotas ------------------------------------------------
    def summary(self, ino: int) -> Summary:
        """du-like totals of the tree at `ino` (dirs, files, bytes), kept, not walked."""
        return self._op("summary", None, ino=ino)

    def set_quota(self, ino: int, *, max_bytes: int = 0, max_inodes: int = 0) -> Quota:
        """Limit directory `ino`'s tree (0: no limit); past it mutations get EDQUOT."""
        return self._op("set_quota", None, ino=ino, max_bytes=max_bytes, max_inodes=max_inodes)

    def get_quota(self, ino: int) -> Quota:
        return self._op("get_quota", None, ino=ino)

    def delete_quota(self, ino: int) -> None:
        return self._op("delete_quota", None, ino=ino)

    def list_quotas(self) -> list[Quota]:
        return self._op("list_quotas", None)

    def check_tree(self, ino: int, *, repair: bool = False) -> TreeCheck:
        """Walk the tree at `ino` and compare with its kept totals (repair: fix them)."""
        return self._op("check_tree", None, ino=ino, repair=repair)
