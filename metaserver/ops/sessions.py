"""Client sessions: a lease a client (a metafs mount) renews, and what ends with it:
holds on inodes it has open (an open file whose last name goes stays, with nlink 0,
until released) and its locks (ops/locks.py). A session whose lease ran out is dead:
its locks stop counting at once, and maintenance (expire_sessions) or its own
close_session removes what it held."""

from __future__ import annotations

import errno

from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.schema import SESSION_ID_LEN

MAX_TTL_MS = 3_600_000


def check_session(session: bytes) -> bytes:
    if len(session) != SESSION_ID_LEN:
        raise FsError(errno.EINVAL, f"a session id is {SESSION_ID_LEN} bytes")
    return bytes(session)


def is_live(tx: MetaTx, session: bytes) -> bool:
    expiry = tx.session_expiry(session)
    return expiry is not None and expiry > tx.now


def require_live(tx: MetaTx, session: bytes) -> None:
    if not is_live(tx, check_session(session)):
        raise FsError(errno.ENOLCK, "the session is unknown or its lease ran out: "
                      "renew it (what it held is gone)")


def renew_session(tx: MetaTx, *, session: bytes, ttl_ms: int) -> None:
    """Start or extend `session`'s lease to `ttl_ms` from now."""
    check_session(session)
    if not 0 < ttl_ms <= MAX_TTL_MS:
        raise FsError(errno.EINVAL, f"session ttl must be 1..{MAX_TTL_MS} ms")
    tx.put_session(session, tx.now + ttl_ms * 1_000_000)


def close_session(tx: MetaTx, *, session: bytes) -> None:
    """End `session` now: drop its locks, release its holds, forget its lease."""
    end_session(tx, check_session(session))


def end_session(tx: MetaTx, session: bytes) -> None:
    for ino in tx.session_inos(session):
        for holder, owner, flock, _ in list(tx.locks(ino)):
            if holder == session:
                tx.put_locks(ino, session, owner, flock, [])
        release(tx, ino, session)
        tx.unmark_session_ino(session, ino)
    tx.del_session(session)


def hold_inode(tx: MetaTx, *, session: bytes, ino: int) -> None:
    """Keep inode `ino` while `session` lives, even once its last name is gone."""
    require_live(tx, session)
    tx.attr(ino)
    tx.put_hold(ino, session)
    tx.mark_session_ino(session, ino)


def release_inode(tx: MetaTx, *, session: bytes, ino: int) -> None:
    """`session` no longer holds `ino`; an inode without names nor live holders goes."""
    release(tx, ino, check_session(session))
    if not any(holder == session for holder, *_ in tx.locks(ino)):
        tx.unmark_session_ino(session, ino)


def release(tx: MetaTx, ino: int, session: bytes) -> None:
    tx.del_hold(ino, session)
    attrs = tx.attrs([ino])[0]
    if attrs is not None and attrs.nlink == 0 and not is_held(tx, ino, but=session):
        tx.drop_inode(attrs)


def is_held(tx: MetaTx, ino: int, but: bytes = b"", keys: list[bytes] | None = None) -> bool:
    """Whether a live session other than `but` holds `ino` open (`keys`: the inode's
    keys, when already read)."""
    return any(s != but and is_live(tx, s) for s in tx.holders(ino, keys))


def expire_sessions(tx: MetaTx, *, limit: int = 100) -> int:
    """End up to `limit` sessions whose lease ran out; returns how many."""
    expired = tx.sessions_expired(tx.now, limit)
    for session in expired:
        end_session(tx, session)
    return len(expired)
