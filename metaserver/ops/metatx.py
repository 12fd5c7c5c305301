"""MetaTx: typed access to the namespace inside one open engine transaction.

Operations read and write attrs, entries, links and chunks through this, never raw
keys, and get the shared checks (name rules, "is a directory", parent times) here.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from engines.contract import ENGINE_RESERVED_PREFIX, Txn
from metaserver import schema
from metaserver.errors import FsError, quote
from metaserver.types import NAME_MAX, ROOT_INO, Attr, Entry, FileType, Slice, Summary


@dataclass
class OpContext:
    """What an operation may know beyond its transaction."""
    now_ns: int
    alloc_ino: Callable[[], int]
    writer_id: int = 0
    delta_seq: Callable[[], int] = field(default_factory=lambda: itertools.count(1).__next__)
    # A create in a directory whose mtime is this recent leaves the parent unwritten, so
    # create storms in one directory do not all conflict on the parent's attr.
    dir_mtime_skip_ns: int = 100_000_000


def check_name(name: bytes) -> bytes:
    if not isinstance(name, bytes | bytearray) or not name:
        raise FsError(errno.EINVAL, "empty name")
    if b"/" in name or b"\0" in name:
        raise FsError(errno.EINVAL, "name contains '/' or NUL")
    if name in (b".", b".."):
        raise FsError(errno.EINVAL, "'.' and '..' cannot be created, removed or renamed")
    if len(name) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG, f"name longer than {NAME_MAX} bytes")
    return bytes(name)


class MetaTx:
    def __init__(self, txn: Txn, ctx: OpContext, read_only: bool = False) -> None:
        self.txn = txn
        self.ctx = ctx
        self.now = ctx.now_ns
        self._bytes_delta = 0
        self._inodes_delta = 0
        # Read-only: attrs are decoded once (a Batch of lookups checks the same
        # directory each time). Read operations never change the attrs they get.
        self._decoded: dict[int, Attr] | None = {} if read_only else None

    # --- inodes -------------------------------------------------------------------------
    def attr(self, ino: int) -> Attr:
        decoded = self._decoded
        if decoded is not None and ino in decoded:
            return decoded[ino]
        data = self.txn.get(schema.attr_key(ino)) if ino > 0 else None
        if data is None:
            raise FsError(errno.ENOENT, f"no inode {ino}")
        a = schema.decode_attr(ino, data)
        if decoded is not None:
            decoded[ino] = a
        return a

    def attrs(self, inos: list[int]) -> list[Attr | None]:
        datas = self.txn.get_many([schema.attr_key(i) for i in inos])
        return [None if d is None else schema.decode_attr(i, d) for i, d in zip(inos, datas)]

    def prefetch_attrs(self, inos: list[int]) -> None:
        """Read these attrs in one get_many and leave them undecoded: a read-only
        transaction keeps what get_many found, so later attr() calls take them from
        memory (one SQL round trip for a whole group instead of one per inode)."""
        self.txn.get_many([schema.attr_key(i) for i in inos])

    def dir_attr(self, ino: int) -> Attr:
        a = self.attr(ino)
        if not a.is_dir:
            raise FsError(errno.ENOTDIR, f"inode {ino} is not a directory")
        return a

    def put_attr(self, a: Attr) -> None:
        self.txn.put(schema.attr_key(a.ino), schema.encode_attr(a))

    def new_inode(self, type_: FileType, mode: int, uid: int, gid: int, parent: int,
                  nlink: int = 1, size: int = 0, rdev: int = 0) -> Attr:
        a = Attr(self.ctx.alloc_ino(), type_, mode & 0o7777, uid, gid, self.now, self.now,
                 self.now, nlink, size, rdev, parent)
        self.put_attr(a)
        self.account(0, 1)
        return a

    def inode_keys(self, ino: int) -> list[bytes]:
        """Every key of the inode (attr, links, chunks, target, xattrs, holds, locks)."""
        return [key for key, _ in self.txn.scan(*schema.inode_range(ino))]

    def drop_inode(self, a: Attr, keys: list[bytes] | None = None) -> None:
        """Delete every key of the inode (`keys`: inode_keys(), when already read)."""
        for key in self.inode_keys(a.ino) if keys is None else keys:
            self.txn.delete(key)
        self.account(-a.size if a.type == FileType.REGULAR else 0, -1)

    # --- directory entries --------------------------------------------------------------
    def dentry(self, parent: int, name: bytes) -> tuple[FileType, int] | None:
        data = self.txn.get(schema.dentry_key(parent, name))
        return None if data is None else schema.decode_dentry(data)

    def dentries(self, names: list[tuple[int, bytes]]) -> list[tuple[FileType, int] | None]:
        """dentry() of each (parent, name), read in one get_many."""
        datas = self.txn.get_many([schema.dentry_key(parent, name) for parent, name in names])
        return [None if d is None else schema.decode_dentry(d) for d in datas]

    def put_dentry(self, parent: int, name: bytes, type_: FileType, ino: int) -> None:
        self.txn.put(schema.dentry_key(parent, name), schema.encode_dentry(type_, ino))

    def del_dentry(self, parent: int, name: bytes) -> None:
        self.txn.delete(schema.dentry_key(parent, name))

    def entries(self, parent: int, after: bytes = b"", limit: int | None = None
                ) -> Iterator[tuple[bytes, FileType, int]]:
        start, end = schema.dentry_range(parent)
        if after:
            start = schema.dentry_key(parent, after) + b"\0"
        for key, value in self.txn.scan(start, end, limit=limit):
            type_, ino = schema.decode_dentry(value)
            yield schema.dentry_name(key), type_, ino

    def is_empty_dir(self, ino: int) -> bool:
        return next(self.entries(ino, limit=1), None) is None

    def child(self, parent: int, name: bytes) -> Entry:
        """The entry `name` in directory `parent`, with its attr (ENOENT if absent)."""
        self.dir_attr(parent)
        found = self.dentry(parent, name)
        if found is None:
            raise FsError(errno.ENOENT, f"no entry {quote(name)} in directory {parent}")
        type_, ino = found
        return Entry(name, ino, type_, self.attr(ino))

    def free_name(self, parent: int, name: bytes) -> Attr:
        """The parent's attr, after checking it is a directory without `name`."""
        check_name(name)
        pattr = self.dir_attr(parent)
        if self.dentry(parent, name) is not None:
            raise FsError(errno.EEXIST, f"{quote(name)} exists in directory {parent}")
        return pattr

    def touch_dir(self, pattr: Attr, *, force: bool = False) -> None:
        """Set a directory's mtime and ctime to now (skipped when already this recent)."""
        if not force and self.now - pattr.mtime_ns < self.ctx.dir_mtime_skip_ns \
                and pattr.mtime_ns <= self.now:
            return
        pattr.mtime_ns = pattr.ctime_ns = self.now
        self.put_attr(pattr)

    def is_ancestor(self, ino: int, of: int) -> bool:
        """True if directory `ino` is `of` or one of its ancestors (reads every hop,
        so a concurrent rename of any of them conflicts with this transaction)."""
        cur = of
        while True:
            if cur == ino:
                return True
            if cur == ROOT_INO:
                return False
            cur = self.attr(cur).parent

    # --- hard-link parents (non-directories) --------------------------------------------
    def link_parents(self, ino: int) -> dict[int, int]:
        start, end = schema.parent_range(ino)
        return {schema.parent_of_key(k): schema.decode_count(v) for k, v in self.txn.scan(start, end)}

    def add_link_parent(self, a: Attr, parent: int) -> None:
        """Record one more link of non-directory `a` from `parent` (a.nlink already +1)."""
        if a.nlink == 1:
            a.parent = parent
            return
        if a.parent:                         # going from one link to several
            self._set_link_count(a.ino, a.parent, 1)
            a.parent = 0
        key = schema.parent_key(a.ino, parent)
        self._set_link_count(a.ino, parent, schema.decode_count(self.txn.get(key)) + 1)

    def remove_link_parent(self, a: Attr, parent: int) -> None:
        """Forget one link of `a` from `parent` (a.nlink already -1)."""
        if a.parent:                         # it had exactly one link
            a.parent = 0
            return
        key = schema.parent_key(a.ino, parent)
        self._set_link_count(a.ino, parent, schema.decode_count(self.txn.get(key)) - 1)
        if a.nlink == 1:                     # back to one link: parent moves into the attr
            (only,) = [p for p, n in self.link_parents(a.ino).items() if n > 0]
            self.txn.delete(schema.parent_key(a.ino, only))
            a.parent = only

    def _set_link_count(self, ino: int, parent: int, count: int) -> None:
        key = schema.parent_key(ino, parent)
        if count > 0:
            self.txn.put(key, schema.encode_count(count))
        else:
            self.txn.delete(key)

    # --- chunks -------------------------------------------------------------------------
    def chunk(self, ino: int, index: int) -> list[Slice]:
        data = self.txn.get(schema.chunk_key(ino, index))
        return schema.decode_slices(data) if data else []

    def put_chunk(self, ino: int, index: int, slices: list[Slice]) -> None:
        key = schema.chunk_key(ino, index)
        if slices:
            self.txn.put(key, schema.encode_slices(slices))
        else:
            self.txn.delete(key)

    def append_slice(self, ino: int, index: int, s: Slice) -> None:
        """Add one slice at the end of a chunk (a write: later slices cover earlier ones)."""
        key = schema.chunk_key(ino, index)
        self.txn.put(key, (self.txn.get(key) or b"") + schema.encode_slice(s))

    def drop_chunks(self, ino: int, first: int) -> None:
        """Delete chunks `first` and later."""
        for key, _ in list(self.txn.scan(*schema.chunk_range(ino, first))):
            self.txn.delete(key)

    # --- symlink targets and xattrs -----------------------------------------------------
    def symlink_target(self, ino: int) -> bytes:
        return self.txn.get(schema.symlink_key(ino)) or b""

    def put_symlink_target(self, ino: int, target: bytes) -> None:
        self.txn.put(schema.symlink_key(ino), bytes(target))

    def xattr(self, ino: int, name: bytes) -> bytes | None:
        return self.txn.get(schema.xattr_key(ino, name))

    def xattr_names(self, ino: int) -> list[bytes]:
        return [schema.xattr_name(k) for k, _ in self.txn.scan(*schema.xattr_range(ino))]

    def put_xattr(self, ino: int, name: bytes, value: bytes) -> None:
        self.txn.put(schema.xattr_key(ino, name), bytes(value))

    def del_xattr(self, ino: int, name: bytes) -> None:
        self.txn.delete(schema.xattr_key(ino, name))

    # --- client sessions: leases, holds on open inodes, locks ----------------------------
    def session_expiry(self, session: bytes) -> int | None:
        data = self.txn.get(schema.session_key(session))
        return None if data is None else schema.decode_i64(data)

    def put_session(self, session: bytes, expires_ns: int) -> None:
        self.txn.put(schema.session_key(session), schema.encode_i64(expires_ns))

    def sessions_expired(self, now_ns: int, limit: int) -> list[bytes]:
        """Up to `limit` sessions whose lease ended before `now_ns`."""
        expired = []
        for key, value in self.txn.scan(*schema.session_range()):
            session, ino = schema.parse_session_key(key)
            if ino is None and schema.decode_i64(value) < now_ns:
                expired.append(session)
                if len(expired) == limit:
                    break
        return expired

    def session_inos(self, session: bytes) -> list[int]:
        """The inodes a session holds or locks."""
        return [schema.parse_session_key(k)[1]
                for k, _ in self.txn.scan(*schema.session_range(session))]

    def mark_session_ino(self, session: bytes, ino: int) -> None:
        self.txn.put(schema.session_key(session, ino), b"")

    def unmark_session_ino(self, session: bytes, ino: int) -> None:
        self.txn.delete(schema.session_key(session, ino))

    def del_session(self, session: bytes) -> None:
        self.txn.delete(schema.session_key(session))

    def holders(self, ino: int, keys: list[bytes] | None = None) -> list[bytes]:
        """The sessions holding inode `ino` open (from `keys`, its inode_keys(), when
        already read: an unlink reads them once to check for holds and to drop them)."""
        if keys is None:
            keys = [key for key, _ in self.txn.scan(*schema.hold_range(ino))]
        return [part.rest for part in map(schema.parse_inode_key, keys)
                if part.tag == schema.HOLD_TAG]

    def put_hold(self, ino: int, session: bytes) -> None:
        self.txn.put(schema.hold_key(ino, session), b"")

    def del_hold(self, ino: int, session: bytes) -> None:
        self.txn.delete(schema.hold_key(ino, session))

    def locks(self, ino: int) -> Iterator[tuple[bytes, int, bool, list[tuple[int, int, int, int]]]]:
        """(session, owner, flock, [(type, start, end, pid)]) of every lock owner of `ino`."""
        for key, value in self.txn.scan(*schema.lock_range(ino)):
            yield (*schema.parse_lock_key(key), schema.decode_locks(value))

    def put_locks(self, ino: int, session: bytes, owner: int, flock: bool,
                  locks: list[tuple[int, int, int, int]]) -> None:
        key = schema.lock_key(ino, session, owner, flock)
        if locks:
            self.txn.put(key, schema.encode_locks(locks))
        else:
            self.txn.delete(key)

    # --- counters, usage deltas, idempotency records ------------------------------------
    def counter(self, name: str) -> int:
        """A counter's value (0 when absent)."""
        return schema.decode_i64(self.txn.get(schema.counter_key(name)))

    def set_counter(self, name: str, value: int) -> None:
        self.txn.put(schema.counter_key(name), schema.encode_i64(value))

    def first_namespace_key(self) -> bytes | None:
        """Any namespace key (None: the namespace is empty)."""
        return next((k for k, _ in self.txn.scan(b"", ENGINE_RESERVED_PREFIX, limit=1)), None)

    def pending_usage(self) -> tuple[int, int]:
        """(bytes, inodes): the sum of every usage delta not folded yet."""
        nbytes = inodes = 0
        for _, value in self.txn.scan(schema.DELTA_PREFIX, schema.DELTA_END):
            more_bytes, more_inodes = schema.decode_delta(value)
            nbytes += more_bytes
            inodes += more_inodes
        return nbytes, inodes

    def take_deltas(self, writer: int, after: int, before: int, limit: int
                    ) -> Iterator[tuple[int, int, int]]:
        """Delete writer `writer`'s usage deltas numbered after..before-1 (at most
        `limit`), yielding each one's (number, bytes, inodes)."""
        for key, value in self.txn.scan(schema.delta_key(writer, after),
                                        schema.delta_key(writer, before), limit=limit):
            self.txn.delete(key)
            yield (schema.delta_number(key), *schema.decode_delta(value))

    # --- directory stats and quotas (ops/quota.py) ---------------------------------------
    def tree_stat(self, ino: int) -> Summary:
        """A directory's folded stats (pending deltas not included)."""
        return schema.decode_tree(self.txn.get(schema.tree_key(ino)))

    def put_tree_stat(self, ino: int, stat: Summary) -> None:
        self.txn.put(schema.tree_key(ino), schema.encode_tree(stat))

    def tree_deltas(self, ino: int) -> Iterator[tuple[bytes, Summary]]:
        """A directory's pending stats deltas, with their keys."""
        for key, value in self.txn.scan(*schema.tree_delta_range(ino)):
            yield key, schema.decode_tree(value)

    def tree_deltas_at(self, keys: list[bytes]) -> Iterator[tuple[bytes, int, Summary]]:
        """(key, directory, delta) of those of the delta keys `keys` that exist."""
        for key, value in zip(keys, self.txn.get_many(keys)):
            if value is not None:
                yield key, schema.tree_delta_ino(key), schema.decode_tree(value)

    def add_tree_delta(self, ino: int, delta: Summary) -> None:
        """Blind-write one delta to a directory's stats (never read by mutations, so it
        never conflicts)."""
        self.txn.put(schema.tree_delta_key(ino, self.ctx.writer_id, self.ctx.delta_seq()),
                     schema.encode_tree(delta))

    def del_key(self, key: bytes) -> None:
        """Delete a key found by one of the accessors above (a folded delta)."""
        self.txn.delete(key)

    def quota_usage(self, ino: int) -> Summary:
        return schema.decode_tree(self.txn.get(schema.usage_key(ino)))

    def put_quota_usage(self, ino: int, usage: Summary) -> None:
        self.txn.put(schema.usage_key(ino), schema.encode_tree(usage))

    def quotas_of(self, inos: list[int]) -> dict[int, tuple[int, int]]:
        """(max_bytes, max_inodes) of those of `inos` that have a quota."""
        datas = self.txn.get_many([schema.quota_key(i) for i in inos])
        return {i: schema.decode_quota(d) for i, d in zip(inos, datas) if d is not None}

    def quotas(self) -> Iterator[tuple[int, int, int]]:
        """(ino, max_bytes, max_inodes) of every quota, by inode."""
        for key, value in self.txn.scan(schema.QUOTA_PREFIX, schema.QUOTA_END):
            yield (schema.quota_ino(key), *schema.decode_quota(value))

    def put_quota(self, ino: int, max_bytes: int, max_inodes: int) -> None:
        self.txn.put(schema.quota_key(ino), schema.encode_quota(max_bytes, max_inodes))

    def del_quota(self, ino: int) -> None:
        self.txn.delete(schema.quota_key(ino))
        self.txn.delete(schema.usage_key(ino))

    def request_records(self, keys: list[bytes]) -> list[bytes | None]:
        return self.txn.get_many(keys)

    def del_request_record(self, key: bytes) -> None:
        self.txn.delete(key)

    # --- space accounting ---------------------------------------------------------------
    def account(self, nbytes: int, inodes: int) -> None:
        self._bytes_delta += nbytes
        self._inodes_delta += inodes

    def flush_accounting(self) -> None:
        """Blind-write this transaction's usage delta (never read, so never conflicts)."""
        if self._bytes_delta or self._inodes_delta:
            self.txn.put(schema.delta_key(self.ctx.writer_id, self.ctx.delta_seq()),
                         schema.encode_delta(self._bytes_delta, self._inodes_delta))
            self._bytes_delta = self._inodes_delta = 0
