"""The one line every command prints for a metaserver that did not answer (refused, a
name that does not resolve, no answer in time): `cannot reach metaserver at ADDR: why`."""

from __future__ import annotations

import errno
import os


def unreachable(address: str, exc: OSError) -> str:
    """The line (without the program's name) for `exc`, an OSError the client raised
    naming `address`. gRPC's message ends with the cause; the rest is noise."""
    message = exc.strerror or os.strerror(exc.errno)
    why = message.rstrip("]").rpartition(": ")[2] \
        if exc.errno in (errno.ECONNREFUSED, errno.EIO) else message
    return f"cannot reach metaserver at {address}: {why or message}"
