"""The metadata operations: each is one function over an open MetaTx, nothing more.

OPS maps an operation's wire name to its function, whether it mutates, and whether it
is an administrator's (quotas: a writer must not lift its own limits). The runner
owns transactions, retries and idempotency; operations never retry and never see grpc.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from metaserver.ops import (admin, attrs, chunks, create, locks, lookup, quota, remove,
                            rename, sessions, xattr)


@dataclass(frozen=True)
class Op:
    name: str
    fn: Callable
    mutating: bool
    admin: bool = False


def _ops(mutating: bool, admin: bool = False, **fns: Callable) -> dict[str, Op]:
    return {name: Op(name, fn, mutating, admin) for name, fn in fns.items()}


OPS: dict[str, Op] = {
    **_ops(False, lookup=lookup.lookup, getattr=lookup.getattr_, readlink=lookup.readlink,
           readdir=lookup.readdir, resolve=lookup.resolve, getxattr=xattr.getxattr,
           listxattr=xattr.listxattr, statfs=admin.statfs, read_chunk=chunks.read_chunk,
           get_lock=locks.get_lock, summary=quota.summary, get_quota=quota.get_quota,
           list_quotas=quota.list_quotas),
    **_ops(True, setattr=attrs.setattr_, create=create.create, mknod=create.mknod,
           mkdir=create.mkdir, symlink=create.symlink, link=create.link, unlink=remove.unlink,
           rmdir=remove.rmdir, rename=rename.rename, setxattr=xattr.setxattr,
           removexattr=xattr.removexattr, alloc_slice_ids=chunks.alloc_slice_ids,
           write_slice=chunks.write_slice, compact_chunk=chunks.compact_chunk,
           renew_session=sessions.renew_session, close_session=sessions.close_session,
           hold_inode=sessions.hold_inode, release_inode=sessions.release_inode,
           set_lock=locks.set_lock),
    **_ops(True, admin=True, set_quota=quota.set_quota, delete_quota=quota.delete_quota,
           check_tree=quota.check_tree),
}

# Internal operations the server runs for itself; not reachable from clients.
INTERNAL_OPS: dict[str, Op] = _ops(
    True, init_root=admin.init_root, reserve_ids=admin.reserve_ids,
    fold_usage=admin.fold_usage, expire_requests=admin.expire_requests,
    expire_sessions=sessions.expire_sessions, fold_tree_deltas=quota.fold_tree_deltas)
