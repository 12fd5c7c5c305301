"""A metafs mount as a child process (`metafs mount --foreground`), for tests and
benchmarks: mounted on start, and always unmounted and reaped on stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

METAFS = os.path.join(os.path.dirname(sys.executable), "metafs")


def mounted(path: str) -> bool:
    """Whether a file system is mounted at `path` (also a dead FUSE mount, on which
    os.path.ismount fails with ENOTCONN)."""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == path for line in mounts)


def fuse_missing() -> str | None:
    """Why metafs cannot mount here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    return None


class MetafsMount:
    """`metafs mount --foreground` of `server` on `mountpoint`; extra flags in `flags`."""

    def __init__(self, server: str, mountpoint: str, data_dir: str, *flags: str,
                 log_path: str = os.devnull) -> None:
        self.server, self.mountpoint, self.data_dir = server, mountpoint, data_dir
        self.flags = flags
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> MetafsMount:
        os.makedirs(self.mountpoint, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [METAFS, "mount", "--foreground", "--server", self.server, "--data-dir",
                 self.data_dir, *self.flags, self.mountpoint],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"metafs did not mount {self.mountpoint} "
                                   f"(log: {self.log_path})")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Unmount (lazily if busy or dead) and reap the process; kill it, by PID, if it
        lingers."""
        if mounted(self.mountpoint):
            if subprocess.run(["fusermount3", "-u", self.mountpoint],
                              capture_output=True).returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], capture_output=True)
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)

    def kill(self) -> None:
        """kill -9 the mount's process, by PID (the mount stays, dead, until stop())."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> MetafsMount:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
