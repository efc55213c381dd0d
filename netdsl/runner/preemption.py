"""SIGTERM and SIGINT stop `netdsl train` between two steps, with a checkpoint to resume from.

    with StopSignals() as signals:       # while the epochs run
        ...                              # each step: world.sum([..., signals.received])
    exit_status(signal.SIGTERM)          # 143, as a shell reports a process SIGTERM ended

Cluster schedulers (SLURM, Kubernetes) pre-empt a job with SIGTERM and kill it after a grace
period; Ctrl-C sends SIGINT. While the epochs run, both are caught: the handler only notes the
signal (a second one, during the save, changes nothing), and the training loop reads the note
in the exchange that already sums each step's loss over the processes, so that under torchrun
every process stops after the same step, though the signal reaches them at different moments,
or only one of them. netdsl/runner/train.py then writes a mid-epoch checkpoint and exits with
exit_status(signal). Outside the epochs (setup, the statistics pass) the signals do what they
always do: nothing is lost there that a resume does not redo.

DataLoader workers ignore both signals (ignore_in_worker): Ctrl-C, and SLURM's scancel, signal
every process of the job, and a worker that died of it would fail the step being finished. So
nothing outside can end a worker politely: the command that started it ends it, on every way out
(netdsl/runner/workers.py), and a worker whose trainer is killed finds it gone and exits.
"""
from __future__ import annotations

import signal
import threading

CAUGHT = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """SIGTERM and SIGINT noted, not acted on, for as long as the `with` block runs (in the main
    thread only, where Python delivers signals; elsewhere nothing is caught). Once one has come,
    both are ignored after the block: the process is on its way out with the first one's exit
    status, and a second signal must not turn that into a traceback or a kill. (Ignored, not
    noted: Python puts back the default action of the signals it handles as it shuts down.)"""

    def __init__(self):
        self.received = 0   # the first signal's number; 0: none
        self._previous = {}

    def note(self, signum, frame=None) -> None:
        self.received = self.received or signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self.note) for s in CAUGHT}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_IGN if self.received else handler)
        self._previous = {}


def name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_status(signum: int) -> int:
    """128 + the signal's number: 143 for SIGTERM, 130 for SIGINT."""
    return 128 + signum


def ignore_in_worker(worker_id: int) -> None:
    """A DataLoader worker's init: the trainer alone decides when to stop."""
    for s in CAUGHT:
        signal.signal(s, signal.SIG_IGN)
