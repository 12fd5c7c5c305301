"""The key schema and value encodings: the one place that says what is stored where.

Keys are order-preserving byte strings: integers are fixed-width big-endian, so a
range scan over `A<ino>D` returns a directory's entries sorted by name, and all keys
of one inode sit together.

| key                         | value                                                   |
|-----------------------------|---------------------------------------------------------|
| `A` ino:8 `I`               | attr, ATTR struct below (59 bytes)                      |
| `A` ino:8 `D` name          | dentry: type:1 ino:8                                    |
| `A` ino:8 `P` parent:8      | links from that parent: count:4 (non-dirs with nlink>1) |
| `A` ino:8 `C` index:4       | chunk: slices, 24 bytes each (SLICE struct), in order   |
| `A` ino:8 `S`               | symlink target                                          |
| `A` ino:8 `X` name          | xattr value                                             |
| `A` ino:8 `H` session:16    | (empty) client session `session` holds the inode open:  |
|                             | its last unlink leaves it (nlink 0) until released      |
| `A` ino:8 `K` session:16    | locks of one owner: msgpack [[type, start, end, pid]];  |
|   owner:8 flock:1           | flock 1 = flock(2), 0 = POSIX byte ranges               |
| `A` ino:8 `T`               | directory stats, folded: size:8 files:8 dirs:8 signed,  |
|                             | of the directory's own entries (ops/quota.py)           |
| `A` ino:8 `U`               | a quota'd directory's tree usage: size:8 files:8 dirs:8 |
|                             | of everything below it, updated in place                |
| `L` session:16              | client session lease: expires_ns:8 (ops/sessions.py)    |
| `L` session:16 ino:8        | (empty) the session holds or locks that inode           |
| `C` name                    | counter: value:8 signed (nextInode, nextSlice,          |
|                             | usedBytes, usedInodes, format, quotas: how many `Q`,    |
|                             | treeStats: 1 once every directory's stats are complete) |
| `U` writer:8 n:8            | statfs delta: bytes:8 inodes:8 signed; blind-written by |
|                             | mutations, folded into the counters by maintenance      |
| `Q` ino:8                   | directory quota: max_bytes:8 max_inodes:8 (0: no limit) |
| `W` ino:8 writer:8 n:8      | directory-stats delta of directory ino: size:8 files:8  |
|                             | dirs:8 signed; blind-written by mutations of its        |
|                             | entries, folded into its `T` key by maintenance         |
| `R` request-id              | idempotency: time_ns:8, op (length-prefixed), encoded   |
|                             | first result                                            |
| `\\xff...`                   | owned by the engine layer (change log: engines.contract;|
|                             | its headers: op, request id, calls — ChangeHeader)      |
| `\\xffE`                     | epoch:8 superseded_by:8 — this node's epoch as a        |
|                             | primary, and the newer epoch that fenced it (0: none);  |
|                             | every mutation reads it (metaserver.runner)             |
| `\\xffF`                     | follower's applied source position: epoch:8 seq:8,      |
|                             | written in the same transaction as what it counts       |
| `\\xffH` epoch:8             | lineage: where the log of an older epoch ended in this  |
|                             | node's history (metaserver.replication.Lineage)         |

Hard links: a file with one link keeps its parent in attr.parent; with more, parent
is 0 and `P` keys count links per parent (they sum to nlink).

Directory stats: a directory's `T` plus its pending `W` deltas count its own entries
(files, directories; a file with two names counts once per name) and the bytes of the
regular files they name; `metactl summary` adds them up over the directories of a tree.
A quota'd directory's `U` is the same count over its whole tree; quotas limit it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields, is_dataclass
from typing import NamedTuple

import msgpack

from metaserver.types import (Attr, CompactResult, DirPage, Entry, FileType, Quota, Slice,
                              StatFs, Summary, TreeCheck)

FORMAT_VERSION = 1
# The counter set once every directory's stats (`A ino T` plus deltas) are complete: at
# format, or by a check_tree repair from the root; namespaces made before directory
# stats were kept lack it (ops/quota.py refuses summaries there until then).
STATS_COUNTER = "treeStats"

_ATTR = struct.Struct(">BHIIqqqIQIQ")
_DENTRY = struct.Struct(">BQ")
_SLICE = struct.Struct(">IQIII")
_I64 = struct.Struct(">q")
_DELTA = struct.Struct(">qq")
_COUNT = struct.Struct(">I")
_TREE = struct.Struct(">qqq")
_QUOTA = struct.Struct(">QQ")

INODE_PREFIX = b"A"
COUNTER_PREFIX = b"C"
DELTA_PREFIX = b"U"
DELTA_END = b"V"
REQUEST_PREFIX = b"R"
REQUEST_END = b"S"
SESSION_PREFIX = b"L"
SESSION_END = b"M"
SESSION_ID_LEN = 16
QUOTA_PREFIX = b"Q"
QUOTA_END = b"R"
TREE_DELTA_PREFIX = b"W"
TREE_DELTA_END = b"X"


# The tag after `A` ino:8 says what an inode key holds.
ATTR_TAG, ENTRY_TAG, PARENT_TAG, CHUNK_TAG, SYMLINK_TAG, XATTR_TAG = \
    b"I", b"D", b"P", b"C", b"S", b"X"
HOLD_TAG, LOCK_TAG = b"H", b"K"       # client sessions' open-unlinked holds and locks
TREE_TAG, USAGE_TAG = b"T", b"U"      # a directory's stats, a quota'd one's tree usage
_TAGS = {FileType.DIRECTORY: frozenset({ATTR_TAG, XATTR_TAG, ENTRY_TAG, LOCK_TAG, TREE_TAG,
                                        USAGE_TAG}),
         FileType.REGULAR: frozenset({ATTR_TAG, XATTR_TAG, CHUNK_TAG, PARENT_TAG, HOLD_TAG,
                                      LOCK_TAG}),
         FileType.SYMLINK: frozenset({ATTR_TAG, XATTR_TAG, SYMLINK_TAG, PARENT_TAG})}
# fifos, devices, sockets
_OTHER_TAGS = frozenset({ATTR_TAG, XATTR_TAG, PARENT_TAG, HOLD_TAG, LOCK_TAG})


def allowed_tags(type_: FileType) -> frozenset[bytes]:
    """The key tags an inode of this type may have (fsck reports others, repair
    deletes them)."""
    return _TAGS.get(type_, _OTHER_TAGS)


class InodeKey(NamedTuple):
    """The parts of a key under INODE_PREFIX: `A` ino:8 tag:1 rest."""
    ino: int
    tag: bytes          # one of the *_TAG values; b"" in a key too short to have one
    rest: bytes         # after the tag: a name, a parent, a chunk index; b"" for an attr


def parse_inode_key(key: bytes) -> InodeKey:
    return InodeKey(int.from_bytes(key[1:9], "big"), key[9:10], key[10:])


def _ino(ino: int) -> bytes:
    return ino.to_bytes(8, "big")


def attr_key(ino: int) -> bytes:
    return INODE_PREFIX + _ino(ino) + ATTR_TAG


def dentry_key(parent: int, name: bytes) -> bytes:
    return INODE_PREFIX + _ino(parent) + ENTRY_TAG + name


def dentry_range(parent: int) -> tuple[bytes, bytes]:
    base = b"A" + _ino(parent)
    return base + b"D", base + b"E"


def parse_dentry_key(key: bytes) -> tuple[int, bytes] | None:
    """(parent, name) of a dentry key; None for any other key."""
    parts = parse_inode_key(key)
    if key[:1] == INODE_PREFIX and parts.tag == ENTRY_TAG and parts.rest:
        return parts.ino, parts.rest
    return None


def dentry_name(key: bytes) -> bytes:
    return key[10:]


def parent_key(ino: int, parent: int) -> bytes:
    return INODE_PREFIX + _ino(ino) + PARENT_TAG + _ino(parent)


def parent_range(ino: int) -> tuple[bytes, bytes]:
    base = b"A" + _ino(ino)
    return base + b"P", base + b"Q"


def parent_of_key(key: bytes) -> int:
    return int.from_bytes(key[10:18], "big")


def chunk_key(ino: int, index: int) -> bytes:
    return INODE_PREFIX + _ino(ino) + CHUNK_TAG + index.to_bytes(4, "big")


def chunk_range(ino: int, first: int = 0) -> tuple[bytes, bytes]:
    return chunk_key(ino, first), b"A" + _ino(ino) + b"D"


def symlink_key(ino: int) -> bytes:
    return INODE_PREFIX + _ino(ino) + SYMLINK_TAG


def xattr_key(ino: int, name: bytes) -> bytes:
    return INODE_PREFIX + _ino(ino) + XATTR_TAG + name


def xattr_range(ino: int) -> tuple[bytes, bytes]:
    base = b"A" + _ino(ino)
    return base + b"X", base + b"Y"


def xattr_name(key: bytes) -> bytes:
    return key[10:]


def inode_range(ino: int) -> tuple[bytes, bytes]:
    """Every key of one inode (attr, entries, links, chunks, target, xattrs)."""
    return b"A" + _ino(ino), b"A" + _ino(ino + 1)


def _tag_range(ino: int, tag: bytes) -> tuple[bytes, bytes]:
    """Every key of one inode with this tag."""
    return INODE_PREFIX + _ino(ino) + tag, INODE_PREFIX + _ino(ino) + bytes([tag[0] + 1])


def hold_key(ino: int, session: bytes) -> bytes:
    return INODE_PREFIX + _ino(ino) + HOLD_TAG + session


def hold_range(ino: int) -> tuple[bytes, bytes]:
    return _tag_range(ino, HOLD_TAG)


def lock_key(ino: int, session: bytes, owner: int, flock: bool) -> bytes:
    return INODE_PREFIX + _ino(ino) + LOCK_TAG + session + owner.to_bytes(8, "big") + \
        bytes([flock])


def lock_range(ino: int) -> tuple[bytes, bytes]:
    return _tag_range(ino, LOCK_TAG)


def parse_lock_key(key: bytes) -> tuple[bytes, int, bool]:
    """(session, owner, flock) of a lock key."""
    rest = key[10:]
    return rest[:SESSION_ID_LEN], int.from_bytes(rest[SESSION_ID_LEN:-1], "big"), \
        bool(rest[-1])


def session_key(session: bytes, ino: int | None = None) -> bytes:
    """A session's lease, or (with `ino`) its mark on an inode it holds or locks."""
    return SESSION_PREFIX + session + (b"" if ino is None else _ino(ino))


def session_range(session: bytes | None = None) -> tuple[bytes, bytes]:
    """Every session key, or one session's inode marks."""
    if session is None:
        return SESSION_PREFIX, SESSION_END
    return session_key(session, 0), session_key(session) + b"\xff" * 9


def parse_session_key(key: bytes) -> tuple[bytes, int | None]:
    """(session, ino or None for the lease itself)."""
    rest = key[1:]
    session, ino = rest[:SESSION_ID_LEN], rest[SESSION_ID_LEN:]
    return session, int.from_bytes(ino, "big") if ino else None


def encode_locks(locks: list[tuple[int, int, int, int]]) -> bytes:
    return msgpack.packb([list(lock) for lock in locks])


def decode_locks(data: bytes) -> list[tuple[int, int, int, int]]:
    return [tuple(lock) for lock in msgpack.unpackb(data)]


def counter_key(name: str) -> bytes:
    return b"C" + name.encode()


def delta_key(writer: int, n: int) -> bytes:
    return b"U" + writer.to_bytes(8, "big") + n.to_bytes(8, "big")


def delta_number(key: bytes) -> int:
    return int.from_bytes(key[9:17], "big")


def tree_key(ino: int) -> bytes:
    return INODE_PREFIX + _ino(ino) + TREE_TAG


def usage_key(ino: int) -> bytes:
    return INODE_PREFIX + _ino(ino) + USAGE_TAG


def tree_delta_key(ino: int, writer: int, n: int) -> bytes:
    return TREE_DELTA_PREFIX + _ino(ino) + writer.to_bytes(8, "big") + n.to_bytes(8, "big")


def tree_delta_range(ino: int) -> tuple[bytes, bytes]:
    return TREE_DELTA_PREFIX + _ino(ino), TREE_DELTA_PREFIX + _ino(ino + 1)


def tree_delta_ino(key: bytes) -> int:
    return int.from_bytes(key[1:9], "big")


def quota_key(ino: int) -> bytes:
    return QUOTA_PREFIX + _ino(ino)


def quota_ino(key: bytes) -> int:
    return int.from_bytes(key[1:9], "big")


def request_key(request_id: bytes) -> bytes:
    return b"R" + request_id


# --- values -----------------------------------------------------------------------------

def encode_attr(a: Attr) -> bytes:
    return _ATTR.pack(a.type, a.mode, a.uid, a.gid, a.atime_ns, a.mtime_ns, a.ctime_ns,
                      a.nlink, a.size, a.rdev, a.parent)


_FILE_TYPES = {t.value: t for t in FileType}


def _file_type(value: int) -> FileType:
    """FileType(value), without the Enum call's cost on every decoded attr and entry."""
    found = _FILE_TYPES.get(value)
    return FileType(value) if found is None else found   # the call names a bad value


def decode_attr(ino: int, data: bytes) -> Attr:
    t, mode, uid, gid, at, mt, ct, nlink, size, rdev, parent = _ATTR.unpack(data)
    return Attr(ino, _file_type(t), mode, uid, gid, at, mt, ct, nlink, size, rdev, parent)


def encode_dentry(type_: FileType, ino: int) -> bytes:
    return _DENTRY.pack(type_, ino)


def decode_dentry(data: bytes) -> tuple[FileType, int]:
    t, ino = _DENTRY.unpack(data)
    return _file_type(t), ino


def encode_slices(slices: list[Slice]) -> bytes:
    return b"".join(_SLICE.pack(s.pos, s.id, s.size, s.off, s.len) for s in slices)


def encode_slice(s: Slice) -> bytes:
    return _SLICE.pack(s.pos, s.id, s.size, s.off, s.len)


def decode_slices(data: bytes) -> list[Slice]:
    return [Slice(*fields_) for fields_ in _SLICE.iter_unpack(data)]


def encode_i64(value: int) -> bytes:
    return _I64.pack(value)


def decode_i64(data: bytes | None) -> int:
    return _I64.unpack(data)[0] if data else 0


def encode_delta(nbytes: int, inodes: int) -> bytes:
    return _DELTA.pack(nbytes, inodes)


def decode_delta(data: bytes) -> tuple[int, int]:
    return _DELTA.unpack(data)


def encode_tree(stat: Summary) -> bytes:
    return _TREE.pack(stat.size, stat.files, stat.dirs)


def decode_tree(data: bytes | None) -> Summary:
    if not data:
        return Summary()
    size, files, dirs = _TREE.unpack(data)
    return Summary(dirs, files, size)


def encode_quota(max_bytes: int, max_inodes: int) -> bytes:
    return _QUOTA.pack(max_bytes, max_inodes)


def decode_quota(data: bytes) -> tuple[int, int]:
    return _QUOTA.unpack(data)


def encode_count(n: int) -> bytes:
    return _COUNT.pack(n)


def decode_count(data: bytes | None) -> int:
    return _COUNT.unpack(data)[0] if data else 0


# --- operation results and arguments: a version-independent encoding --------------------
# msgpack (the same bytes on every Python version; records are dumped and replicated),
# dataclasses as an extension type tagged with their name, enums as their integers.

_VALUE_TYPES = {cls.__name__: cls for cls in (Attr, Entry, DirPage, StatFs, Slice, CompactResult,
                                               Summary, Quota, TreeCheck)}
_DATACLASS_EXT = 1
_ENUM_FIELDS = {(Attr, 1), (Entry, 2)}     # (class, field index) holding a FileType
_TIME = struct.Struct(">q")
_INO_TYPE = struct.Struct(">QB")


def _pack_default(value):
    if is_dataclass(value):
        fields_ = [getattr(value, f.name) for f in fields(value)]
        return msgpack.ExtType(_DATACLASS_EXT, encode_value([type(value).__name__, *fields_]))
    raise TypeError(f"cannot encode a {type(value).__name__}")


def _unpack_ext(code: int, data: bytes):
    if code != _DATACLASS_EXT:
        raise ValueError(f"unknown encoded value type {code}")
    name, *args = decode_value(data)
    cls = _VALUE_TYPES[name]
    for owner, index in _ENUM_FIELDS:
        if cls is owner:
            args[index] = FileType(args[index])
    return cls(*args)


def encode_value(value) -> bytes:
    """Any result or argument of an operation (None, ints, bytes, str, lists, dicts,
    the dataclasses of metaserver.types) as bytes."""
    return msgpack.packb(value, default=_pack_default, use_bin_type=True)


def decode_value(data: bytes):
    return msgpack.unpackb(data, ext_hook=_unpack_ext, raw=False, strict_map_key=False)


# --- change record headers ------------------------------------------------------------------

@dataclass(frozen=True)
class ChangeHeader:
    """What a change record says about the transaction that wrote it: the operation (an
    op name, "atomic_batch", or the engine-side "load"/"apply"/... ), its request id, and
    the calls it ran as (op, arguments) pairs, so a record can be listed and re-run."""
    op: str
    request_id: bytes
    calls: list[tuple[str, dict]]


def change_header(op: str, request_id: bytes = b"",
                  calls: list[tuple[str, dict]] | None = None) -> bytes:
    return encode_value([op, request_id, [[name, args] for name, args in calls or ()]])


def decode_change_header(data: bytes) -> ChangeHeader:
    op, request_id, calls = decode_value(data)
    return ChangeHeader(op, request_id, [(name, args) for name, args in calls])


# --- stored first results, for idempotent retries -----------------------------------------
# time_ns:8, op name length:1, op name, then the result: Entry, Attr and None (most
# mutations) have compact struct encodings; anything else is encode_value's.

def encode_result(time_ns: int, op: str, result) -> bytes:
    name = op.encode()
    return _TIME.pack(time_ns) + bytes([len(name)]) + name + _encode_result_value(result)


def _encode_result_value(value) -> bytes:
    kind = type(value)
    if value is None:
        return b"N"
    if kind is Attr:
        return b"A" + _ino(value.ino) + encode_attr(value)
    if kind is Entry and value.attr is not None:
        return (b"E" + _INO_TYPE.pack(value.ino, value.type) + encode_attr(value.attr)
                + value.name)
    if kind is list:      # an atomic batch's results
        parts = [_encode_result_value(v) for v in value]
        return b"L" + b"".join(_COUNT.pack(len(p)) + p for p in parts)
    return b"V" + encode_value(value)


def _result_body(data: bytes) -> int:
    """Offset of the encoded result, after the time and the op name."""
    return _TIME.size + 1 + data[_TIME.size]


def result_op(data: bytes) -> str:
    return data[_TIME.size + 1:_result_body(data)].decode()


def decode_result(data: bytes):
    return _decode_result_value(memoryview(data)[_result_body(data):])


def _decode_result_value(data: memoryview):
    tag, body = bytes(data[:1]), data[1:]
    if tag == b"N":
        return None
    if tag == b"A":
        return decode_attr(int.from_bytes(body[:8], "big"), bytes(body[8:]))
    if tag == b"E":
        ino, type_ = _INO_TYPE.unpack_from(body)
        attr_end = _INO_TYPE.size + _ATTR.size
        return Entry(bytes(body[attr_end:]), ino, FileType(type_),
                     decode_attr(ino, bytes(body[_INO_TYPE.size:attr_end])))
    if tag == b"L":
        values, pos = [], 0
        while pos < len(body):
            (size,) = _COUNT.unpack_from(body, pos)
            values.append(_decode_result_value(body[pos + 4:pos + 4 + size]))
            pos += 4 + size
        return values
    return decode_value(bytes(body))


def result_time(data: bytes) -> int:
    return _TIME.unpack_from(data)[0]


# --- replication bookkeeping (engine-reserved keys) -----------------------------------------

EPOCH_KEY = b"\xffE"
POSITION_KEY = b"\xffF"
HISTORY_PREFIX = b"\xffH"
HISTORY_END = b"\xffI"
_EPOCH = struct.Struct(">QQ")


@dataclass(frozen=True)
class EpochState:
    """A node's epoch as a primary, and the newer epoch that superseded it (0: none)."""
    epoch: int = 1
    superseded_by: int = 0

    @property
    def fenced(self) -> bool:
        return self.superseded_by > self.epoch


def encode_epoch(state: EpochState) -> bytes:
    return _EPOCH.pack(state.epoch, state.superseded_by)


def decode_epoch(data: bytes | None) -> EpochState:
    if data is None:
        return EpochState()
    if len(data) == 9:            # epoch:8 fenced:1, before superseded_by was kept
        epoch, fenced = struct.unpack(">QB", data)
        return EpochState(epoch, epoch + 1 if fenced else 0)
    return EpochState(*_EPOCH.unpack(data))


def history_key(epoch: int) -> bytes:
    return HISTORY_PREFIX + epoch.to_bytes(8, "big")
