"""DataLoader worker processes that end with the command that started them, on every way out.

    loader = workers.Loader(dataset, batch_size=32, num_workers=2, ...)   # a DataLoader
    with workers.owned(loader, then=lambda: "training stopped; ..."):
        for batch in loader:
            ...
    # here every worker process of the loader has exited, however the block ended

Why this is needed: netdsl's workers ignore SIGTERM and SIGINT (preemption.ignore_in_worker), so
that only the trainer decides when a pre-empted run stops. torch ends a loader's workers when its
iterator is garbage-collected, but does nothing once the interpreter has begun to exit; an
iterator still alive then (held by a traceback, in a reference cycle) leaves its workers to
multiprocessing's exit handler, which sends them SIGTERM, ignored, and joins them: forever. So a
command that raised with workers alive (a full disk, a NaN loss, a worker killed by the kernel)
never exited. owned() ends them itself before the block is left: each is asked to stop (torch's
own shutdown: a None on its index queue, a join of up to 5 s), and one that has not stopped by
then is killed (SIGKILL, which no handler can ignore). An exit handler, registered after torch's
and multiprocessing's so that it runs before them, does the same for any Loader a command did
not own (a safety net). Workers still die with their parent if it is killed: torch's workers
check every 5 s that it is alive.

A worker that dies (the OOM killer's SIGKILL, a crash in a decoder) surfaces as torch's
RuntimeError "DataLoader worker (pid N) is killed by signal: Killed.", raised from its SIGCHLD
handler wherever the main thread happens to be, or from the loader's next batch; owned() turns it
into WorkerDied, a NetError: one line and exit status 2.
"""
from __future__ import annotations

import atexit
import contextlib
import re
import weakref

from torch.utils.data import DataLoader
from torch.utils.data import _utils as loader_utils

from ..errors import NetError

# torch's messages for a worker that died: from the SIGCHLD handler, and from the loader's wait
_DIED = re.compile(r"^DataLoader worker \(pid")

_loaders: "weakref.WeakSet[Loader]" = weakref.WeakSet()   # every Loader alive, for the exit handler


class WorkerDied(NetError):
    """A loader's worker process ended unexpectedly (killed, crashed)."""


class Loader(DataLoader):
    """A DataLoader that knows the iterators it has started workers for, so they can be ended."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._with_workers: "weakref.WeakSet" = weakref.WeakSet()
        _loaders.add(self)

    def _get_iterator(self):
        iterator = super()._get_iterator()
        if self.num_workers > 0:
            self._with_workers.add(iterator)
        return iterator

    def take_iterators(self) -> list:
        """The iterators with workers started so far, which the loader then forgets."""
        iterators, self._with_workers = list(self._with_workers), weakref.WeakSet()
        return iterators


def end_workers(loaders) -> None:
    """Every worker process the loaders started has exited when this returns."""
    iterators = [iterator for loader in loaders for iterator in loader.take_iterators()]
    for iterator in iterators:  # all first: one loader's workers ending signal SIGCHLD too
        _forget_pids(iterator)
    for iterator in iterators:
        _end(iterator)


def _forget_pids(iterator) -> None:
    """Stop torch's SIGCHLD handler watching these workers: ending them is not a failure (and a
    worker that died already must not be reported again while the others end)."""
    if getattr(iterator, "_worker_pids_set", False):
        loader_utils.signal_handling._remove_worker_pids(id(iterator))
        iterator._worker_pids_set = False


def _end(iterator) -> None:
    try:
        iterator._shutdown_workers()   # asks each worker to stop; joins it for up to 5 s
    finally:
        for process in getattr(iterator, "_workers", []):
            if process.is_alive():     # busy, or stuck: SIGTERM is ignored in workers
                process.kill()
                process.join()


def end_all() -> None:
    """The workers of every Loader still alive, ended."""
    end_workers(list(_loaders))


# registered after torch's and multiprocessing's handlers (both imported above), so it runs before them
atexit.register(end_all)


def died(err: BaseException) -> bool:
    """Whether `err` is torch's report of a loader worker that died."""
    return isinstance(err, RuntimeError) and bool(_DIED.match(str(err)))


@contextlib.contextmanager
def owned(*loaders: Loader, then=None):
    """The block runs with the loaders' workers, which have all exited when it is left, however
    it is left. A worker that died is WorkerDied, its message followed by `then()` if given
    (what the caller's stop means: which checkpoint to resume from, say)."""
    try:
        yield
    except RuntimeError as err:
        if not died(err):
            raise
        report = str(err).strip().splitlines()[0]
        message = (f"a data loading worker process died ({report}); the system may have run out of "
                   "memory, and fewer --workers need less")
        raise WorkerDied(message + (f"; {then()}" if then else "")) from None
    finally:
        end_workers(loaders)
