"""Checkpoints: written atomically, read back with torch.load(..., weights_only=True).

    save(state, run / "checkpoint.pt")      # temporary file, fsync, rename: never half-written
    state = load(run / "checkpoint.pt")     # NetError if it is missing or unreadable

A checkpoint is a dict of plain tensors, dicts, lists, numbers and strings (so loading
runs no pickled code): model, optimizer, schedule, epoch, random states, the .net text; and
`step`, the steps taken of that epoch: 0 (or, in older checkpoints, absent) once it is
complete, more where a signal stopped the run mid-epoch (netdsl/runner/train.py, EpochProgress).

A checkpoint that cannot be written (a full disk, a quota) raises files.WriteError naming it
and the cause: the temporary file is removed and the previous checkpoint is untouched, so the
run resumes from it once there is room (netdsl/files.py).
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from .. import files
from ..errors import NetError


def save(state: dict, path: Path) -> None:
    """Write `state` to `path` atomically: a reader sees the old file or the whole new one.

    torch.save streams into the temporary file through files.replacing, which turns the
    RuntimeError torch.save makes of a failed write back into that write's OSError."""
    with files.replacing(path) as out:
        torch.save(state, out)


def publish_copy(source: Path, path: Path) -> None:
    """Make `path` hold what `source` holds now, atomically (a hard link where it can: no copy)."""
    path = Path(path)
    if path.exists() and os.path.samefile(source, path):
        return  # already linked; and rename() between two links to one file does nothing
    files.publish(source, path)


def remove_stale_tmp(folder: Path) -> None:
    """Temporary files a killed run left behind; the files they were to replace are intact."""
    files.remove_stale_temporaries(folder)


def load(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise NetError("no checkpoint there", str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many kinds for a damaged or foreign file
        raise NetError("cannot read it as a checkpoint: the file is damaged, or it was not written "
                       "by netdsl train", str(path)) from None
    if not isinstance(state, dict) or "model" not in state:
        raise NetError("not a netdsl checkpoint", str(path))
    return state


def load_checkpoint(path: str) -> tuple[dict, np.ndarray | None]:
    """(state dict, training mean H x W x C or None) from a runner checkpoint or a plain state dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NetError("no such checkpoint", path) from None
    except Exception as err:  # torch raises many kinds for a damaged or foreign file
        raise NetError(f"cannot read the checkpoint: {err}".splitlines()[0], path) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        mean = state.get("mean")
        return state["model"], None if mean is None else np.asarray(mean, dtype=np.float32)
    if isinstance(state, dict) and state and all(torch.is_tensor(v) for v in state.values()):
        return state, None
    raise NetError("neither a netdsl checkpoint (a dict with `model`) nor a state dict", path)


def checked_mean(state: dict, resize: int, where: str) -> np.ndarray:
    """A `load`ed checkpoint's training mean, refused where it does not fit the images a network reads:
    a mean image must be `resize` x `resize`, the size the network's recipe scales images to."""
    mean = state["mean"].numpy()
    if mean.shape[0] > 1 and mean.shape[:2] != (resize, resize):
        raise NetError(f"the checkpoint's mean image is {mean.shape[0]}x{mean.shape[1]}, but this "
                       f"network scales images to {resize}x{resize} (its `resize`)", where)
    return mean


def rng_states() -> dict:
    """Every random state the training loop draws from, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
