"""flock(2) and POSIX byte-range locks, held in the server for client sessions and so
shared by every client of the namespace. An owner is (session, owner number); flock
and POSIX locks never conflict with each other (as on Linux). A lock of a dead
session (ops/sessions.py) no longer conflicts with anything.

set_lock never waits: a conflict is EACCES (fcntl(F_SETLK)'s answer; EAGAIN would
travel as "retry"), and a client that must wait (F_SETLKW, flock without LOCK_NB)
asks again."""

from __future__ import annotations

import errno

from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.ops.sessions import check_session, is_live, require_live

F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2          # Linux fcntl values
TO_EOF = 1 << 63                             # `end` of a lock to the end of the file

Lock = tuple[int, int, int, int]             # (type, start, end exclusive, pid)


def _check(type: int, start: int, end: int) -> int:
    """The range's end, with 0 meaning to the end of the file."""
    if type not in (F_RDLCK, F_WRLCK, F_UNLCK):
        raise FsError(errno.EINVAL, f"lock type {type} is not F_RDLCK, F_WRLCK or F_UNLCK")
    end = end or TO_EOF
    if not 0 <= start < end <= TO_EOF:
        raise FsError(errno.EINVAL, "lock range must have 0 <= start < end")
    return end


def _conflict(tx: MetaTx, ino: int, session: bytes, owner: int, flock: bool, type: int,
              start: int, end: int) -> Lock | None:
    live: dict[bytes, bool] = {}
    for holder, holder_owner, holder_flock, locks in tx.locks(ino):
        if holder_flock != flock or (holder, holder_owner) == (session, owner):
            continue
        if holder not in live:
            live[holder] = is_live(tx, holder)
        if not live[holder]:
            continue
        for lock in locks:
            lock_type, lock_start, lock_end, _ = lock
            if lock_start < end and start < lock_end and F_WRLCK in (type, lock_type):
                return lock
    return None


def _cut(locks: list[Lock], start: int, end: int) -> list[Lock]:
    """`locks` without bytes [start, end)."""
    kept = []
    for lock in locks:
        lock_type, lock_start, lock_end, pid = lock
        if lock_end <= start or lock_start >= end:
            kept.append(lock)
            continue
        if lock_start < start:
            kept.append((lock_type, lock_start, start, pid))
        if lock_end > end:
            kept.append((lock_type, end, lock_end, pid))
    return kept


def set_lock(tx: MetaTx, *, session: bytes, ino: int, owner: int, flock: bool, type: int,
             start: int, end: int, pid: int) -> None:
    """Lock (or with F_UNLCK unlock) bytes [start, end) of `ino` for (session, owner);
    a flock always covers the whole file. EACCES if a live owner's lock conflicts."""
    end = _check(type, start, end)
    require_live(tx, session)
    tx.attr(ino)
    if flock:
        start, end = 0, TO_EOF
    if type != F_UNLCK and _conflict(tx, ino, session, owner, flock, type, start, end):
        raise FsError(errno.EACCES, f"inode {ino} is locked by another owner")
    mine = next((locks for holder, holder_owner, holder_flock, locks in tx.locks(ino)
                 if (holder, holder_owner, holder_flock) == (session, owner, flock)), [])
    locks = _cut(mine, start, end)
    if type != F_UNLCK:
        locks.append((type, start, end, pid))
    tx.put_locks(ino, session, owner, flock, sorted(locks, key=lambda lock: lock[1]))
    tx.mark_session_ino(session, ino)


def get_lock(tx: MetaTx, *, session: bytes, ino: int, owner: int, flock: bool, type: int,
             start: int, end: int) -> dict:
    """The first live lock of another owner that a lock (type, start, end) would conflict
    with, or type F_UNLCK if none (fcntl(F_GETLK))."""
    end = _check(type, start, end)
    check_session(session)
    tx.attr(ino)
    found = _conflict(tx, ino, session, owner, flock, type, start, end)
    if found is None:
        return {"type": F_UNLCK}
    lock_type, lock_start, lock_end, pid = found
    return {"type": lock_type, "start": lock_start,
            "end": 0 if lock_end == TO_EOF else lock_end, "pid": pid}
