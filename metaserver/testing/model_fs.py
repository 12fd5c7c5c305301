"""A model file system in plain dicts: what the namespace operations must do, with Linux's errnos.

Methods take the same keyword arguments as the service's operations (model inode numbers
in place of real ones) and return the inode a name leads to, a value, or None.

The errno rules are Linux's (checked against renameat2, linkat, symlinkat, mknodat and
setxattr on ext4 and tmpfs), with the choices the service's API makes on top:
  * a name is checked before anything is looked up (link's source excepted, as in
    linkat): EINVAL when empty or holding '/' or NUL, EINVAL for '.' and '..' in
    mutations (Linux would say EBUSY, EEXIST, ...), ENAMETOOLONG above 255 bytes;
  * RENAME_WHITEOUT is refused with EOPNOTSUPP;
  * a parent is an inode: a missing one is ENOENT, a non-directory ENOTDIR.
Only mode and size are modelled for setattr, and no times.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from metaserver.errors import FsError
from metaserver.types import (MAX_FILE_SIZE, NAME_MAX, ROOT_INO, XATTR_NAME_MAX, XATTR_VALUE_MAX,
                              FileType, SetAttrMask)

DIR = FileType.DIRECTORY
LINUX_PATH_MAX = 4096           # counts the terminating NUL: a symlink target holds at most 4095
NOREPLACE, EXCHANGE, WHITEOUT = 1, 2, 4         # renameat2 flags
XATTR_CREATE, XATTR_REPLACE = 1, 2

@dataclass
class Node:
    type: FileType
    mode: int
    nlink: int = 1
    size: int = 0
    target: bytes = b""
    xattrs: dict[bytes, bytes] = field(default_factory=dict)
    entries: dict[bytes, int] = field(default_factory=dict)    # directories: name -> inode
    parent: int = 0                                            # directories: their parent

    @property
    def is_dir(self) -> bool:
        return self.type == DIR


def check_name(name: bytes) -> None:
    if not name or b"/" in name or b"\0" in name or name in (b".", b".."):
        raise FsError(errno.EINVAL)
    if len(name) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG)


def _check_path_length(path: bytes) -> None:
    if len(path) >= LINUX_PATH_MAX:
        raise FsError(errno.ENAMETOOLONG)


def _xattr_name(name: bytes) -> None:
    if b"\0" in name:
        raise FsError(errno.EINVAL)
    if not name or len(name) > XATTR_NAME_MAX:
        raise FsError(errno.ERANGE)


def _mismatch(src: Node, dst: Node) -> int | None:
    """The errno replacing `dst` by `src` fails with, if any (beyond the subtree rules)."""
    if src.is_dir and not dst.is_dir:
        return errno.ENOTDIR
    if not src.is_dir and dst.is_dir:
        return errno.EISDIR
    if dst.is_dir and dst.entries:
        return errno.ENOTEMPTY
    return None


class ModelFS:
    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {ROOT_INO: Node(DIR, 0o755, nlink=2, parent=ROOT_INO)}
        self._next_ino = ROOT_INO + 1

    # --- lookups ------------------------------------------------------------------------
    def node(self, ino: int) -> Node:
        found = self.nodes.get(ino)
        if found is None:
            raise FsError(errno.ENOENT)
        return found

    def dir(self, ino: int) -> Node:
        d = self.node(ino)
        if not d.is_dir:
            raise FsError(errno.ENOTDIR)
        return d

    def lookup(self, *, parent: int, name: bytes) -> int:
        if name in (b".", b".."):
            d = self.dir(parent)
            return parent if name == b"." else d.parent
        if not name or b"/" in name or b"\0" in name:
            raise FsError(errno.EINVAL)
        if len(name) > NAME_MAX:
            raise FsError(errno.ENAMETOOLONG)
        ino = self.dir(parent).entries.get(name)
        if ino is None:
            raise FsError(errno.ENOENT)
        return ino

    def resolve(self, *, path: bytes) -> int:
        if not path.startswith(b"/"):
            raise FsError(errno.EINVAL)
        _check_path_length(path)
        ino = ROOT_INO
        for part in path.split(b"/"):
            if part in (b"", b"."):
                self.dir(ino)  # a trailing "/" or "/." after a non-directory: ENOTDIR
            else:
                ino = self.lookup(parent=ino, name=part)
        return ino

    def readdir(self, *, ino: int) -> list[bytes]:
        return sorted(self.dir(ino).entries)

    def readlink(self, *, ino: int) -> bytes:
        n = self.node(ino)
        if n.type != FileType.SYMLINK:
            raise FsError(errno.EINVAL)
        return n.target

    def is_ancestor(self, ino: int, of: int) -> bool:
        """Directory `ino` is `of` or above it."""
        while of != ino:
            if of == ROOT_INO:
                return False
            of = self.nodes[of].parent
        return True

    def path_of(self, ino: int) -> tuple[bytes, ...]:
        """The names leading to directory `ino`."""
        names: list[bytes] = []
        while ino != ROOT_INO:
            parent = self.nodes[ino].parent
            names.append(next(n for n, i in self.nodes[parent].entries.items() if i == ino))
            ino = parent
        return tuple(reversed(names))

    def walk(self):
        """(path, inode, node) for every name in the tree, each directory before its
        entries (iterative: trees here get deep)."""
        stack = [((), ROOT_INO)]
        while stack:
            path, ino = stack.pop()
            for name, child in sorted(self.nodes[ino].entries.items()):
                yield path + (name,), child, self.nodes[child]
                if self.nodes[child].is_dir:
                    stack.append((path + (name,), child))

    # --- names --------------------------------------------------------------------------
    def _free(self, parent: int, name: bytes) -> Node:
        """The parent directory, after checking it has no entry `name`."""
        d = self.dir(parent)
        if name in d.entries:
            raise FsError(errno.EEXIST)
        return d

    def _create(self, parent: int, name: bytes, node: Node) -> int:
        check_name(name)
        d = self._free(parent, name)
        ino = self._next_ino
        self._next_ino += 1
        self.nodes[ino] = node
        d.entries[name] = ino
        if node.is_dir:
            node.parent = parent
            d.nlink += 1
        return ino

    def _drop(self, parent: int, name: bytes) -> None:
        """Remove one entry; free its inode when that was its last name."""
        d = self.nodes[parent]
        ino = d.entries.pop(name)
        n = self.nodes[ino]
        if n.is_dir:
            d.nlink -= 1
            n.nlink = 0
        else:
            n.nlink -= 1
        if not n.nlink:
            del self.nodes[ino]

    def mknod(self, *, parent: int, name: bytes, type: FileType = FileType.REGULAR,
              mode: int = 0o644) -> int:
        if type == DIR:
            raise FsError(errno.EPERM)
        if type == FileType.SYMLINK:
            raise FsError(errno.EINVAL)
        return self._create(parent, name, Node(type, mode & 0o7777))

    def create(self, *, parent: int, name: bytes, mode: int = 0o644) -> int:
        """The service's create: mknod of a regular file."""
        return self.mknod(parent=parent, name=name, mode=mode)

    def mkdir(self, *, parent: int, name: bytes, mode: int = 0o755) -> int:
        return self._create(parent, name, Node(DIR, mode & 0o7777, nlink=2))

    def symlink(self, *, parent: int, name: bytes, target: bytes) -> int:
        if not target:
            raise FsError(errno.ENOENT)
        if b"\0" in target:
            raise FsError(errno.EINVAL)
        _check_path_length(target)
        return self._create(parent, name, Node(FileType.SYMLINK, 0o777, size=len(target),
                                               target=target))

    def link(self, *, ino: int, parent: int, name: bytes) -> int:
        n = self.node(ino)                  # linkat looks up its source first,
        check_name(name)
        d = self._free(parent, name)        # then the new name, and only then says EPERM
        if n.is_dir:
            raise FsError(errno.EPERM)
        d.entries[name] = ino
        n.nlink += 1
        return ino

    def unlink(self, *, parent: int, name: bytes) -> None:
        check_name(name)
        ino = self.lookup(parent=parent, name=name)
        if self.nodes[ino].is_dir:
            raise FsError(errno.EISDIR)
        self._drop(parent, name)

    def rmdir(self, *, parent: int, name: bytes) -> None:
        check_name(name)
        n = self.nodes[self.lookup(parent=parent, name=name)]
        if not n.is_dir:
            raise FsError(errno.ENOTDIR)
        if n.entries:
            raise FsError(errno.ENOTEMPTY)
        self._drop(parent, name)

    def rename(self, *, parent: int, name: bytes, new_parent: int, new_name: bytes,
               flags: int = 0) -> int:
        if flags & ~(NOREPLACE | EXCHANGE | WHITEOUT):
            raise FsError(errno.EINVAL)
        if flags & EXCHANGE and flags & (NOREPLACE | WHITEOUT):
            raise FsError(errno.EINVAL)
        if flags & WHITEOUT:
            raise FsError(errno.EOPNOTSUPP)
        check_name(name)
        check_name(new_name)
        d = self.dir(parent)
        nd = self.dir(new_parent)          # both parents before the source entry
        src_ino = d.entries.get(name)
        if src_ino is None:
            raise FsError(errno.ENOENT)
        src = self.nodes[src_ino]
        dst_ino = nd.entries.get(new_name)
        dst = None if dst_ino is None else self.nodes[dst_ino]
        if dst is not None and flags & NOREPLACE:
            raise FsError(errno.EEXIST)
        if dst is None and flags & EXCHANGE:
            raise FsError(errno.ENOENT)
        if parent != new_parent:
            self._check_trap(parent, src_ino, src, new_parent, dst_ino, dst, flags)
        if src_ino == dst_ino:                  # two names of one inode: nothing to do
            return src_ino
        if flags & EXCHANGE:
            d.entries[name], nd.entries[new_name] = dst_ino, src_ino
            self._reparent(src_ino, src, parent, new_parent)
            self._reparent(dst_ino, dst, new_parent, parent)
            return src_ino
        if dst is not None:
            code = _mismatch(src, dst)
            if code:
                raise FsError(code)
            self._drop(new_parent, new_name)
        del d.entries[name]
        nd.entries[new_name] = src_ino
        self._reparent(src_ino, src, parent, new_parent)
        return src_ino

    def _check_trap(self, parent: int, src_ino: int, src: Node, new_parent: int,
                    dst_ino: int | None, dst: Node | None, flags: int) -> None:
        """Linux's lock_rename trap: neither side may be an ancestor of the other's parent."""
        exchange = flags & EXCHANGE
        if src.is_dir and self.is_ancestor(src_ino, new_parent):
            raise FsError(errno.EINVAL)
        if dst is not None and dst.is_dir and self.is_ancestor(dst_ino, parent):
            raise FsError(errno.EINVAL if exchange else errno.ENOTEMPTY)

    def _reparent(self, ino: int, n: Node, old: int, new: int) -> None:
        if n.is_dir and old != new:
            n.parent = new
            self.nodes[old].nlink -= 1
            self.nodes[new].nlink += 1

    # --- attributes ---------------------------------------------------------------------
    def getattr(self, *, ino: int) -> dict:
        """The modelled attributes, keyed as the harness records a getattr."""
        n = self.node(ino)
        return {"ino": ino, "type": int(n.type), "mode": n.mode, "size": n.size,
                "nlink": n.nlink}

    def setattr(self, *, ino: int, mask: int, mode: int = 0, size: int = 0) -> int:
        assert not mask & ~int(SetAttrMask.MODE | SetAttrMask.SIZE), "only mode and size modelled"
        n = self.node(ino)
        if mask & SetAttrMask.SIZE:
            if n.is_dir:
                raise FsError(errno.EISDIR)
            if n.type != FileType.REGULAR or size < 0:
                raise FsError(errno.EINVAL)
            if size > MAX_FILE_SIZE:
                raise FsError(errno.EFBIG)
            n.size = size
        if mask & SetAttrMask.MODE:
            n.mode = mode & 0o7777
        return ino

    def setxattr(self, *, ino: int, name: bytes, value: bytes, flags: int = 0) -> None:
        if flags & ~(XATTR_CREATE | XATTR_REPLACE):
            raise FsError(errno.EINVAL)
        _xattr_name(name)
        if len(value) > XATTR_VALUE_MAX:
            raise FsError(errno.E2BIG)
        n = self.node(ino)
        if flags & XATTR_CREATE and name in n.xattrs:
            raise FsError(errno.EEXIST)
        if flags & XATTR_REPLACE and name not in n.xattrs:
            raise FsError(errno.ENODATA)
        n.xattrs[name] = value

    def getxattr(self, *, ino: int, name: bytes) -> bytes:
        _xattr_name(name)
        value = self.node(ino).xattrs.get(name)
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    def listxattr(self, *, ino: int) -> list[bytes]:
        return sorted(self.node(ino).xattrs)

    def removexattr(self, *, ino: int, name: bytes) -> None:
        _xattr_name(name)
        n = self.node(ino)
        if name not in n.xattrs:
            raise FsError(errno.ENODATA)
        del n.xattrs[name]
