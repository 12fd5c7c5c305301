"""Encoding of change records: one per committed mutating transaction.

A record carries the commit sequence, the namespace's header (operation name and
request id, opaque here) and the transaction's full write set, so a follower can
apply exactly the source transaction's writes, atomically, in sequence order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_HEAD = struct.Struct(">QII")      # seq, header length, number of writes
_WRITE = struct.Struct(">HI")     # key length, value length (DELETED for a delete)
DELETED = 0xFFFFFFFF


@dataclass(frozen=True)
class ChangeRecord:
    seq: int
    header: bytes
    writes: tuple[tuple[bytes, bytes | None], ...]


def encode(seq: int, header: bytes, writes: dict[bytes, bytes | None]) -> bytes:
    parts = [_HEAD.pack(seq, len(header), len(writes)), header]
    for key, value in sorted(writes.items()):
        if value is None:
            parts += [_WRITE.pack(len(key), DELETED), key]
        else:
            parts += [_WRITE.pack(len(key), len(value)), key, value]
    return b"".join(parts)


def decode(data: bytes) -> ChangeRecord:
    seq, header_len, count = _HEAD.unpack_from(data, 0)
    pos = _HEAD.size
    header = data[pos:pos + header_len]
    pos += header_len
    writes = []
    for _ in range(count):
        key_len, value_len = _WRITE.unpack_from(data, pos)
        pos += _WRITE.size
        key = data[pos:pos + key_len]
        pos += key_len
        if value_len == DELETED:
            writes.append((key, None))
        else:
            writes.append((key, data[pos:pos + value_len]))
            pos += value_len
    return ChangeRecord(seq, header, tuple(writes))
