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

NETDSL_DEBUG_RANK_STATE=DIR: at the end of a run each process saves the weights it holds to
DIR/rank<R>.pt (a state dict), so a person or a test can check that the replicas agree.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .errors import NetError

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
    try:
        yield World(rank, size, local_rank, gpus[0] if gpus else torch.device("cpu")), placed
    finally:
        dist.destroy_process_group()
