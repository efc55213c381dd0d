"""One `netdsl train` a run folder: an advisory lock on RUN/.lock, held for the whole run.

    with runlock.acquire(run_dir):      # NetError naming the holder's pid and host if it is taken
        ...                             # read the checkpoint, train, write the folder

The lock is flock(2) on RUN/.lock, and the file holds the holder's `pid host` for the message a
second process prints. The kernel drops a flock when the last descriptor of it is closed, which
happens however its holder ends, SIGKILL included: the .lock file a killed run leaves behind
never blocks a resume (only the lock counts, and the file stays: removing it would let two
processes lock two different files of one name). Forked children (DataLoader's workers) close
their copy of the descriptor at once, so a worker still alive a moment after its trainer was
killed does not hold the folder.

It is advisory: it keeps out another `netdsl train`, not a person or another program. Over NFS,
Linux makes flock a lock the server holds, so it also keeps out a process on another machine.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from ..errors import NetError
from ..files import WriteError

LOCK_NAME = ".lock"
_HOLDER_WAIT_S = 2.0       # how long a process that lost the lock waits for the holder's `pid host`
_held: set[int] = set()    # descriptors of the locks this process holds


def _close_held_in_child() -> None:
    """In a forked child: its copies of the lock descriptors, which would keep the locks held
    for as long as the child lives (closing a copy never releases the parent's lock)."""
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


class RunLock:
    """A held lock on a run folder; release() (or the end of a `with` block, or the process)
    gives it back."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd is not None:
            _held.discard(self.fd)
            os.close(self.fd)  # the last descriptor of the lock: the kernel drops it
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    """`pid P on HOST`, as the holder wrote it; it writes just after it locks, so wait a moment
    for the line to be whole."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        text = os.pread(fd, 512, 0).decode(errors="replace")
        if text.endswith("\n") or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    parts = text.split()
    if len(parts) == 2:
        return f"pid {parts[0]} on {parts[1]}"
    return "a process that has not said which"


def _write_holder(fd: int) -> None:
    """`pid host` into the lock file, for the process that finds the folder taken."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)


def acquire(run_dir: Path) -> RunLock:
    """The lock of `run_dir` (which must exist), taken without waiting: NetError where another
    process holds it, naming that process."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise NetError(f"cannot open its lock file {LOCK_NAME}: {err.strerror}", str(run_dir)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _holder(fd) if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
        os.close(fd)
        if holder is None:
            raise NetError(f"cannot lock its lock file {LOCK_NAME}: {err.strerror}", str(run_dir)) from None
        raise NetError(f"another netdsl train ({holder}) is using this run folder; wait for it to end, "
                       "or pass --out to start another run", str(run_dir)) from None
    try:
        _write_holder(fd)
    except OSError as err:
        os.close(fd)
        raise WriteError(path, err) from None
    _held.add(fd)
    return RunLock(path, fd)
