"""Data-parallel training under torchrun: the processes, their devices, and the sums over them.

    torchrun --nproc_per_node=2 -m netdsl train nets/alexnet.net --data imagenet/
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_backend=c10d \\
             --rdzv_endpoint=host0:29400 -m netdsl train nets/alexnet.net --data imagenet/

`netdsl train` sees torchrun's RANK, WORLD_SIZE and LOCAL_RANK; with WORLD_SIZE above 1,
start() checks the global batch divides among the processes, picks each process's devices,
opens the process group (nccl when the process trains on CUDA, gloo otherwise) and returns
a World, which train.py uses for every exchange between processes. Without torchrun the
World is SINGLE: one process, no process group, and every exchange returns its input.

Devices: `--devices LIST` names one process's devices, counted from local rank 0; process
`LOCAL_RANK` uses cuda:(i + LOCAL_RANK * len(LIST)) for each cuda:i in LIST. So with 4 GPUs,
`torchrun --nproc_per_node=2 ... --devices cuda:0,cuda:1` gives process 0 cuda:0 and cuda:1
(its two groups) and process 1 cuda:2 and cuda:3. Without --devices each process takes
cuda:LOCAL_RANK, or the CPU where there is no GPU. `cpu` entries stay on the CPU, so
`--devices cpu,cpu` runs the split path in every process (as the tests do).

The model is wrapped in DistributedDataParallel (device_ids=None for a network split over
several devices or on the CPU); it averages the gradients over the processes after each
backward. Rank 0 alone writes the run folder; errors that rank 0 alone can find
(from_main) or that any process may find (together) reach every process as the same
NetError, so no process waits forever for one that has stopped.

A user error (NetError) that any process meets, every process or one alone (its machine's copy
of the data, say), ends them all at once: the session posts it on a board in the process
group's key-value store, which every process watches from a thread, wherever it is (in its own
work, or waiting in an exchange for the process that stopped); rank 0 prints it, once, and every
process exits with status 2 (_ErrorBoard). Errors before the processes have met (a batch that
does not divide, a device the machine lacks) are printed by each process that meets them.

A process that is gone (killed, crashed, its machine down) fails the next exchange of every
other process at once; each prints one line, `error: lost contact with another training process
(...)`, and exits with status 2, the run folder keeping its last checkpoint (session()).

NETDSL_DEBUG_RANK_STATE=DIR: at the end of a run each process saves the weights it holds to
DIR/rank<R>.pt (a state dict), so a person or a test can check that the replicas agree.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import multiprocessing
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..errors import NetError

DEBUG_STATE_ENV = "NETDSL_DEBUG_RANK_STATE"


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the training processes, and the exchanges between them."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")   # where tensors to exchange live (CUDA for nccl)

    @property
    def main(self) -> bool:
        """Rank 0: the process that prints and writes the run folder."""
        return self.rank == 0

    def sum(self, values) -> list[float]:
        """Each value summed over the processes."""
        return self._reduce(values, dist.ReduceOp.SUM)

    def max(self, values) -> list[float]:
        """Each value's largest over the processes."""
        return self._reduce(values, dist.ReduceOp.MAX)

    def _reduce(self, values, op) -> list[float]:
        if self.size == 1:
            return [float(v) for v in values]
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op)
        return tensor.tolist()

    def sum_arrays(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Each float64 array summed over the processes, in one exchange."""
        if self.size == 1:
            return list(arrays)
        flat = torch.from_numpy(np.concatenate([a.ravel() for a in arrays])).to(self.device)
        dist.all_reduce(flat)
        pieces = np.split(flat.cpu().numpy(), np.cumsum([a.size for a in arrays])[:-1])
        return [piece.reshape(a.shape) for piece, a in zip(pieces, arrays)]

    def gather(self, value) -> list:
        """Every process's `value` (picklable), in rank order."""
        if self.size == 1:
            return [value]
        values = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def from_main(self, fn):
        """fn() run by rank 0 alone; its result, or its NetError, reaches every process."""
        if self.size == 1:
            return fn()
        outcome = [None]
        if self.main:
            outcome = [_attempt(fn)]
        dist.broadcast_object_list(outcome, src=0)
        return _settle(outcome[0])

    def together(self, fn):
        """fn() run by every process; a NetError in any of them is raised in all."""
        if self.size == 1:
            return fn()
        result, error = _attempt(fn)
        errors = [None] * self.size
        dist.all_gather_object(errors, error)
        first = next((e for e in errors if e is not None), None)
        return _settle((result, first))

    def check_same(self, fn, message: str) -> None:
        """NetError(message) in every process unless fn() gives equal values in all of them
        (fn is not called where there is one process)."""
        if self.size == 1:
            return
        values = [None] * self.size
        dist.all_gather_object(values, fn())
        if any(v != values[0] for v in values):
            raise NetError(message)

    def replicate(self, model: torch.nn.Module, devices) -> torch.nn.Module:
        """The module to train: `model` itself, or wrapped to average its gradients over the processes."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        on_one_gpu = devices is not None and len(devices) == 1 and torch.device(devices[0]).type == "cuda"
        return DistributedDataParallel(model, device_ids=[torch.device(devices[0])] if on_one_gpu else None)

    def save_debug_state(self, model: torch.nn.Module) -> None:
        """DIR/rank<R>.pt, the weights this process holds, when NETDSL_DEBUG_RANK_STATE=DIR is set."""
        folder = os.environ.get(DEBUG_STATE_ENV)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), Path(folder) / f"rank{self.rank}.pt")


SINGLE = World()


def _attempt(fn) -> tuple:
    """(fn(), None), or (None, the NetError's fields) where fn raises one."""
    try:
        return fn(), None
    except NetError as err:
        return None, (err.message, err.path, err.line, err.col)


def _settle(outcome: tuple):
    result, error = outcome
    if error is not None:
        raise NetError(*error)
    return result


# ---------------------------------------------------------------- starting and stopping

def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise NetError(f"the environment variable {name} is `{text}`, not an integer "
                       "(torchrun sets it)") from None


def world_size() -> int:
    """The number of training processes torchrun started (1 without torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def check_batch(batch: int, size: int, flag: bool) -> None:
    """The global batch must split evenly among the processes."""
    if batch % size:
        where = f"--batch {batch}" if flag else f"[train] batch = {batch}"
        raise NetError(f"{where} does not divide among the {size} processes torchrun started: "
                       f"the batch is the global one, each process takes batch / {size}; "
                       f"use a multiple of {size}")


def offset_devices(devices: list[str], local_rank: int) -> list[str]:
    """The devices of the process with this local rank: each cuda:i moved by local_rank * len(devices)."""
    placed = []
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda":
            name = f"cuda:{(device.index or 0) + local_rank * len(devices)}"
        placed.append(name)
    return placed


def _process_devices(devices: list[str] | None, local_rank: int) -> list[str] | None:
    """--devices offset for this process, or cuda:LOCAL_RANK where there is a GPU, or None (the CPU)."""
    if devices is None:
        devices = ["cuda:0"] if torch.cuda.is_available() else None
    if devices is None:
        return None
    placed = offset_devices(devices, local_rank)
    have = torch.cuda.device_count()
    for name in placed:
        device = torch.device(name)
        if device.type == "cuda" and device.index >= have:
            raise NetError(f"the process of local rank {local_rank} needs {name} ({len(devices)} "
                           f"device(s) a process, offset by local rank), but this machine has "
                           f"{have} GPU(s); start fewer processes a machine or name fewer devices")
    return placed


@contextlib.contextmanager
def session(devices: list[str] | None):
    """(World, this process's devices) for the run inside; the process group closed afterwards.
    A NetError the run raises, in any process, ends every process with status 2, rank 0 alone
    printing it (_ErrorBoard).

    Without torchrun: SINGLE and `devices` as given.
    """
    size = world_size()
    if size == 1:
        yield SINGLE, devices
        return
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    placed = _process_devices(devices, local_rank)
    gpus = [torch.device(d) for d in placed or [] if torch.device(d).type == "cuda"]
    if gpus:
        torch.cuda.set_device(gpus[0])  # nccl's exchanges and broadcast_object_list use it
    try:
        dist.init_process_group("nccl" if gpus else "gloo")
    except (RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise NetError(f"cannot join the other training processes: {first}") from None
    world = World(rank, size, local_rank, gpus[0] if gpus else torch.device("cpu"))
    board = _ErrorBoard(world)
    try:
        yield world, placed
    except NetError as err:
        board.post(err)  # does not return: the board's watcher ends the process
    except BaseException as err:
        board.close()
        said = lost_peer(err)
        if said is None:
            raise
        raise NetError(f"lost contact with another training process ({said}): it has stopped, or its "
                       "machine can no longer be reached, and its own output says why; this process "
                       "stopped too: run the same command with --resume to continue from the run "
                       "folder's last checkpoint") from None
    else:
        board.close()
        # no process looks at the board once rank 0, which may hold the store, has gone on to exit
        dist.barrier()
    finally:
        dist.destroy_process_group()


# how gloo and NCCL report a process at the other end of an exchange that has gone (exited,
# killed, its machine down): the exchange fails at once, as a RuntimeError, in every process left
_LOST_PEER = re.compile(r"Connection (closed|reset) by peer( \[[^\]]*\]:\d+)?|Broken pipe|"
                        r"NCCL communicator was aborted")


def lost_peer(err: BaseException) -> str | None:
    """What the exchange said, where `err` is one that failed because another process has gone."""
    found = _LOST_PEER.search(str(err)) if isinstance(err, RuntimeError) else None
    return found.group(0) if found else None


# ---------------------------------------------------------------- a user error ends every process

_BOARD_POLL_S = 0.1     # how often each process looks at the board
_BOARD_ACK_S = 10.0     # how long a process waits for the others to have seen the error


class _ErrorBoard:
    """The first user error any process meets, posted where every process sees it.

    Without it, a NetError that one process alone meets ends that process while the others wait
    for it in their next exchange, until the process group times out or the transport notices,
    each then printing a traceback of its own. The board is a key in the process group's
    key-value store (torchrun's TCPStore at MASTER_ADDR:MASTER_PORT), reached through a client of
    its own; a thread of each process looks at it every _BOARD_POLL_S, which works wherever the
    main thread is, blocked in an exchange (gloo's or NCCL's) included. The first error posted
    wins. Rank 0 prints it; then each process counts itself as having seen it and waits until all
    have (at most _BOARD_ACK_S, for a process that is gone) before it exits with status 2, so
    that torchrun, which stops the other processes as soon as one exits, cannot stop rank 0
    before it has printed; rank 0 exits last, so that a store it holds (without torchrun's agent)
    outlives every other process's use of it.
    """

    def __init__(self, world: World):
        self.world = world
        client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                               wait_for_workers=False, timeout=datetime.timedelta(seconds=60))
        # torchrun's store serves every restart of the job: a restart must not see the last one's error
        run = os.environ.get("TORCHELASTIC_RUN_ID", "")
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        self.store = dist.PrefixStore(f"netdsl/{run}/{restart}/", client)
        self.lock = threading.Lock()   # the client is used by the watcher and by post()
        self.closed = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="netdsl-error-board", daemon=True)
        self.watcher.start()

    def post(self, err: NetError):
        """Put `err` on the board (unless an error is there already) and let the watcher end the
        process; where the store is gone (rank 0's host has died), end it here."""
        try:
            with self.lock:
                if self.store.add("posts", 1) == 1:
                    self.store.set("error", json.dumps([err.message, err.path, err.line, err.col]))
        except RuntimeError:
            self._exit(err, acknowledge=False)
        self.watcher.join()  # it ends the process, or returns where it lost the store meanwhile
        self._exit(err, acknowledge=False)

    def close(self) -> None:
        self.closed.set()
        self.watcher.join()

    def _watch(self) -> None:
        while not self.closed.wait(_BOARD_POLL_S):
            try:
                with self.lock:
                    posted = self.store.get("error") if self.store.check(["error"]) else None
            except RuntimeError:
                return  # the store has gone with its host's process: the run is over
            if posted is not None:
                self._exit(NetError(*json.loads(posted)), acknowledge=True)

    def _exit(self, err: NetError, acknowledge: bool):
        """Print `err` (rank 0 alone, unless no other process can) and exit with status 2; with
        `acknowledge`, once every process has seen it, and rank 0 after all the others."""
        if self.world.main or not acknowledge:
            print(err, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # os._exit runs no exit handler and no `finally` of the main thread's: the process's
        # children, its data loaders' workers, are ended here rather than left to notice it gone
        with contextlib.suppress(Exception):  # the main thread may be ending them too
            for child in multiprocessing.active_children():
                child.kill()
                child.join(1.0)
        if acknowledge:
            with contextlib.suppress(RuntimeError):  # the store's host has gone: nobody to wait for
                self._add("seen", 1)
                self._wait_for("seen", self.world.size)
                if self.world.main:
                    self._wait_for("left", self.world.size - 1)
                else:
                    self._add("left", 1)  # its last use of the store
        os._exit(2)

    def _add(self, key: str, amount: int) -> int:
        with self.lock:
            return self.store.add(key, amount)

    def _wait_for(self, key: str, count: int) -> None:
        """Until the counter `key` reaches `count`, or _BOARD_ACK_S has passed."""
        deadline = time.monotonic() + _BOARD_ACK_S
        while self._add(key, 0) < count and time.monotonic() < deadline:
            time.sleep(0.02)
