"""Writing a run's files so that a failed write is one clear line, never a torn file.

    files.replace(run / "tiny.net", text)          # temporary file, fsync, rename
    with files.replacing(run / "checkpoint.pt") as out:
        torch.save(state, out)                      # streamed into the temporary file
    files.append(run / "metrics.jsonl", line)       # all of the line, or none of it
    data = files.read_input("nets/alexnet.net", "a .net file")   # or the one NetError saying why not
    with files.building(out / "features.npy") as tmp:
        array = numpy.lib.format.open_memmap(tmp, "w+", ...)   # a writer that wants a name

Every byte goes through os.write on a descriptor of our own (but those a building() caller
writes), so an OSError (ENOSPC, EDQUOT, EIO, ...) reaches us as itself and not wrapped by a
library, and a test can make any of these writes fail on demand. Whatever fails (open, write,
fsync, rename), the temporary file is removed and the file it was to replace keeps its old
content; the caller gets WriteError, a NetError naming the file and the cause
(`runs/x/checkpoint.pt: error: cannot write: No space left on device`), which `netdsl` prints
as one line before it exits with status 2.

A temporary file is `<name>.<pid>.tmp` beside its target: a process killed while writing one
leaves it behind, and remove_stale_temporaries() clears such files from a run folder (which
only its lock holder writes, netdsl/runner/runlock.py).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

from .errors import NetError

TMP_SUFFIX = ".tmp"
# <name>.<pid>.tmp; and the names older versions used: metrics.jsonl.tmp, <stats>.npz.<pid>.tmp.npz
_STALE = re.compile(r"(\.\d+\.tmp|\.\d+\.tmp\.npz|^metrics\.jsonl\.tmp)$")
_CHUNK = 1 << 20


class WriteError(NetError):
    """An OSError writing `path`: the message says what the system said (`strerror`)."""

    def __init__(self, path: Path, err: OSError):
        self.strerror = err.strerror or str(err)
        self.errno = err.errno
        super().__init__(f"cannot write: {self.strerror}", str(path))


def temporary(path: Path) -> Path:
    """The temporary file that becomes `path`, unique to this process."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


def _write_all(fd: int, data) -> None:
    """All of `data` to `fd`: os.write may write less than it is given."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


class _Writer:
    """The file object torch.save and friends write into; it remembers the OSError it raised,
    since torch.save reports a failed write as a RuntimeError of its own (`unexpected pos`)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.failure: OSError | None = None

    def write(self, data) -> int:
        try:
            _write_all(self.fd, data)
        except OSError as err:
            self.failure = err
            raise
        return memoryview(data).nbytes

    def flush(self) -> None:
        """Nothing is buffered: every write went to the system already."""


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a crash after it must not bring the old name back)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # platforms without directory handles
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems that cannot sync a folder
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: Path):
    """A file object whose writes become `path` when the block ends, atomically: a reader sees
    the old file or the whole new one. WriteError on any OSError, the temporary file removed.

    A RuntimeError the block raises because one of its writes failed (torch.save's way) is
    reported as that write's OSError; any other exception passes unchanged, after the cleanup."""
    path = Path(path)
    tmp = temporary(path)
    writer = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            writer = _Writer(fd)
            yield writer
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        _remove_quietly(tmp)
        raise WriteError(path, err) from None
    except RuntimeError:
        _remove_quietly(tmp)
        if writer is None or writer.failure is None:
            raise
        raise WriteError(path, writer.failure) from None
    except BaseException:  # KeyboardInterrupt included: no temporary file is left
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def building(path: Path):
    """The temporary file that becomes `path`, by name, for writers that want a file name of
    their own (numpy's open_memmap): when the block ends it is fsynced and renamed over `path`
    atomically. WriteError on any OSError; whatever fails, the temporary file is removed."""
    path = Path(path)
    tmp = temporary(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        _remove_quietly(tmp)
        raise WriteError(path, err) from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def replace(path: Path, data: bytes | str) -> None:
    """`path` holds `data` (str as UTF-8), atomically; WriteError if it cannot be written."""
    with replacing(path) as out:
        out.write(data.encode() if isinstance(data, str) else data)


def copy(source: Path, path: Path) -> None:
    """`path` holds what `source` holds, atomically, copied a chunk at a time."""
    with open(source, "rb") as f, replacing(path) as out:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            out.write(chunk)


def publish(source: Path, path: Path) -> None:
    """`path` holds what `source` holds now, atomically: a hard link where the file system has
    them (no copy, no space), a copy where it does not."""
    path = Path(path)
    tmp = temporary(path)
    try:
        os.link(source, tmp)
    except OSError:  # file systems without hard links; a full one fails the copy, cleanly
        copy(source, path)
        return
    try:
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        _remove_quietly(tmp)
        raise WriteError(path, err) from None


def append(path: Path, text: str) -> None:
    """Add `text` at the end of `path` (made if missing) and fsync it; WriteError if it cannot
    be written, the file then cut back to its old length: a torn last line would be read back
    as a record."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise WriteError(path, err) from None
    try:
        size = os.fstat(fd).st_size
        try:
            _write_all(fd, text.encode())
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    except OSError as err:
        raise WriteError(path, err) from None
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files a killed process left in `folder`; the files they were to replace are
    intact. Only for a folder no other process writes (a run folder, under its lock)."""
    for entry in Path(folder).iterdir():
        if _STALE.search(entry.name) and entry.is_file():
            _remove_quietly(entry)


def read_input(path: str | Path, kind: str) -> bytes:
    """The bytes of a file the user named (a .net, a .prototxt, an IDX file: `kind`), or the one
    NetError that says why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise NetError("no such file", str(path)) from None
    except IsADirectoryError:
        raise NetError(f"is a directory, not {kind}", str(path)) from None
    except OSError as err:
        raise NetError(f"cannot read it: {err.strerror}", str(path)) from None
