"""Rollback files: what a node that rejoins a newer history would otherwise discard.

Before a node replaces its namespace with a snapshot of a source whose history left its
own (records after the fork point: an old primary's writes after a forced failover, or
a namespace the source never had), it writes a rollback file: a dump (metaserver.dump's
format, so `metactl load` can restore it elsewhere) of its whole namespace, followed by
the change records after the fork that its own log still holds (a former primary's log
is its epoch's log; a follower's local records are not the source's, so only the
namespace is kept for it). The header's `rollback` field says where the fork was and how
many records came after it.

`operations` lists the kept records with the paths their inode arguments had in the
rolled-back namespace; `reapply` runs chosen ones again against the new primary, by path,
with their original request ids (so re-applying twice applies once).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from engines import changelog
from engines.contract import CHANGELOG_END, Engine, changelog_key
from metaserver import dump, schema
from metaserver.ops import OPS
from metaserver.types import ROOT_INO

CLIENT_OPS = {name for name, op in OPS.items() if op.mutating} | {"atomic_batch"}
# Arguments of operations that name an inode (translated through paths on re-apply).
INODE_ARGS = ("parent", "ino", "new_parent")


@dataclass(frozen=True)
class RollbackSummary:
    path: str
    records: int          # client operations after the fork point (-1: unknown)
    kept: int             # of them, kept one by one in the file
    keys: int             # namespace keys kept


@dataclass(frozen=True)
class KeptOperation:
    seq: int
    op: str
    request_id: bytes
    calls: list[tuple[str, dict]]
    paths: dict[int, str]       # inode argument -> its path in the rolled-back namespace


def write(engine: Engine, directory: str, *, epoch: int, fork_seq: int, records: int,
          local_records: bool, source: str) -> RollbackSummary:
    """Write the rollback file into `directory` (made if missing); returns what it holds.
    `local_records`: this engine's own log holds the records after fork_seq."""
    os.makedirs(directory, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = os.path.join(directory, f"rollback-epoch{epoch}-after{fork_seq}-{stamp}.msdump")
    if local_records:     # what clients were told was done: not id reservations, fences
        with engine.snapshot() as txn:
            records = sum(is_client_operation(changelog.decode(value).header) for _, value
                          in txn.scan(changelog_key(fork_seq + 1), CHANGELOG_END))
    kept = [0]

    def records_after_fork() -> Iterator[tuple[bytes, bytes]]:
        if not local_records:
            return
        with engine.snapshot() as txn:
            for key, value in txn.scan(changelog_key(fork_seq + 1), CHANGELOG_END):
                kept[0] += 1
                yield key, value

    description = {"epoch": epoch, "fork_seq": fork_seq, "records": records,
                   "source": source, "records_kept": local_records}
    with open(path + ".partial", "wb") as out:
        summary = dump.dump(engine, out, rollback=description, then=records_after_fork)
        out.flush()
        os.fsync(out.fileno())
    os.replace(path + ".partial", path)
    return RollbackSummary(path, records, kept[0], summary.keys - kept[0])


def is_client_operation(header: bytes) -> bool:
    return schema.decode_change_header(header).op in CLIENT_OPS


def description(src: BinaryIO) -> dict:
    info = dump.DumpReader(src).info
    if info.rollback is None:
        raise dump.DumpError("not a rollback file (a plain dump)")
    return info.rollback


def operations(open_file: Callable[[], BinaryIO]) -> list[KeptOperation]:
    """The kept client operations, in order, with paths for their inode arguments. `open_file`
    opens the file afresh: paths take a pass over the namespace per directory level."""
    records = []
    with open_file() as src:
        for key, value in dump.DumpReader(src).records():
            if key.startswith(changelog_key(0)[:2]):
                record = changelog.decode(value)
                header = schema.decode_change_header(record.header)
                if header.op in CLIENT_OPS:
                    records.append((record.seq, header))
    wanted = {args[name] for _, header in records for _, args in header.calls
              for name in INODE_ARGS if isinstance(args.get(name), int)}
    paths = _paths(open_file, wanted)
    return [KeptOperation(seq, h.op, h.request_id, h.calls,
                          {ino: paths[ino] for _, args in h.calls for name in INODE_ARGS
                           if (ino := args.get(name)) in paths})
            for seq, h in records]


def _paths(open_file: Callable[[], BinaryIO], inos: set[int]) -> dict[int, str]:
    """Paths of `inos` in the file's namespace (those that have one)."""
    named: dict[int, tuple[int, bytes]] = {}
    want = set(inos) - {ROOT_INO}
    while want:
        found = {}
        with open_file() as src:
            for key, value in dump.DumpReader(src).records():
                dentry = schema.parse_dentry_key(key)
                if dentry is not None:
                    child = schema.decode_dentry(value)[1]
                    if child in want:
                        found[child] = dentry
        named.update(found)
        want = {parent for parent, _ in found.values()
                if parent != ROOT_INO and parent not in named}
    paths = {ROOT_INO: "/"}

    def path_of(ino: int) -> str | None:
        if ino not in paths:
            if ino not in named:
                return None
            parent, name = named[ino]
            base = path_of(parent)
            if base is None:
                return None
            paths[ino] = base.rstrip("/") + "/" + os.fsdecode(name)
        return paths[ino]

    return {ino: p for ino in inos if (p := path_of(ino)) is not None}
