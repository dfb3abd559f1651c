"""One job, one runner: a lock file beside a job's ``results.json`` while a process runs it.

Two sweeps started on one directory (two terminals, a scheduler array submitted twice) would otherwise train
the same job twice. The lock is ``<run dir>/.lock``, held with ``flock`` for as long as the job runs; it names
its holder (host, pid, start time) for the other process's message. The kernel drops a ``flock`` when its
holder dies, so the lock of a killed process is taken over by the next one that asks, with no clean-up step.
The file is removed on release; :func:`acquire` re-checks after locking that the file it locked is still the
one at the path (another process may have removed it in between).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator

LOCK_FILE = ".lock"


class JobLock:
    """A held lock on one run directory; :meth:`release` (or leaving :func:`job_lock`) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


def holder(run_dir: Path) -> dict[str, Any]:
    """What a lock file says of its holder (``{}`` when it is absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}


def describe_holder(info: dict[str, Any]) -> str:
    """``host:pid`` of a holder, for one line of output."""
    return f"{info.get('host', '?')}:{info.get('pid', '?')}"


def acquire(run_dir: Path) -> JobLock | None:
    """Take the job's lock, or None when a live process holds it (a dead holder's lock is taken over)."""
    path = Path(run_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the file was released and removed between our open and our lock: try again
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}).encode())
    return JobLock(path, fd)


@contextlib.contextmanager
def job_lock(run_dir: Path) -> Iterator[JobLock | None]:
    """The job's lock for the ``with`` block (None: another live process runs the job)."""
    lock = acquire(run_dir)
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


@contextlib.contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold ``path`` (a lock file, kept) exclusively for the ``with`` block, waiting while another process holds
    it: one training per trained-model key, whatever the number of sweep processes (the one that waited then
    reuses the model the first one saved)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
