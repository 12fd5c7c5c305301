"""The chunk map: slice-id allocation, writing and reading a chunk's slices, compaction.

A file is cut into CHUNK_SIZE chunks; each chunk holds an append-only list of slices
(later ones win where they overlap). Compaction rewrites the list as the minimal set
of visible fragments, without moving data, and reports slices no longer referenced.
"""

from __future__ import annotations

import errno

from metaserver.errors import FsError
from metaserver.ops.metatx import MetaTx
from metaserver.ops.quota import TreeChange
from metaserver.types import CHUNK_SIZE, MAX_FILE_SIZE, Attr, CompactResult, FileType, Slice

SLICE_ID_BATCH_MAX = 1 << 20
CHUNK_INDEX_MAX = MAX_FILE_SIZE // CHUNK_SIZE


def alloc_slice_ids(tx: MetaTx, *, count: int) -> int:
    """Reserve `count` consecutive slice ids; returns the first."""
    if not 0 < count <= SLICE_ID_BATCH_MAX:
        raise FsError(errno.EINVAL, f"slice id count must be 1..{SLICE_ID_BATCH_MAX}")
    first = tx.counter("nextSlice") or 1
    tx.set_counter("nextSlice", first + count)
    return first


def _file(tx: MetaTx, ino: int) -> Attr:
    a = tx.attr(ino)
    if a.is_dir:
        raise FsError(errno.EISDIR, f"inode {ino} is a directory")
    if a.type != FileType.REGULAR:
        raise FsError(errno.EINVAL, f"inode {ino} is not a regular file")
    return a


def _check_index(index: int) -> None:
    if not 0 <= index < CHUNK_INDEX_MAX:
        raise FsError(errno.EFBIG, f"chunk index {index} out of range")


def write_slice(tx: MetaTx, *, ino: int, index: int, slice: Slice) -> Attr:
    _check_index(index)
    s = slice
    if s.len <= 0 or s.pos < 0 or s.off < 0 or s.pos + s.len > CHUNK_SIZE:
        raise FsError(errno.EINVAL, "slice must have len > 0 and fit in its chunk")
    if s.id <= 0 or s.off + s.len > s.size:
        raise FsError(errno.EINVAL, "slice must name an object id and lie inside it")
    a = _file(tx, ino)
    tx.append_slice(ino, index, s)
    end = index * CHUNK_SIZE + s.pos + s.len
    if end > a.size:
        TreeChange(tx).add_file_size(a, end - a.size).apply()
        tx.account(end - a.size, 0)
        a.size = end
    a.mtime_ns = a.ctime_ns = tx.now
    tx.put_attr(a)
    return a


def read_chunk(tx: MetaTx, *, ino: int, index: int) -> list[Slice]:
    _check_index(index)
    _file(tx, ino)
    return tx.chunk(ino, index)


def compact_chunk(tx: MetaTx, *, ino: int, index: int) -> CompactResult:
    _check_index(index)
    _file(tx, ino)
    before = tx.chunk(ino, index)
    after = visible_fragments(before)
    tx.put_chunk(ino, index, after)
    kept = {s.id for s in after}
    released = sorted({s.id for s in before if s.id and s.id not in kept})
    return CompactResult(after, released)


def visible_fragments(slices: list[Slice]) -> list[Slice]:
    """What a reader sees, as non-overlapping fragments in position order (holes dropped)."""
    frags: list[Slice] = []           # sorted, non-overlapping
    for s in slices:
        lo, hi = s.pos, s.pos + s.len
        kept: list[Slice] = []
        for f in frags:
            f_lo, f_hi = f.pos, f.pos + f.len
            if f_hi <= lo or f_lo >= hi:
                kept.append(f)
                continue
            if f_lo < lo:
                kept.append(Slice(f_lo, f.id, f.size, f.off, lo - f_lo))
            if f_hi > hi:
                kept.append(Slice(hi, f.id, f.size, f.off + (hi - f_lo), f_hi - hi))
        kept.append(Slice(lo, s.id, s.size, s.off, s.len))
        frags = sorted(kept, key=lambda f: f.pos)
    merged: list[Slice] = []
    for f in frags:
        if f.id == 0:
            continue
        if merged:
            m = merged[-1]
            if m.id == f.id and m.pos + m.len == f.pos and m.off + m.len == f.off:
                m.len += f.len
                continue
        merged.append(Slice(f.pos, f.id, f.size, f.off, f.len))
    return merged
