"""Plain data the namespace speaks in: attributes, entries, pages, slices, flags.

Times are integer nanoseconds since the epoch. `mode` holds permission bits only
(0o7777); the file type is separate. Inode 1 is the root directory.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

ROOT_INO = 1
NAME_MAX = 255
PATH_MAX = 4096           # counts the terminating NUL, as Linux's does
SYMLINK_MAX = PATH_MAX - 1
XATTR_NAME_MAX = 255
XATTR_VALUE_MAX = 65536
XATTR_LIST_MAX = 65536
LINK_MAX = 65000
CHUNK_SIZE = 64 << 20
MAX_FILE_SIZE = 1 << 60
READDIR_MAX = 10000


class FileType(IntEnum):
    REGULAR = 1
    DIRECTORY = 2
    SYMLINK = 3
    FIFO = 4
    SOCKET = 5
    CHAR_DEVICE = 6
    BLOCK_DEVICE = 7

    @property
    def st_fmt(self) -> int:
        return _ST_FMT[self]


_DIRECTORY = FileType.DIRECTORY

_ST_FMT = {
    FileType.REGULAR: stat.S_IFREG, FileType.DIRECTORY: stat.S_IFDIR,
    FileType.SYMLINK: stat.S_IFLNK, FileType.FIFO: stat.S_IFIFO,
    FileType.SOCKET: stat.S_IFSOCK, FileType.CHAR_DEVICE: stat.S_IFCHR,
    FileType.BLOCK_DEVICE: stat.S_IFBLK,
}


class SetAttrMask(IntFlag):
    MODE = 1
    UID = 2
    GID = 4
    SIZE = 8
    ATIME = 16
    MTIME = 32
    CTIME = 64
    ATIME_NOW = 128
    MTIME_NOW = 256


class RenameFlags(IntFlag):
    """Linux renameat2 flag values."""
    NOREPLACE = 1
    EXCHANGE = 2
    WHITEOUT = 4


class XattrFlags(IntFlag):
    CREATE = 1
    REPLACE = 2


@dataclass(slots=True)
class Attr:
    ino: int
    type: FileType
    mode: int
    uid: int
    gid: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    nlink: int
    size: int
    rdev: int
    parent: int          # directories: their parent; files: the parent while nlink == 1, else 0

    @property
    def st_mode(self) -> int:
        return self.type.st_fmt | self.mode

    @property
    def is_dir(self) -> bool:
        return self.type == _DIRECTORY     # FileType.DIRECTORY is a slow class attribute


@dataclass(slots=True)
class Entry:
    name: bytes
    ino: int
    type: FileType
    attr: Attr | None = None


@dataclass(slots=True)
class DirPage:
    entries: list[Entry]
    cursor: bytes          # pass back to continue; empty when the directory is exhausted


@dataclass(slots=True)
class StatFs:
    total_bytes: int
    used_bytes: int
    total_inodes: int
    used_inodes: int

    @property
    def avail_bytes(self) -> int:
        return max(0, self.total_bytes - self.used_bytes)

    @property
    def avail_inodes(self) -> int:
        return max(0, self.total_inodes - self.used_inodes)


@dataclass(slots=True)
class Slice:
    """A run of bytes of one stored object placed into a chunk.

    `pos` is where it lands in the chunk; the data is bytes [off, off+len) of object
    `id`, whose full size is `size`. id 0 is a hole (reads as zeros).
    """
    pos: int
    id: int
    size: int
    off: int
    len: int


@dataclass(slots=True)
class CompactResult:
    slices: list[Slice]
    released: list[int] = field(default_factory=list)   # slice ids no longer referenced


@dataclass(slots=True)
class Summary:
    """du-like totals of a directory tree, the directory itself not counted: every
    entry below it (a file with two names counts twice), and regular-file bytes."""
    dirs: int = 0
    files: int = 0
    size: int = 0

    @property
    def inodes(self) -> int:
        return self.dirs + self.files


@dataclass(slots=True)
class Quota:
    """A directory's limits (0: none) and what its tree uses."""
    ino: int
    max_bytes: int
    max_inodes: int
    used_bytes: int
    used_inodes: int


@dataclass(slots=True)
class TreeCheck:
    """A directory tree's totals as kept incrementally and as found by a walk, and how
    many of its directories' stats (or quota usages) the walk found wrong."""
    ino: int
    kept: Summary
    walked: Summary
    wrong: int = 0
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return not self.wrong and self.kept == self.walked
