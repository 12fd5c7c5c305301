"""The wire side of the client: how each operation is sent and how its reply becomes
one of the domain values of metaserver.types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from metaserver.types import Attr, CompactResult, DirPage, Entry, FileType, Slice, StatFs
from metaserver.v1 import metadata_pb2 as pb


def attr(m: pb.Attr) -> Attr:
    return Attr(m.ino, FileType(m.type), m.mode, m.uid, m.gid, m.atime_ns, m.mtime_ns,
                m.ctime_ns, m.nlink, m.size, m.rdev, m.parent)


def entry(m: pb.Entry) -> Entry:
    return Entry(m.name, m.ino, FileType(m.type), attr(m.attr) if m.HasField("attr") else None)


def slice_(m: pb.Slice) -> Slice:
    return Slice(m.pos, m.id, m.size, m.off, m.len)


def slice_to_pb(s: Slice) -> pb.Slice:
    return pb.Slice(pos=s.pos, id=s.id, size=s.size, off=s.off, len=s.len)


def dir_page(m: pb.ReadDirReply) -> DirPage:
    return DirPage([entry(e) for e in m.entries], m.cursor)


def statfs(m: pb.StatFsReply) -> StatFs:
    # avail_* are derived properties of StatFs; the reply's copies are not needed.
    return StatFs(m.total_bytes, m.used_bytes, m.total_inodes, m.used_inodes)


def compacted(m: pb.CompactChunkReply) -> CompactResult:
    return CompactResult([slice_(s) for s in m.slices], list(m.released))


def _none(_m) -> None:
    return None


@dataclass(frozen=True)
class Call:
    """One operation: its RPC on the stub, its request message, what its reply means."""
    rpc: str
    request: type
    result: Callable
    mutating: bool


# Keyed by the operation's field name in `Operation`, so a batch queues it by that name
# and reads its `OperationResult` (the same reply message) with the same converter.
CALLS: dict[str, Call] = {
    "lookup": Call("Lookup", pb.LookupRequest, entry, False),
    "getattr": Call("GetAttr", pb.GetAttrRequest, attr, False),
    "setattr": Call("SetAttr", pb.SetAttrRequest, attr, True),
    "mknod": Call("Mknod", pb.MknodRequest, entry, True),
    "create": Call("Create", pb.CreateRequest, entry, True),
    "mkdir": Call("Mkdir", pb.MkdirRequest, entry, True),
    "symlink": Call("Symlink", pb.SymlinkRequest, entry, True),
    "readlink": Call("ReadLink", pb.ReadLinkRequest, lambda m: m.target, False),
    "link": Call("Link", pb.LinkRequest, entry, True),
    "unlink": Call("Unlink", pb.UnlinkRequest, _none, True),
    "rmdir": Call("Rmdir", pb.RmdirRequest, _none, True),
    "rename": Call("Rename", pb.RenameRequest, entry, True),
    "readdir": Call("ReadDir", pb.ReadDirRequest, dir_page, False),
    "getxattr": Call("GetXattr", pb.GetXattrRequest, lambda m: m.value, False),
    "setxattr": Call("SetXattr", pb.SetXattrRequest, _none, True),
    "listxattr": Call("ListXattr", pb.ListXattrRequest, lambda m: list(m.names), False),
    "removexattr": Call("RemoveXattr", pb.RemoveXattrRequest, _none, True),
    "statfs": Call("StatFs", pb.StatFsRequest, statfs, False),
    "resolve": Call("Resolve", pb.ResolveRequest, entry, False),
    "alloc_slice_ids": Call("AllocSliceIds", pb.AllocSliceIdsRequest, lambda m: m.first, True),
    "write_slice": Call("WriteSlice", pb.WriteSliceRequest, attr, True),
    "read_chunk": Call("ReadChunk", pb.ReadChunkRequest, lambda m: [slice_(s) for s in m.slices],
                       False),
    "compact_chunk": Call("CompactChunk", pb.CompactChunkRequest, compacted, True),
    "renew_session": Call("RenewSession", pb.RenewSessionRequest, _none, True),
    "close_session": Call("CloseSession", pb.CloseSessionRequest, _none, True),
    "hold_inode": Call("HoldInode", pb.HoldInodeRequest, _none, True),
    "release_inode": Call("ReleaseInode", pb.ReleaseInodeRequest, _none, True),
    "set_lock": Call("SetLock", pb.SetLockRequest, _none, True),
    "get_lock": Call("GetLock", pb.GetLockRequest,
                     lambda m: (m.type, m.start, m.end, m.pid), False),
}
