"""Domain errors: a file-system error is an errno plus a message, nothing else."""

from __future__ import annotations

import errno
import os


class FsError(Exception):
    """A POSIX error from a metadata operation; `errno` says which."""

    def __init__(self, code: int, message: str = "") -> None:
        self.errno = code
        self.message = message or os.strerror(code)
        super().__init__(f"[{errno.errorcode.get(code, code)}] {self.message}")


class BatchError(FsError):
    """One operation of an atomic batch failed; nothing of the batch was applied."""

    def __init__(self, index: int, cause: FsError) -> None:
        self.index = index
        self.cause = cause
        super().__init__(cause.errno, f"batch operation {index}: {cause.message}")


def quote(name: bytes) -> str:
    """A file name for a message: as text, undecodable bytes escaped, in quotes."""
    return "'" + name.decode("utf-8", "backslashreplace") + "'"
