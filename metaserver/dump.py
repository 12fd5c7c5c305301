"""dump and load: a whole namespace to a self-checking file and back, streaming both ways.

This is how a namespace moves between engines (RocksDB -> MariaDB -> ...) and how it is
backed up. `dump` writes one point-in-time scan (Engine.snapshot_scan) of the namespace
keyspace, everything below the engine-reserved prefix b"\\xff": attrs, entries, link
parents, chunks, symlink targets, xattrs, counters, usage deltas, and the idempotency
records `R…` (so a client retrying a request across a migration still gets its first
result; they expire on the new engine as on the old). The change log is the engine's own
and is not copied: the header records the source's change sequence the dump is
consistent with (the state after change records 1..seq), where a follower would resume.

File format, version 1 (integers big-endian):

    header   magic "\\x89MSDUMP\\n" (8 bytes; the high byte and the newline catch text-mode
             copies), version u16, JSON length u32, JSON (UTF-8): format, seq, source
             (the engine kind, never its URL: no credentials), created (UTC, ISO 8601),
             data_format (schema.FORMAT_VERSION), compression ("gzip" or "none")
    body     a gzip stream (or plain bytes) of
               blocks   payload length u32, CRC-32 of the payload u32, payload: records
                        key length u32, value length u32, key, value; keys ascending,
                        a record never spans blocks (about 1 MiB per block)
               end      an empty block: u32 0, u32 0
               trailer  records u64, key+value bytes u64, SHA-256 (32 bytes) of the
                        header and every payload in order

Memory is constant both ways: a block at a time. `load` fills an *empty* engine (none of
its namespace keys exist; a fresh engine is empty until a Runner formats it, so load
before any server runs on it) through the ordinary contract, in transactions of at most
LOAD_BATCH_KEYS keys / LOAD_BATCH_BYTES bytes whose change records carry the header of
operation "load". A seekable input is verified to its trailer before the first write, so
a damaged file changes nothing. From a pipe, blocks are loaded as their CRCs check; a
damaged or truncated file stops the load at the damage with an error that says how much
was loaded, and that target is to be discarded (load refuses it from then on).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO
from urllib.parse import urlsplit

from engines import transactional
from engines.contract import CHANGELOG_END, ENGINE_RESERVED_PREFIX, Engine, EngineError, Txn
from metaserver import schema
from metaserver.types import ROOT_INO

MAGIC = b"\x89MSDUMP\n"
VERSION = 1
NAMESPACE = (b"", ENGINE_RESERVED_PREFIX)
BLOCK_BYTES = 1 << 20
MAX_BLOCK = 64 << 20            # bounds what a corrupt length field can make us read
MAX_HEADER = 64 << 10
LOAD_BATCH_KEYS = 10_000         # a commit (and its log sync) per 10k keys
LOAD_BATCH_BYTES = 1 << 20

_PREAMBLE = struct.Struct(">8sHI")      # magic, version, JSON length
_BLOCK = struct.Struct(">II")           # payload length, CRC-32
_RECORD = struct.Struct(">II")          # key length, value length
_TRAILER = struct.Struct(">QQ32s")      # records, key+value bytes, SHA-256
_GZIP = 31                              # zlib wbits for a gzip container
_READ_PIECE = 256 << 10
LOAD_HEADER = schema.change_header("load")


class DumpError(Exception):
    """The file is not a complete, intact dump, or cannot be loaded where asked."""


class TargetNotEmpty(DumpError):
    """load was pointed at an engine that already holds a namespace."""


@dataclass(frozen=True)
class DumpInfo:
    """What a dump's header says."""
    seq: int
    source: str
    created: str
    data_format: int
    compression: str
    rollback: dict | None = None     # a rollback file's description (metaserver.rollback)


@dataclass(frozen=True)
class DumpSummary:
    keys: int
    bytes: int          # keys and values
    file_bytes: int
    seq: int            # the source's change sequence the dump is consistent with
    seconds: float

    def __str__(self) -> str:
        return (f"dumped {self.keys} keys ({_mb(self.bytes)}, file {_mb(self.file_bytes)}) "
                f"at seq {self.seq} in {self.seconds:.2f} s")


@dataclass(frozen=True)
class LoadSummary:
    keys: int
    bytes: int
    transactions: int
    source_seq: int     # the dumped engine's change sequence (DumpInfo.seq)
    source: str
    seq: int            # this engine's change sequence after the load
    seconds: float

    def __str__(self) -> str:
        return (f"loaded {self.keys} keys ({_mb(self.bytes)}) in {self.transactions} "
                f"transactions in {self.seconds:.2f} s; source seq {self.source_seq} "
                f"({self.source}), now at seq {self.seq}")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# --- dump ---------------------------------------------------------------------------------

def dump(engine: Engine, out: BinaryIO, *, compress: bool = True,
         rollback: dict | None = None,
         then: Callable[[], Iterable[tuple[bytes, bytes]]] = tuple) -> DumpSummary:
    """Write a consistent snapshot of the engine's whole namespace to `out`; a rollback
    file adds its description and, after the namespace, the pairs `then()` gives (change
    records, keys under the engine-reserved prefix, ascending)."""
    started = time.monotonic()
    seq, pairs = engine.snapshot_scan(*NAMESPACE)
    try:
        header = _encode_header(DumpInfo(
            seq=seq, source=urlsplit(engine.url).scheme,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            data_format=schema.FORMAT_VERSION, compression="gzip" if compress else "none",
            rollback=rollback))
        out.write(header)
        body = _BodyWriter(out, compress, hashlib.sha256(header))
        keys = nbytes = 0
        for key, value in itertools.chain(pairs, _lazily(then)):
            body.add(key, value)
            keys += 1
            nbytes += len(key) + len(value)
        body.finish(keys, nbytes)
    finally:
        close = getattr(pairs, "close", None)   # a generator holding a connection
        if close is not None:
            close()
    return DumpSummary(keys, nbytes, len(header) + body.file_bytes, seq,
                       time.monotonic() - started)


def _lazily(make: Callable[[], Iterable[tuple[bytes, bytes]]]) -> Iterator[tuple[bytes, bytes]]:
    yield from make()


def _encode_header(info: DumpInfo) -> bytes:
    fields = {"format": "metaserver-dump", "seq": info.seq, "source": info.source,
              "created": info.created, "data_format": info.data_format,
              "compression": info.compression}
    if info.rollback is not None:
        fields["rollback"] = info.rollback
    text = json.dumps(fields).encode()
    return _PREAMBLE.pack(MAGIC, VERSION, len(text)) + text


class _BodyWriter:
    """Groups records into checksummed blocks and writes them, compressed or not."""

    def __init__(self, out: BinaryIO, compress: bool, digest) -> None:
        self._out = out
        self._zip = zlib.compressobj(1, zlib.DEFLATED, _GZIP) if compress else None
        self._digest = digest
        self._parts: list[bytes] = []
        self._size = 0
        self.file_bytes = 0

    def add(self, key: bytes, value: bytes) -> None:
        record = _RECORD.size + len(key) + len(value)
        if not key or record > MAX_BLOCK:
            raise DumpError(f"key {key[:80]!r} ({record} bytes) cannot be dumped")
        if self._size + record > BLOCK_BYTES:
            self._flush_block()
        self._parts += (_RECORD.pack(len(key), len(value)), key, value)
        self._size += record

    def finish(self, keys: int, nbytes: int) -> None:
        self._flush_block()
        self._write(_BLOCK.pack(0, 0) + _TRAILER.pack(keys, nbytes, self._digest.digest()))
        if self._zip is not None:
            tail = self._zip.flush()
            self._out.write(tail)
            self.file_bytes += len(tail)
        self._out.flush()

    def _flush_block(self) -> None:
        if not self._parts:
            return
        payload = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._digest.update(payload)
        self._write(_BLOCK.pack(len(payload), zlib.crc32(payload)))
        self._write(payload)

    def _write(self, data: bytes) -> None:
        if self._zip is not None:
            data = self._zip.compress(data)
        if data:
            self._out.write(data)
            self.file_bytes += len(data)


# --- reading --------------------------------------------------------------------------------

class DumpReader:
    """A dump being read: `info` from its header, then `records()`, once, which checks
    every block's CRC before yielding its records and the trailer (counts, SHA-256, the
    end of the file) after the last one: only a complete, intact file ends normally."""

    def __init__(self, src: BinaryIO) -> None:
        preamble = src.read(_PREAMBLE.size)
        if len(preamble) < _PREAMBLE.size or preamble[:len(MAGIC)] != MAGIC:
            raise DumpError("not a metaserver dump (no dump header)")
        _, version, length = _PREAMBLE.unpack(preamble)
        if version != VERSION:
            raise DumpError(f"dump format version {version}; this metaserver reads {VERSION}")
        text = src.read(length) if length <= MAX_HEADER else b""
        if len(text) < length:
            raise DumpError("the file ends inside its header: truncated")
        try:
            fields = json.loads(text)
            self.info = DumpInfo(seq=int(fields["seq"]), source=str(fields["source"]),
                                 created=str(fields["created"]),
                                 data_format=int(fields["data_format"]),
                                 compression=str(fields["compression"]),
                                 rollback=fields.get("rollback"))
        except (ValueError, KeyError, TypeError) as exc:
            raise DumpError(f"the dump header is damaged ({exc})") from None
        if self.info.compression not in ("gzip", "none"):
            raise DumpError(f"unknown compression {self.info.compression!r}")
        self._digest = hashlib.sha256(preamble + text)
        self._body = _BodyReader(src, self.info.compression == "gzip")
        self.keys = self.bytes = 0      # records yielded so far

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        last = b""
        for payload in self._blocks():
            pairs = _parse_block(payload, last, CHANGELOG_END if self.info.rollback
                                 else ENGINE_RESERVED_PREFIX)
            if pairs is None:
                raise self._damaged("a block whose records are out of order or overrun it")
            last = pairs[-1][0]
            self.keys += len(pairs)
            self.bytes += len(payload) - _RECORD.size * len(pairs)
            yield from pairs
        self._check_trailer()

    def _read(self, n: int) -> bytes:
        try:
            return self._body.read(n)
        except _Damaged as exc:
            raise self._damaged(str(exc)) from None

    def _blocks(self) -> Iterator[bytes]:
        while True:
            head = self._read(_BLOCK.size)
            if len(head) < _BLOCK.size:
                raise self._damaged("the file ends before its trailer: truncated")
            length, crc = _BLOCK.unpack(head)
            if length == 0:
                return
            if length > MAX_BLOCK:
                raise self._damaged(f"a block length of {length} bytes")
            payload = self._read(length)
            if len(payload) < length:
                raise self._damaged("the file ends inside a block: truncated")
            if zlib.crc32(payload) != crc:
                raise self._damaged("a block fails its CRC")
            self._digest.update(payload)
            yield payload

    def _check_trailer(self) -> None:
        trailer = self._read(_TRAILER.size)
        if len(trailer) < _TRAILER.size:
            raise self._damaged("the file ends inside its trailer: truncated")
        keys, nbytes, digest = _TRAILER.unpack(trailer)
        if (keys, nbytes) != (self.keys, self.bytes):
            raise self._damaged(f"the trailer counts {keys} keys, {nbytes} bytes")
        if digest != self._digest.digest():
            raise self._damaged("the SHA-256 in the trailer does not match")
        if self._read(1):
            raise self._damaged("data after the trailer")

    def _damaged(self, what: str) -> DumpError:
        return DumpError(f"damaged dump after {self.keys} intact keys: {what}")


def _parse_block(payload: bytes, last: bytes,
                 key_end: bytes = ENGINE_RESERVED_PREFIX) -> list[tuple[bytes, bytes]] | None:
    """A block's records, or None unless they fill it exactly, in ascending key order
    after `last`, below `key_end` (the engine-reserved keys; a rollback file's change
    records go up to the change log's end). (The hot loop of load: locals only.)"""
    unpack, head = _RECORD.unpack_from, _RECORD.size
    pairs = []
    pos, end = 0, len(payload)
    while pos + head <= end:
        key_len, value_len = unpack(payload, pos)
        key_start = pos + head
        value_start = key_start + key_len
        pos = value_start + value_len
        key = payload[key_start:value_start]
        if not last < key:
            return None
        pairs.append((key, payload[value_start:pos]))
        last = key
    if pos != end or not pairs or last >= key_end:
        return None
    return pairs


class _Damaged(Exception):
    """What is wrong with the body's bytes; DumpReader says where."""


class _BodyReader:
    """The body's bytes, decompressed a piece at a time."""

    def __init__(self, src: BinaryIO, compressed: bool) -> None:
        self._src = src
        self._unzip = zlib.decompressobj(_GZIP) if compressed else None
        self._buffer = bytearray()

    def read(self, n: int) -> bytes:
        """Exactly n bytes, or fewer at the end of the body."""
        while len(self._buffer) < n:
            piece = self._piece(n - len(self._buffer))
            if not piece:
                break
            self._buffer += piece
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _piece(self, want: int) -> bytes:
        if self._unzip is None:
            return self._src.read(max(want, _READ_PIECE))
        unzip = self._unzip
        limit = max(want, _READ_PIECE)      # bounds what a small input can expand to
        try:
            while not unzip.eof:
                compressed = unzip.unconsumed_tail or self._src.read(_READ_PIECE)
                if not compressed:
                    raise _Damaged("the compressed stream is truncated")
                data = unzip.decompress(compressed, limit)
                if data:
                    return data
        except zlib.error as exc:
            raise _Damaged(f"corrupt compressed data ({exc})") from None
        if unzip.unused_data or self._src.read(1):
            raise _Damaged("data after the compressed stream")
        return b""


def verify(src: BinaryIO) -> DumpInfo:
    """Read a whole dump, checking everything; returns its header."""
    reader = DumpReader(src)
    for _ in reader.records():
        pass
    return reader.info


# --- load -----------------------------------------------------------------------------------

def load(engine: Engine, src: BinaryIO) -> LoadSummary:
    """Fill an empty engine from a dump (see the module docstring)."""
    started = time.monotonic()
    with engine.snapshot() as snapshot:
        _refuse_non_empty(snapshot)
    if src.seekable():      # check it all before writing anything
        at = src.tell()
        try:
            verify(src)
        except DumpError as exc:
            raise DumpError(f"{exc}; nothing was loaded") from None
        src.seek(at)
    reader = DumpReader(src)
    if reader.info.data_format != schema.FORMAT_VERSION:
        raise DumpError(f"the dump holds data format {reader.info.data_format}; this "
                        f"metaserver uses {schema.FORMAT_VERSION}")
    target = _Target(engine)
    batch: list[tuple[bytes, bytes]] = []
    batch_bytes = 0
    try:
        for key, value in reader.records():
            if key.startswith(ENGINE_RESERVED_PREFIX):   # a rollback file's change records
                continue
            batch.append((key, value))
            batch_bytes += len(key) + len(value)
            if len(batch) >= LOAD_BATCH_KEYS or batch_bytes >= LOAD_BATCH_BYTES:
                target.commit(batch, batch_bytes)
                batch, batch_bytes = [], 0
        if batch or not target.transactions:    # the last batch waits for the trailer
            target.commit(batch, batch_bytes)
    except (DumpError, EngineError) as exc:
        if target.keys:
            raise DumpError(f"{exc}; {target.keys} keys were loaded before it: discard "
                            "this target") from exc
        raise
    return LoadSummary(target.keys, target.bytes, target.transactions, reader.info.seq,
                       reader.info.source, target.seq or engine.last_seq(),
                       time.monotonic() - started)


class _Target:
    """The engine being loaded, and what has been committed to it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keys = self.bytes = self.transactions = self.seq = 0

    def commit(self, batch: list[tuple[bytes, bytes]], nbytes: int) -> None:
        first = not self.transactions

        def load(txn: Txn) -> None:
            # The first transaction also checks, in itself, that the target is empty (so
            # a server formatting it meanwhile makes it conflict, and the retry sees that).
            # Blind puts make the retry of an unknown commit harmless.
            if first:
                _refuse_non_empty(txn)
            for key, value in batch:
                txn.put(key, value)

        seq = transactional.run(self.engine, load, header=LOAD_HEADER).seq
        if seq is not None:     # None: an empty dump's one transaction wrote nothing
            self.seq = seq
        self.transactions += 1
        self.keys += len(batch)
        self.bytes += nbytes


def _refuse_non_empty(txn: Txn) -> None:
    for key, _ in txn.scan(*NAMESPACE, limit=1):
        raise TargetNotEmpty(f"the target already holds a namespace ({_described(key)} "
                             "exists); load fills only an empty engine, before any "
                             "metaserver runs on it")


def _described(key: bytes) -> str:
    """What a key stores, for an operator: a path when it is the root's or an entry of
    it (the first key of any namespace is one of those), else an inode or the key."""
    entry = schema.parse_dentry_key(key)
    if entry is not None:
        parent, name = entry
        shown = name.decode("utf-8", "backslashreplace")
        return f"/{shown}" if parent == ROOT_INO else f"{shown} in directory inode {parent}"
    if key[:1] == schema.INODE_PREFIX:
        ino = schema.parse_inode_key(key).ino
        return "/ (the root directory)" if ino == ROOT_INO else f"inode {ino}"
    return f"key {key[:40]!r}"
