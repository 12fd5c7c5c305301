"""The `metafs` command: mount a metaserver as a file system (FUSE), and unmount it.

`metafs mount` runs in the background by default: it starts itself in the foreground
as a detached process logging to --log-file, and returns once the mount is up (or
prints why it did not come up and exits 1). A failure prints one line and exits 1
(a usage error too, with status 2).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from typing import Optional

import typer

from metaserver.cli import entry
from metaserver.cli.unreachable import unreachable
from metaserver.fuse.mount import MountOptions, run

DEFAULT_SERVER = "127.0.0.1:7420"
MOUNT_WAIT_SECONDS = 30.0

app = typer.Typer(add_completion=False, rich_markup_mode=None,
                  help="Mount a metaserver namespace with FUSE (metadata over gRPC, file "
                       "data in a shared data directory).")


def _fail(message: str) -> None:
    typer.echo(f"metafs: {message}", err=True)
    raise typer.Exit(1)



@app.callback()
def _root(version: bool = entry.version_option("metafs")) -> None:
    """Mount a metaserver namespace with FUSE (metadata over gRPC, file data in a shared
    data directory)."""


def _default_data_dir(server: str) -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "metafs", server.replace(":", "_"))


@app.command()
def mount(
    mountpoint: str = typer.Argument(..., metavar="MOUNTPOINT",
                                     help="An existing empty directory."),
    server: str = typer.Option(DEFAULT_SERVER, "--server", envvar="METASERVER_ADDRESS",
                               metavar="HOST:PORT", help="The metaserver to mount."),
    data_dir: Optional[str] = typer.Option(
        None, "--data-dir", metavar="DIR", help="Object store of file data; every mount of one namespace "
        "must share it. Default: $XDG_DATA_HOME/metafs/HOST_PORT."),
    foreground: bool = typer.Option(False, "--foreground", "-f",
                                    help="Serve in this process until unmounted."),
    read_only: bool = typer.Option(False, "--read-only",
                                   help="Refuse writes (EROFS) instead of sending them; on "
                                        "a follower, writes are otherwise forwarded."),
    attr_timeout: float = typer.Option(
        0.0, metavar="SECONDS", help="Seconds the kernel caches attributes. 0 by default: libfuse's path API "
        "gives each name of a hard-linked file its own kernel inode, whose cached nlink, "
        "ctime and size would go stale when another name changes them."),
    entry_timeout: float = typer.Option(1.0, metavar="SECONDS", help="Seconds the kernel caches names."),
    negative_timeout: float = typer.Option(0.0, metavar="SECONDS", help="Seconds the kernel caches absent names."),
    timeout: float = typer.Option(30.0, metavar="SECONDS", help="Seconds for one attempt of one call."),
    session_ttl: float = typer.Option(
        30.0, metavar="SECONDS", help="Seconds the server keeps this mount's locks and open-unlinked files "
        "after it stops renewing its session (it died or lost the server)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="METASERVER_TOKEN", metavar="TOKEN",
                                        help="Bearer token for the server."),
    log_file: Optional[str] = typer.Option(
        None, "--log-file", metavar="FILE", help="Background mode's log (default: DATA_DIR/metafs.log)."),
    debug: bool = typer.Option(False, "--debug", help="libfuse's request trace."),
) -> None:
    """Mount the namespace served at --server on MOUNTPOINT."""
    data_dir = os.path.abspath(data_dir or _default_data_dir(server))
    mountpoint = os.path.abspath(mountpoint)
    if not os.path.isdir(mountpoint):
        _fail(f"{mountpoint}: not a directory")
    os.makedirs(data_dir, exist_ok=True)
    if foreground:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s metafs %(levelname)s %(message)s")
        try:
            run(MountOptions(server, data_dir, mountpoint, read_only=read_only,
                             attr_timeout=attr_timeout, entry_timeout=entry_timeout,
                             negative_timeout=negative_timeout, timeout=timeout, token=token,
                             debug=debug, session_ttl=session_ttl))
        except OSError as exc:
            _fail(unreachable(server, exc) if exc.filename == server
                  else f"{server}: {exc.strerror or exc}")
        except RuntimeError as exc:     # libfuse refused (fuse_main's status)
            _fail(f"{mountpoint}: libfuse failed to mount ({exc})")
        return
    log_file = log_file or os.path.join(data_dir, "metafs.log")
    argv = [sys.executable, "-m", "metaserver.cli.metafs", "mount", "--foreground",
            "--server", server, "--data-dir", data_dir, "--attr-timeout", str(attr_timeout),
            "--entry-timeout", str(entry_timeout), "--negative-timeout", str(negative_timeout),
            "--timeout", str(timeout), "--session-ttl", str(session_ttl), mountpoint]
    if read_only:
        argv.insert(-1, "--read-only")
    with open(log_file, "ab") as log:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)
    deadline = time.monotonic() + MOUNT_WAIT_SECONDS
    while not os.path.ismount(mountpoint):
        if child.poll() is not None:
            _fail(f"mount failed (exit {child.returncode}); see {log_file}")
        if time.monotonic() > deadline:
            child.terminate()
            _fail(f"mount did not come up in {MOUNT_WAIT_SECONDS:.0f} s; see {log_file}")
        time.sleep(0.05)
    typer.echo(f"metafs: {server} mounted on {mountpoint} (pid {child.pid}, log {log_file})")


@app.command()
def umount(mountpoint: str = typer.Argument(..., metavar="MOUNTPOINT"),
           lazy: bool = typer.Option(False, "--lazy", "-z",
                                     help="Detach now, clean up when no longer busy.")) -> None:
    """Unmount a metafs mount (its process then exits)."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    argv = [tool, "-u"] + (["-z"] if lazy else []) if tool else \
        ["umount"] + (["-l"] if lazy else [])
    result = subprocess.run(argv + [mountpoint], capture_output=True, text=True)
    if result.returncode != 0:
        _fail((result.stderr or result.stdout).strip() or f"{mountpoint}: unmount failed")


def main() -> None:
    entry.run(app, "metafs")


if __name__ == "__main__":
    main()
