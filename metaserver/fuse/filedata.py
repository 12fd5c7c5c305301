"""File bytes over the chunk map: a write becomes one object per chunk it touches,
named by a slice id from AllocSliceIds and appended to that chunk with WriteSlice; a
read paints a chunk's slices in write order (later ones win, id 0 reads as zeros).

Every object belongs to exactly one chunk, so when compaction reports slice ids a
chunk no longer references, their objects can be deleted.
"""

from __future__ import annotations

import errno
import threading
from collections import Counter

from metaserver.client import Client
from metaserver.fuse.objects import ObjectStore
from metaserver.types import CHUNK_SIZE, Attr, Slice

SLICE_ID_BATCH = 256
COMPACT_AFTER_WRITES = 64      # writes into one chunk by this mount before compacting it


class SliceIds:
    """Slice ids reserved from the server a batch at a time, handed out one by one."""

    def __init__(self, client: Client, batch: int = SLICE_ID_BATCH) -> None:
        self.client = client
        self.batch = batch
        self._next = self._end = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if self._next == self._end:
                self._next = self.client.alloc_slice_ids(self.batch)
                self._end = self._next + self.batch
            self._next += 1
            return self._next - 1


def chunk_pieces(offset: int, length: int):
    """(chunk index, position in the chunk, start in the buffer, length) of each chunk
    that bytes [offset, offset+length) touch."""
    done = 0
    while done < length:
        index, pos = divmod(offset + done, CHUNK_SIZE)
        n = min(length - done, CHUNK_SIZE - pos)
        yield index, pos, done, n
        done += n


class FileData:
    def __init__(self, client: Client, store: ObjectStore) -> None:
        self.client = client
        self.store = store
        self.slice_ids = SliceIds(client)
        self._writes: Counter[tuple[int, int]] = Counter()
        self._lock = threading.Lock()

    def write(self, ino: int, offset: int, data: bytes) -> Attr | None:
        """Store `data` at `offset` of file `ino`; returns its attributes after."""
        attr = None
        for index, pos, start, n in chunk_pieces(offset, len(data)):
            object_id = self.slice_ids.take()
            self.store.put(object_id, data[start:start + n])
            attr = self.client.write_slice(ino, index, Slice(pos, object_id, n, 0, n))
            self._maybe_compact(ino, index)
        return attr

    def _maybe_compact(self, ino: int, index: int) -> None:
        with self._lock:
            self._writes[ino, index] += 1
            if self._writes[ino, index] < COMPACT_AFTER_WRITES:
                return
            del self._writes[ino, index]
        for object_id in self.client.compact_chunk(ino, index).released:
            self.store.delete(object_id)

    def read(self, ino: int, offset: int, size: int, file_size: int) -> bytes:
        end = min(offset + size, file_size)
        if end <= offset:
            return b""
        out = bytearray(end - offset)
        for index, pos, start, n in chunk_pieces(offset, end - offset):
            out[start:start + n] = self._read_chunk(ino, index, pos, n)
        return bytes(out)

    def _read_chunk(self, ino: int, index: int, lo: int, length: int) -> bytes:
        # A compaction on another mount may delete an object after we read the map:
        # read the map once more before calling the data lost.
        try:
            return self._paint(self.client.read_chunk(ino, index), lo, length)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
        return self._paint(self.client.read_chunk(ino, index), lo, length)

    def _paint(self, slices: list[Slice], lo: int, length: int) -> bytes:
        hi = lo + length
        out = bytearray(length)
        for s in slices:
            a, b = max(s.pos, lo), min(s.pos + s.len, hi)
            if a >= b:
                continue
            if s.id == 0:
                out[a - lo:b - lo] = bytes(b - a)
            else:
                out[a - lo:b - lo] = self.store.read(s.id, s.off + (a - s.pos), b - a)
        return bytes(out)
