"""The object store of file data: one immutable file per slice id in a data directory.

Objects are written once (to a temporary name, then renamed), so a reader on another
mount of the same directory sees either the whole object or none of it.
"""

from __future__ import annotations

import errno
import os


class ObjectStore:
    """Objects under `root`/objects/<id's low 12 bits in hex>/<id>."""

    def __init__(self, root: str) -> None:
        self.root = os.path.join(root, "objects")
        os.makedirs(self.root, exist_ok=True)

    def path(self, object_id: int) -> str:
        return os.path.join(self.root, f"{object_id & 0xFFF:03x}", str(object_id))

    def put(self, object_id: int, data: bytes) -> None:
        path = self.path(object_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "wb") as f:
            f.write(data)
        os.rename(temporary, path)

    def read(self, object_id: int, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of an object; a missing or short object is EIO
        (the chunk map names data this data directory does not hold)."""
        try:
            with open(self.path(object_id), "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except FileNotFoundError:
            raise OSError(errno.EIO, f"object {object_id} is missing from {self.root}") from None
        if len(data) != length:
            raise OSError(errno.EIO, f"object {object_id} is shorter than its slices say")
        return data

    def delete(self, object_id: int) -> None:
        try:
            os.unlink(self.path(object_id))
        except FileNotFoundError:
            pass
